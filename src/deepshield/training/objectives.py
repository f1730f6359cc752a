"""Training objectives: ``build_objective(name, eps=..., ...)`` -> ``objective(model, x, y) -> Output``.

The trainer does not know which objective it runs. Each objective returns the loss to minimize and
the logits its accuracy is measured on (adversarial logits for adversarial objectives). Objectives
register themselves with ``@register_objective(name, validate_with=ATTACK)``: ``validate_with`` is
the registered attack the trainer measures validation robustness with (None: a standard objective,
ranked by clean AUC). Their settings come in one :class:`AdvParams`, so a misspelt setting is an
error, not silently ignored. Adding an objective is one decorated function.

- ``none``    standard cross-entropy.
- ``pgd``     PGD-AT (Madry et al., ICLR 2018): cross-entropy on L∞ PGD examples (random start).
- ``fgsm-rs`` fast adversarial training (Wong, Rice & Kolter, ICLR 2020): FGSM from a uniform random
              start with α = 1.25ε, the attack run in train mode as in the paper.
- ``trades``  TRADES (Zhang et al., ICML 2019): CE(clean) + β·KL(p(x) ‖ p(x')), x' maximizing the KL.
- ``mart``    MART (Wang et al., ICLR 2020): boosted CE on x' + β·KL(p(x) ‖ p(x'))·(1 − p_y(x)).
- ``n-fgsm``  N-FGSM (de Jorge et al., NeurIPS 2022): uniform noise of 2ε, one FGSM step of α = ε from
              it, *no* projection back to the ε-ball: single-step cost without FGSM-RS's catastrophic
              overfitting.
Attacks run in eval mode (BatchNorm statistics untouched) except for ``fgsm-rs`` and ``n-fgsm``,
following each paper's reference code; ``bn`` overrides that (an ablation). ``smoothing`` is label
smoothing on every cross-entropy term. An objective given a setting it does not use (``beta`` for
``pgd``) is a ConfigError. Attack gradients never reach the parameters (see deepshield.attacks), and
attacks run on the plain module inside DDP so they trigger no gradient synchronization.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from deepshield.attacks import ATTACKS, FGSM, PGD
from deepshield.config import default_alpha
from deepshield.errors import ConfigError
from deepshield.registry import Registry
from deepshield.training.distributed import unwrap


class Output(NamedTuple):
    loss: torch.Tensor
    logits: torch.Tensor


Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor], Output]


@dataclass(frozen=True)
class AdvParams:
    """An objective's settings: ε, α in [0, 1] pixel units (α None: ε/4), attack steps, TRADES/MART β
    (None: 6), the attack's random start, BatchNorm mode while crafting (``bn``: "eval" | "train";
    None: the method's reference choice) and label smoothing in [0, 1)."""

    eps: float = 4 / 255
    alpha: float | None = None
    steps: int = 7
    beta: float | None = None
    random_start: bool = True
    bn: str | None = None
    smoothing: float = 0.0

    @property
    def step_size(self) -> float:
        return self.alpha if self.alpha is not None else default_alpha(self.eps)

    @property
    def trades_beta(self) -> float:
        return self.beta if self.beta is not None else 6.0

    def eval_mode(self, default: bool) -> bool:
        """Whether the attack crafts with BatchNorm in eval mode (``default``: the paper's choice)."""
        return default if self.bn is None else self.bn == "eval"

    def ce(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy in fp32 with this objective's label smoothing."""
        return F.cross_entropy(logits.float(), y, label_smoothing=self.smoothing)


# Settings only some objectives use: AdvParams field -> (its default, the train flag that sets it).
OPTIONAL = {"beta": (None, "--trades-beta"), "random_start": (True, "--no-random-start"),
            "bn": (None, "--adv-bn")}
BN_MODES = ("eval", "train")


@dataclass(frozen=True)
class ObjectiveSpec:
    """A registered objective: its factory and the attack (by name) that validates it, if adversarial."""

    name: str
    build: Callable[[AdvParams], Objective]
    validate_with: str | None = None
    help: str = ""
    uses: tuple[str, ...] = ()  # the OPTIONAL settings it reads

    @property
    def adversarial(self) -> bool:
        return self.validate_with is not None


OBJECTIVES: Registry[ObjectiveSpec] = Registry("adversarial training method")


def register_objective(name: str, validate_with: str | None = None, help: str = "",
                       uses: tuple[str, ...] = ()):
    """Function decorator: register ``factory(params: AdvParams) -> Objective`` under ``name``;
    ``uses``: the :data:`OPTIONAL` settings it reads (any other one given is an error)."""

    def register(factory: Callable[[AdvParams], Objective]) -> Callable[[AdvParams], Objective]:
        if validate_with is not None and validate_with not in ATTACKS:
            raise ValueError(f"objective {name!r}: validate_with {validate_with!r} is not an attack")
        if unknown := sorted(set(uses) - set(OPTIONAL)):
            raise ValueError(f"objective {name!r}: uses unknown setting(s) {unknown}")
        if name in OBJECTIVES and OBJECTIVES[name].build is factory:
            return factory
        OBJECTIVES.add(name, ObjectiveSpec(name, factory, validate_with, help, tuple(uses)))
        return factory

    return register


@register_objective("none", help="standard cross-entropy")
def standard(p: AdvParams) -> Objective:
    def objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Output:
        logits = model(x)
        return Output(p.ce(logits, y), logits)

    return objective


@register_objective("pgd", validate_with="pgd", help="PGD-AT (Madry et al.)", uses=("random_start", "bn"))
def pgd_at(p: AdvParams) -> Objective:
    attack = PGD(eps=p.eps, alpha=p.step_size, steps=p.steps, random_start=p.random_start,
                 eval_mode=p.eval_mode(True))

    def objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Output:
        logits = model(attack(unwrap(model), x, y))
        return Output(p.ce(logits, y), logits)

    return objective


@register_objective("fgsm-rs", validate_with="pgd", help="fast AT: FGSM from a random start", uses=("bn",))
def fgsm_rs(p: AdvParams) -> Objective:
    # The paper's α = 1.25ε; a user-given α (meant for PGD) is ignored on purpose.
    attack = FGSM(eps=p.eps, alpha=1.25 * p.eps, random_start=True, eval_mode=p.eval_mode(False))

    def objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Output:
        logits = model(attack(unwrap(model), x, y))
        return Output(p.ce(logits, y), logits)

    return objective


def noise_start(x: torch.Tensor, radius: float) -> torch.Tensor:
    """``x`` plus uniform noise in [-radius, radius] per pixel, clipped to [0, 1] (N-FGSM's start)."""
    return (x + (torch.rand_like(x) * 2 - 1) * radius).clamp(0, 1)


@register_objective("n-fgsm", validate_with="pgd", help="N-FGSM (de Jorge et al.): noise 2eps, step eps, "
                    "no projection", uses=("bn",))
def n_fgsm(p: AdvParams) -> Objective:
    # The step starts from the noisy point and is projected only onto ITS ε-ball (and [0, 1]): the total
    # perturbation reaches 3ε, which is what keeps a single step from overfitting (the paper's k = 2).
    step = FGSM(eps=p.eps, alpha=p.alpha if p.alpha is not None else p.eps, random_start=False,
                eval_mode=p.eval_mode(False))

    def objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Output:
        logits = model(step(unwrap(model), noise_start(x, 2 * p.eps), y))
        return Output(p.ce(logits, y), logits)

    return objective


def kl_to_clean(logits_adv: torch.Tensor, p_clean: torch.Tensor) -> torch.Tensor:
    """Summed KL(p_clean ‖ softmax(logits_adv)); the TRADES inner maximization loss."""
    return F.kl_div(F.log_softmax(logits_adv.float(), 1), p_clean, reduction="sum")


def trades_loss(logits_clean: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor,
                beta: float, smoothing: float = 0.0) -> torch.Tensor:
    """CE(clean) + β · mean over the batch of KL(p(x) ‖ p(x'))."""
    natural = F.cross_entropy(logits_clean.float(), y, label_smoothing=smoothing)
    robust = kl_to_clean(logits_adv, F.softmax(logits_clean.float(), 1)) / len(y)
    return natural + beta * robust


def mart_loss(logits_clean: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor,
              beta: float) -> torch.Tensor:
    """Boosted CE on x' plus β · KL(p(x) ‖ p(x')) weighted by (1 − p_y(x)), as in MART's reference code."""
    p_adv = F.softmax(logits_adv.float(), 1)
    top2 = p_adv.argsort(1)[:, -2:]
    wrong = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
    bce = F.cross_entropy(logits_adv.float(), y) + F.nll_loss(torch.log(1.0001 - p_adv + 1e-12), wrong)
    p_clean = F.softmax(logits_clean.float(), 1)
    p_true = p_clean.gather(1, y.unsqueeze(1)).squeeze(1)
    kl = (p_clean * (torch.log(p_clean + 1e-12) - torch.log(p_adv + 1e-12))).sum(1)
    return bce + beta * (kl * (1.0000001 - p_true)).mean()


@register_objective("trades", validate_with="pgd", help="TRADES (Zhang et al.)",
                    uses=("beta", "random_start", "bn"))
def trades(p: AdvParams) -> Objective:
    # TRADES starts from a small Gaussian (0.001) in its reference code; a uniform start in the ball here.
    attack = PGD(eps=p.eps, alpha=p.step_size, steps=p.steps, random_start=p.random_start,
                 loss_fn=kl_to_clean, eval_mode=p.eval_mode(True))
    beta = p.trades_beta

    def objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Output:
        plain = unwrap(model)
        with torch.no_grad():
            was = plain.training
            plain.eval()
            p_clean = F.softmax(plain(x).float(), 1)
            plain.train(was)
        x_adv = attack(plain, x, p_clean)
        # Separate forward passes, so BatchNorm normalizes each batch on its own as in the paper.
        logits_clean, logits_adv = model(x), model(x_adv)
        return Output(trades_loss(logits_clean, logits_adv, y, beta, p.smoothing), logits_adv)

    return objective


@register_objective("mart", validate_with="pgd", help="MART (Wang et al.)",
                    uses=("beta", "random_start", "bn"))
def mart(p: AdvParams) -> Objective:
    attack = PGD(eps=p.eps, alpha=p.step_size, steps=p.steps, random_start=p.random_start,
                 eval_mode=p.eval_mode(True))
    beta = p.trades_beta

    def objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Output:
        x_adv = attack(unwrap(model), x, y)
        logits_clean, logits_adv = model(x), model(x_adv)
        return Output(mart_loss(logits_clean, logits_adv, y, beta), logits_adv)

    return objective


def check_settings(name: str, **settings: object) -> ObjectiveSpec:
    """The spec of objective ``name``; a ConfigError for an unknown setting, a bad value, or an
    :data:`OPTIONAL` setting given a non-default value that this objective does not use."""
    spec = OBJECTIVES.lookup(name)
    known = {f.name for f in fields(AdvParams)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(f"objective {name!r}: unknown setting(s) {', '.join(unknown)}; "
                          f"valid: {', '.join(sorted(known))}")
    for key, (default, flag) in OPTIONAL.items():
        if key in settings and settings[key] != default and key not in spec.uses:
            users = [n for n, s in OBJECTIVES.items() if key in s.uses]
            raise ConfigError(f"{flag} does not apply to --adv {name}; "
                              f"it applies to --adv {' / '.join(users)}")
    if settings.get("bn") not in (None, *BN_MODES):
        raise ConfigError(f"--adv-bn {settings['bn']!r}: choose from {', '.join(BN_MODES)}")
    smoothing = settings.get("smoothing", 0.0)
    if not 0 <= smoothing < 1:  # type: ignore[operator]
        raise ConfigError(f"--label-smoothing {smoothing}: must be in [0, 1)")
    return spec


def build_objective(name: str, **settings: object) -> Objective:
    """Build a registered objective; settings are :class:`AdvParams` fields (see :func:`check_settings`)."""
    return check_settings(name, **settings).build(AdvParams(**settings))  # type: ignore[arg-type]
