"""Our APGD and ART-backed Square keep the invariants of our attacks, and actually attack."""

import random

import numpy as np
import pytest
import torch

from deepshield.attacks import APGD, ATTACKS, Square, build_attack
from deepshield.attacks.base import flat_norm
from deepshield.data.synthetic import SyntheticDeepfakeDataset
from deepshield.models import build_model

CONFIGS = [
    ("apgd", {"norm": "linf", "eps": 8 / 255, "steps": 5}),
    ("apgd", {"norm": "l2", "eps": 0.5, "steps": 5}),
    ("square", {"norm": "linf", "eps": 8 / 255, "queries": 10}),
    ("square", {"norm": "l2", "eps": 0.5, "queries": 10}),
]


def test_registered():
    assert ATTACKS["apgd"] is APGD and ATTACKS["square"] is Square
    assert isinstance(build_attack("square", eps=4 / 255, queries=5), Square)


@pytest.mark.parametrize("name,kw", CONFIGS)
def test_box_ball_and_state(batch, name, kw):
    x, y = batch
    model = build_model("small_cnn").train()
    model.features[1].eval()  # mixed modes must come back module by module
    model.head.weight.requires_grad_(False)  # a frozen parameter stays frozen
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    model.head.bias.grad = None
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    modes = [m.training for m in model.modules()]
    with torch.no_grad():  # works inside a caller's no_grad
        x_adv = build_attack(name, seed=0, **kw)(model, x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (flat_norm(x_adv - x, kw["norm"]) <= kw["eps"] + 1e-5).all()
    assert [m.training for m in model.modules()] == modes
    for k, v in model.state_dict().items():  # parameters and BatchNorm statistics
        assert torch.equal(v, state[k]), k
    for n, p in model.named_parameters():
        assert p.requires_grad == flags[n], n
        assert (p.grad is None) == (grads[n] is None), n
        if p.grad is not None:
            assert torch.equal(p.grad, grads[n]), n


def test_inference_mode_and_eps_zero(trained_cnn, batch):
    x, y = batch
    with torch.inference_mode():
        x_adv = APGD(eps=4 / 255, steps=3, seed=0)(trained_cnn, x, y)
    assert (x_adv - x).abs().max() <= 4 / 255 + 1e-6
    assert torch.equal(Square(eps=0.0)(trained_cnn, x, y), x)


def test_seeded_runs_repeat_and_leave_global_rngs_alone(trained_cnn, batch):
    x, y = batch
    np.random.seed(123)
    random.seed(123)
    np_before, py_before = np.random.get_state()[1].copy(), random.getstate()
    a = Square(eps=8 / 255, queries=8, seed=3)(trained_cnn, x, y)
    b = Square(eps=8 / 255, queries=8, seed=3)(trained_cnn, x, y)
    assert torch.equal(a, b) and not torch.equal(a, x)
    assert np.array_equal(np.random.get_state()[1], np_before) and random.getstate() == py_before


def test_apgd_fools_a_standard_model(trained_cnn):
    ds = SyntheticDeepfakeDataset(48, image_size=32, seed=11)
    x, y = ds.images, ds.labels
    x_adv = APGD(eps=8 / 255, steps=10, seed=0)(trained_cnn, x, y)
    with torch.no_grad():
        clean = (trained_cnn(x).argmax(1) == y).float().mean()
        robust = (trained_cnn(x_adv).argmax(1) == y).float().mean()
    assert clean > 0.9 and robust < 0.2


@pytest.mark.parametrize("chunk", [None, 3])
def test_square_is_gradient_free(chunk):
    """A brightness threshold behind rounding: zero gradient everywhere, Square still flips it (also
    when ART is called on a few samples at a time)."""

    class Brightness(torch.nn.Module):
        def forward(self, x):
            m = torch.round(x * 255).div(255).mean((1, 2, 3))
            return torch.stack([-(m - 0.5) * 400, (m - 0.5) * 400], 1)

    x = torch.full((8, 3, 16, 16), 0.495)
    x[4:] = 0.505
    y = torch.tensor([0] * 4 + [1] * 4)
    attack = Square(eps=8 / 255, queries=60, seed=0)
    attack.chunk = chunk
    x_adv = attack(Brightness(), x, y)
    assert x_adv.shape == x.shape and (x_adv - x).abs().max() <= 8 / 255 + 1e-6
    assert (Brightness()(x_adv).argmax(1) != y).float().mean() >= 0.75


@pytest.mark.parametrize("cls,kw", [(APGD, {"steps": 0}), (Square, {"queries": 0}), (Square, {"p_init": 0}),
                                    (APGD, {"norm": "l1"}), (Square, {"eps": -1})])
def test_bad_settings_raise(cls, kw):
    with pytest.raises(ValueError):
        cls(**kw)
