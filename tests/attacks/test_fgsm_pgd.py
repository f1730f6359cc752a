"""Invariants every attack must keep, and strength checks against a reference implementation."""

import pytest
import torch
from torch.utils.data import DataLoader

from deepshield.attacks import ATTACKS, FGSM, PGD, build_attack
from deepshield.attacks.base import flat_norm
from deepshield.data.synthetic import SyntheticDeepfakeDataset
from deepshield.models import build_model

CONFIGS = [
    ("fgsm", {"norm": "linf", "eps": 8 / 255}),
    ("fgsm", {"norm": "l2", "eps": 0.5}),
    ("pgd", {"norm": "linf", "eps": 8 / 255, "steps": 5}),
    ("pgd", {"norm": "l2", "eps": 0.5, "steps": 5, "alpha": 0.2}),
    ("pgd", {"norm": "linf", "eps": 4 / 255, "steps": 3, "restarts": 2, "early_stop": True}),
    ("pgd", {"norm": "linf", "eps": 4 / 255, "steps": 3, "targeted": True}),
]


@pytest.mark.parametrize("name,kw", CONFIGS)
def test_box_and_ball(trained_cnn, batch, name, kw):
    x, y = batch
    x_adv = build_attack(name, seed=0, **kw)(trained_cnn, x, y)
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (flat_norm(x_adv - x, kw["norm"]) <= kw["eps"] + 1e-5).all()
    assert (x_adv != x).any()


@pytest.mark.parametrize("name,kw", CONFIGS[:4])
def test_model_state_untouched(batch, name, kw):
    x, y = batch
    model = build_model("small_cnn").train()
    model.features[1].eval()  # a mixed-mode model: each submodule's own mode must come back
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    model.head.bias.grad = None
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
    modes = [m.training for m in model.modules()]
    build_attack(name, **kw)(model, x, y)
    assert [m.training for m in model.modules()] == modes
    for k, v in model.state_dict().items():  # parameters and BN running statistics
        assert torch.equal(v, before[k]), k
    for n, p in model.named_parameters():
        assert (p.grad is None) == (grads[n] is None), n
        if p.grad is not None:
            assert torch.equal(p.grad, grads[n]), n


@pytest.mark.parametrize("ctx", [torch.no_grad, torch.inference_mode])
def test_works_inside_callers_no_grad(trained_cnn, batch, ctx):
    x, y = batch
    with ctx():
        x_adv = PGD(eps=8 / 255, steps=3, seed=0)(trained_cnn, x, y)
    assert (x_adv - x).abs().max() > 0
    with torch.no_grad():
        assert (trained_cnn(x_adv).argmax(1) != y).sum() >= (trained_cnn(x).argmax(1) != y).sum()


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_eps_zero_returns_x(trained_cnn, batch, name):
    x, y = batch
    assert torch.equal(build_attack(name, eps=0.0)(trained_cnn, x, y), x)


def test_deterministic_under_seed(trained_cnn, batch):
    x, y = batch
    a = PGD(eps=8 / 255, steps=3, seed=1)(trained_cnn, x, y)
    b = PGD(eps=8 / 255, steps=3, seed=1)(trained_cnn, x, y)
    c = PGD(eps=8 / 255, steps=3, seed=2)(trained_cnn, x, y)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="eps must be >= 0"):
        PGD(eps=-0.1)
    with pytest.raises(ValueError, match="unknown norm"):
        FGSM(eps=0.1, norm="l1")
    with pytest.raises(ValueError, match="unknown attack 'cw'"):
        build_attack("cw", eps=0.1)


def _robust_acc(model, attack, loader):
    correct = n = 0
    for x, y in loader:
        x_adv = attack(model, x, y)
        with torch.no_grad():
            correct += (model(x_adv).argmax(1) == y).sum().item()
        n += len(y)
    return correct / n


@pytest.fixture(scope="module")
def test_loader():
    return DataLoader(SyntheticDeepfakeDataset(512, image_size=32, seed=99), batch_size=128)


def test_pgd_at_least_as_strong_as_fgsm(trained_cnn, test_loader):
    for eps in (2 / 255, 4 / 255):
        fgsm = _robust_acc(trained_cnn, FGSM(eps=eps), test_loader)
        pgd = _robust_acc(trained_cnn, PGD(eps=eps, alpha=eps / 4, steps=10, seed=0), test_loader)
        assert pgd <= fgsm + 1e-9, (eps, pgd, fgsm)


def _reference_pgd(model, x, y, eps, alpha, steps):
    """Madry et al.'s L∞ PGD written out plainly (no random start), as the reference."""
    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(x_adv), y)
        (g,) = torch.autograd.grad(loss, x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + alpha * g.sign(), x - eps), x + eps).clamp(0, 1)
    return x_adv


def test_pgd_matches_reference_and_torchattacks(trained_cnn, test_loader):
    eps, alpha, steps = 4 / 255, 1 / 255, 10
    ours = _robust_acc(trained_cnn, PGD(eps=eps, alpha=alpha, steps=steps, random_start=False), test_loader)
    ref = _robust_acc(trained_cnn, lambda m, x, y: _reference_pgd(m, x, y, eps, alpha, steps), test_loader)
    assert abs(ours - ref) <= 0.01
    assert ours < _robust_acc(trained_cnn, lambda m, x, y: x, test_loader) - 0.2  # the attack does bite
    torchattacks = pytest.importorskip("torchattacks")
    theirs_attack = torchattacks.PGD(trained_cnn, eps=eps, alpha=alpha, steps=steps, random_start=True)
    torch.manual_seed(0)  # torchattacks draws its random start from the global RNG
    theirs = _robust_acc(trained_cnn, lambda m, x, y: theirs_attack(x, y), test_loader)
    ours_rs = _robust_acc(trained_cnn, PGD(eps=eps, alpha=alpha, steps=steps, seed=0), test_loader)
    # Two different random starts: agreement within 3 points on 512 images (it was 0.2-2.1 points over
    # test orders; 1 point made the test fail on the global RNG state other tests left behind).
    assert abs(ours_rs - theirs) <= 0.03
    # Early stopping keeps the first fooling iterate: never weaker than the plain final iterate.
    ours_es = _robust_acc(trained_cnn, PGD(eps=eps, alpha=alpha, steps=steps, seed=0, early_stop=True),
                          test_loader)
    assert ours_es <= ours_rs + 1e-9
