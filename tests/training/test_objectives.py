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
    objective = build_objective(name, eps=2 / 255, alpha=0.5 / 255, steps=2, beta=1.0)
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
    for name in ("pgd", "trades", "mart", "fgsm-rs"):
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
    assert all(OBJECTIVES[n].validate_with == "pgd" for n in ("pgd", "fgsm-rs", "trades", "mart"))


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
