import pytest
import torch
import torch.nn.functional as F

from deepshield.data.synthetic import SyntheticDeepfakeDataset
from deepshield.models import build_model
from deepshield.training.objectives import OBJECTIVES, build_objective, mart_loss, trades_loss


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_each_objective_lowers_its_loss(name):
    torch.manual_seed(0)
    ds = SyntheticDeepfakeDataset(64, image_size=32, seed=5)
    x, y = ds.images, ds.labels
    model = build_model("small_cnn").train()
    beta = {"beta": 1.0} if "beta" in OBJECTIVES[name].uses else {}
    objective = build_objective(name, eps=2 / 255, alpha=0.5 / 255, steps=2, **beta)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        out = objective(model, x, y)
        assert out.logits.shape == (64, 2) and out.loss.ndim == 0
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses


def test_unknown_objective():
    with pytest.raises(ValueError, match="choose from"):
        build_objective("free-at", eps=0.1)


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 2, generator=g) * 2, torch.randn(8, 2, generator=g) * 2, torch.tensor([0, 1] * 4)


def test_trades_matches_reference(logits):
    clean, adv, y = logits
    beta = 6.0
    p = torch.softmax(clean, 1)
    q = torch.softmax(adv, 1)
    kl = (p * (p.log() - q.log())).sum(1).mean()
    ref = F.cross_entropy(clean, y) + beta * kl
    assert torch.allclose(trades_loss(clean, adv, y, beta), ref, atol=1e-6)


def test_mart_matches_reference(logits):
    clean, adv, y = logits
    beta = 5.0
    total = 0.0
    for i in range(len(y)):  # MART (Wang et al. 2020), eq. 9, one sample at a time
        pa, pn = torch.softmax(adv[i], 0), torch.softmax(clean[i], 0)
        yi = int(y[i])
        other = max((k for k in range(2) if k != yi), key=lambda k: pa[k])
        bce = -torch.log(pa[yi]) - torch.log(1.0001 - pa[other])
        kl = (pn * (torch.log(pn + 1e-12) - torch.log(pa + 1e-12))).sum()
        total = total + bce + beta * kl * (1.0000001 - pn[yi])
    assert torch.allclose(mart_loss(clean, adv, y, beta), total / len(y), atol=1e-5)


def test_attack_inside_objective_leaves_no_param_grads():
    model = build_model("small_cnn").train()
    ds = SyntheticDeepfakeDataset(8, image_size=32)
    for name in ("pgd", "trades", "mart", "fgsm-rs", "n-fgsm"):
        out = build_objective(name, eps=4 / 255, alpha=1 / 255, steps=2)(model, ds.images, ds.labels)
        assert all(p.grad is None for p in model.parameters()), name
        out.loss.backward()
        assert all(p.grad is not None for p in model.parameters()), name
        model.zero_grad(set_to_none=True)


def test_misspelt_setting_is_refused_not_ignored():
    from deepshield.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown setting.*epss"):
        build_objective("pgd", epss=4 / 255)


def test_objectives_say_whether_they_are_adversarial():
    assert not OBJECTIVES["none"].adversarial
    assert all(OBJECTIVES[n].validate_with == "pgd" for n in ("pgd", "fgsm-rs", "n-fgsm", "trades", "mart"))


@pytest.fixture
def toy_objective():
    """An objective registered from this file only: CE on a copy of x shifted by +ε (validated by FGSM)."""
    from deepshield.training.objectives import AdvParams, Output, register_objective

    @register_objective("toy-shift", validate_with="fgsm", help="test only")
    def toy(p: AdvParams):
        def objective(model, x, y):
            logits = model((x + p.eps).clamp(0, 1))
            return Output(F.cross_entropy(logits.float(), y), logits)

        return objective

    yield "toy-shift"
    OBJECTIVES.pop("toy-shift")


def test_a_new_objective_is_one_registered_function(toy_objective, tmp_path):
    """Registered here, it trains through the CLI and is validated with the attack it names."""
    from deepshield.cli import main, parse_args

    assert parse_args(["train", "--adv", toy_objective]).adv == toy_objective
    assert main(["train", "--smoke", "--adv", toy_objective, "--out", str(tmp_path), "--quiet"]) == 0
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ckpt["best_metric"] == "val_robust_score" and "val_pgd_acc" in ckpt["metrics"]


class _Spy(torch.nn.Module):
    """A linear model that records every input it sees and the mode it saw it in."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
        self.seen: list[tuple[torch.Tensor, bool]] = []

    def forward(self, x):
        self.seen.append((x.detach().clone(), self.training))
        return self.net(x)


def test_n_fgsm_leaves_the_eps_ball_but_not_the_pixel_range():
    """N-FGSM (de Jorge et al. 2022): noise up to 2ε, one step of ε, no projection onto the ε-ball: the
    trained-on input lies within 3ε of x (beyond ε for some pixels) and inside [0, 1]."""
    torch.manual_seed(0)
    eps = 4 / 255
    x, y = torch.rand(16, 3, 8, 8), torch.tensor([0, 1] * 8)
    model = _Spy().train()
    build_objective("n-fgsm", eps=eps)(model, x, y)
    crafted, mode = model.seen[-1]
    assert mode  # the trained-on forward, in train mode
    dist = (crafted - x).abs().max().item()
    assert eps * 1.5 < dist <= 3 * eps + 1e-6
    assert crafted.min() >= 0 and crafted.max() <= 1
    assert model.seen[0][1]  # the paper crafts in train mode (BatchNorm batch statistics)


@pytest.mark.parametrize("bn, expected", [(None, False), ("train", True), ("eval", False)])
def test_adv_bn_sets_the_mode_the_attack_crafts_in(bn, expected):
    model = _Spy().train()
    x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])
    build_objective("pgd", eps=2 / 255, steps=2, bn=bn)(model, x, y)
    crafting = [mode for _, mode in model.seen[:-1]]
    assert crafting and all(m == expected for m in crafting)
    assert model.training  # restored after crafting


def test_no_random_start_begins_the_attack_at_x():
    model = _Spy().train()
    x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])
    build_objective("pgd", eps=2 / 255, steps=1, random_start=False)(model, x, y)
    assert torch.equal(model.seen[0][0], x)
    build_objective("pgd", eps=2 / 255, steps=1)(model, x, y)
    assert not torch.equal(model.seen[2][0], x)


def test_label_smoothing_reaches_the_loss(logits):
    clean, _, y = logits
    plain = build_objective("none")(lambda x: clean, None, y)
    smooth = build_objective("none", smoothing=0.2)(lambda x: clean, None, y)
    assert torch.isclose(smooth.loss, F.cross_entropy(clean, y, label_smoothing=0.2))
    assert not torch.isclose(plain.loss, smooth.loss)


@pytest.mark.parametrize("name, settings, flag", [
    ("pgd", {"beta": 3.0}, "--trades-beta"),
    ("none", {"bn": "train"}, "--adv-bn"),
    ("n-fgsm", {"random_start": False}, "--no-random-start"),
])
def test_a_setting_the_objective_does_not_use_is_a_one_line_error(name, settings, flag):
    from deepshield.errors import ConfigError

    with pytest.raises(ConfigError, match=f"{flag} does not apply to --adv {name}") as err:
        build_objective(name, **settings)
    assert "\n" not in str(err.value)


def test_bad_values_are_refused():
    from deepshield.errors import ConfigError

    with pytest.raises(ConfigError, match="--adv-bn"):
        build_objective("pgd", bn="frozen")
    with pytest.raises(ConfigError, match="--label-smoothing"):
        build_objective("none", smoothing=1.0)


def test_cli_refuses_trades_beta_with_pgd(tmp_path, capsys):
    from deepshield.cli import main

    assert main(["train", "--smoke", "--adv", "pgd", "--trades-beta", "3", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--trades-beta does not apply to --adv pgd" in err[0]
    assert not (tmp_path / "last.pt").exists()
