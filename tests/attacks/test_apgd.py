"""Our APGD-CE: at least as strong as ART's, early stop and warm start keep the attack's guarantees."""

import pytest
import torch

from deepshield.attacks import APGD, PGD
from deepshield.attacks.apgd import checkpoint_gaps
from deepshield.attacks.base import flat_norm
from deepshield.attacks.external import ARTAPGD
from deepshield.data.synthetic import SyntheticDeepfakeDataset


@pytest.fixture(scope="module")
def faces():
    ds = SyntheticDeepfakeDataset(96, image_size=32, seed=21)
    return ds.images, ds.labels


def accuracy(model, x, y):
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_checkpoints_follow_the_paper():
    assert checkpoint_gaps(100) == (22, 3, 6)
    assert checkpoint_gaps(10) == (2, 1, 1)


@pytest.mark.parametrize("norm,eps", [("linf", 2 / 255), ("l2", 0.4)])
def test_no_weaker_than_art(trained_cnn, faces, norm, eps):
    x, y = faces
    ours = APGD(eps=eps, norm=norm, steps=10, seed=0)(trained_cnn, x, y)
    art = ARTAPGD(eps=eps, norm=norm, steps=10, seed=0)(trained_cnn, x, y)
    assert (flat_norm(ours - x, norm) <= eps + 1e-5).all() and ours.min() >= 0 and ours.max() <= 1
    clean = accuracy(trained_cnn, x, y)
    assert accuracy(trained_cnn, ours, y) <= accuracy(trained_cnn, art, y) < clean  # both attack


def test_early_stop_returns_fooling_points_and_strongest_survivors(trained_cnn, faces):
    x, y = faces
    calls = {"n": 0}

    def count(module, inputs, output):
        calls["n"] += len(inputs[0])

    hook = trained_cnn.register_forward_hook(count)
    try:
        full = APGD(eps=2 / 255, steps=10, seed=0)(trained_cnn, x, y)
        n_full, calls["n"] = calls["n"], 0
        early = APGD(eps=2 / 255, steps=10, seed=0, early_stop=True)(trained_cnn, x, y)
        n_early = calls["n"]
    finally:
        hook.remove()
    assert n_full == len(x) * 11 and n_early < n_full  # fooled faces leave the batch
    fooled_full = trained_cnn(full).argmax(1) != y
    fooled_early = trained_cnn(early).argmax(1) != y
    assert fooled_early.sum() >= fooled_full.sum() - 2  # same attack, only its stopping differs
    loss_full = torch.nn.functional.cross_entropy(trained_cnn(full), y, reduction="none")
    loss_clean = torch.nn.functional.cross_entropy(trained_cnn(x), y, reduction="none")
    assert (loss_full >= loss_clean - 1e-6).all()  # the best point, never worse than where it began


@pytest.mark.parametrize("cls", [APGD, PGD])
def test_warm_start_begins_at_init_and_stays_in_the_ball(trained_cnn, faces, cls):
    x, y = faces
    eps = 2 / 255
    fooling = cls(eps=eps, steps=10, seed=0, early_stop=True)(trained_cnn, x, y)
    fooled = trained_cnn(fooling).argmax(1) != y
    assert fooled.any() and (~fooled).any()
    # From a fooling point the attack is done at once: those faces stay fooled, with zero steps.
    again = cls(eps=eps, steps=1, seed=1, early_stop=True)(trained_cnn, x[fooled], y[fooled],
                                                          init=fooling[fooled])
    assert (trained_cnn(again).argmax(1) != y[fooled]).all()
    # A start outside the ball is projected onto it first.
    far = (x + 0.5).clamp(0, 1)
    out = cls(eps=eps, steps=2, seed=0)(trained_cnn, x, y, init=far)
    assert (flat_norm(out - x, "linf") <= eps + 1e-6).all() and out.min() >= 0 and out.max() <= 1


def test_warm_start_from_a_smaller_ball_is_no_weaker(trained_cnn, faces):
    x, y = faces
    small = APGD(eps=1 / 255, steps=10, seed=0)(trained_cnn, x, y)
    warm = APGD(eps=2 / 255, steps=10, seed=0, early_stop=True)(trained_cnn, x, y, init=small)
    cold = APGD(eps=2 / 255, steps=10, seed=0, early_stop=True)(trained_cnn, x, y)
    assert accuracy(trained_cnn, warm, y) <= accuracy(trained_cnn, cold, y) + 2 / len(y)
