"""Adding an attack is one file: a toy attack registered here runs in a sweep, its sanity checks and
the CLI without any other module changing."""

from __future__ import annotations

import pytest
import torch

from deepshield.attacks import ATTACKS, BLACK_BOX, ITERATIVE, Attack, attacks_of_kind, register_attack
from deepshield.config import SweepSpec
from deepshield.errors import ConfigError, DeepshieldError


@pytest.fixture
def toy_attack():
    @register_attack("toy-sign")
    class ToySign(Attack):
        """Random ±ε noise, best of ``tries`` draws (queries the model's predictions only)."""

        kind, help = BLACK_BOX, "test only"

        def __init__(self, eps: float, norm: str = "linf", tries: int = 2, seed: int | None = None) -> None:
            super().__init__(eps, norm=norm, seed=seed)
            self.tries = tries

        @classmethod
        def eval_kwargs(cls, eps, spec):
            return {"tries": spec.steps}

        def _perturb(self, model, x, y):
            gen = self.generator(x.device)
            best = x
            for _ in range(self.tries):
                sign = torch.randint(0, 2, x.shape, generator=gen, device=x.device).to(x.dtype) * 2 - 1
                cand = x + self.eps * sign
                with torch.no_grad():
                    fooled = model(cand.clamp(0, 1)).argmax(1) != y
                best = torch.where(fooled.view(-1, 1, 1, 1), cand, best)
            return best

    yield "toy-sign"
    ATTACKS.pop("toy-sign")


def test_registry_describes_the_built_in_attacks():
    assert attacks_of_kind(ITERATIVE) == ["apgd", "pgd"]  # strongest first
    assert ATTACKS["square"].kind == BLACK_BOX and ATTACKS["fgsm"].name == "fgsm"
    with pytest.raises(DeepshieldError, match="choose from"):
        from deepshield.attacks import build_attack

        build_attack("pgdd", eps=0.1)
    with pytest.raises(ValueError, match="already registered"):
        register_attack("pgd")(type("Other", (Attack,), {}))


@pytest.mark.usefixtures("one_torch_thread")
def test_a_toy_attack_runs_in_a_sweep_its_checks_and_the_cli(toy_attack, trained_cnn):
    from deepshield.cli import parse_args
    from deepshield.data.synthetic import SyntheticDeepfakeDataset
    from deepshield.evaluation.checks import sanity_checks
    from deepshield.evaluation.robust import sweep

    data = SyntheticDeepfakeDataset(48, image_size=32, seed=4243)
    spec = SweepSpec(attacks=("pgd", toy_attack), eps=(8 / 255,), steps=3, sanity_n=16, gallery=0,
                     options=((toy_attack, "tries", 1),))
    result, _ = sweep(trained_cnn, data, spec, torch.device("cpu"))
    by = {r.attack: r.metrics.acc for r in result.robust}
    assert set(by) == {"pgd", toy_attack} and len(result.worst_case) == 1
    assert by[toy_attack] >= by["pgd"]  # random noise is weaker than PGD
    checks = {c.id: c for c in sanity_checks(trained_cnn, data, spec, result, torch.device("cpu"))}
    assert toy_attack in checks["blackbox_vs_whitebox"].name  # its kind puts it in the black-box check
    assert parse_args(["evaluate", "--checkpoint", "x.pt", "--attacks", f"pgd,{toy_attack}"]).attacks == \
        ("pgd", toy_attack)


def test_eval_configuration_comes_from_the_attack_and_options():
    from deepshield.attacks import build_eval_attack

    spec = SweepSpec(steps=20, options=(("pgd", "restarts", 3),))
    pgd = build_eval_attack("pgd", 4 / 255, spec)
    assert (pgd.steps, pgd.restarts, pgd.alpha) == (20, 3, pytest.approx(2.5 * 4 / 255 / 20))
    assert build_eval_attack("square", 4 / 255, SweepSpec(square_queries=7)).queries == 7
    with pytest.raises(ConfigError):
        build_eval_attack("nope", 4 / 255, spec)
