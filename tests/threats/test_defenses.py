"""Input-transformation defenses: what each computes, spec parsing, BPDA, ensembles, and that a
non-adaptive attack on JPEG overestimates robustness while BPDA-PGD does not."""

import io

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import median_filter

from deepshield.attacks import PGD
from deepshield.data.synthetic import SyntheticDeepfakeDataset
from deepshield.errors import ConfigError
from deepshield.evaluation.robust import attack_correct
from deepshield.threats import (
    DEFENSES,
    DefendedModel,
    EnsembleModel,
    build_defense,
    parse_defenses,
    register_defense,
)
from deepshield.threats.defenses import JPEG, BitDepth, Median, ResizePad


@pytest.fixture(scope="module")
def images():
    ds = SyntheticDeepfakeDataset(8, image_size=32, seed=3)
    return ds.images, ds.labels


@pytest.mark.parametrize("name", sorted(DEFENSES))
def test_shape_and_range_kept(images, name):
    x, _ = images
    out = build_defense(name, seed=0)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, x)


def test_jpeg_is_pil_jpeg(images):
    x = (images[0][:2] * 255).round() / 255  # exactly representable in uint8
    out = JPEG(quality=60)(x)
    for img, got in zip(x, out, strict=True):
        buf = io.BytesIO()
        Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(
            buf, format="JPEG", quality=60)
        want = np.asarray(Image.open(buf)).astype(np.float32) / 255
        np.testing.assert_array_equal(got.permute(1, 2, 0).numpy(), want)
    err = {q: (JPEG(quality=q)(x) - x).abs().mean() for q in (20, 90)}
    assert err[20] > 1.5 * err[90] > 0


def test_median_matches_scipy(images):
    x = images[0][:2]
    want = median_filter(x.numpy(), size=(1, 1, 3, 3), mode="mirror")  # scipy 'mirror' = torch 'reflect'
    np.testing.assert_allclose(Median(k=3)(x).numpy(), want, atol=0)
    spike = torch.zeros(1, 1, 9, 9)
    spike[0, 0, 4, 4] = 1
    assert Median(k=3)(spike).abs().sum() == 0


def test_bits_on_grid(images):
    x = images[0]
    out = BitDepth(b=3)(x)
    assert torch.allclose(out * 7, (out * 7).round(), atol=1e-5)
    assert (out - x).abs().max() <= 0.5 / 7 + 1e-6


def test_resize_pad_random_unless_seeded(images):
    x = images[0]
    free = ResizePad(0.8)
    assert not torch.equal(free(x), free(x))
    a = ResizePad(0.8, generator=torch.Generator().manual_seed(5))(x)
    b = ResizePad(0.8, generator=torch.Generator().manual_seed(5))(x)
    assert torch.equal(a, b)
    # Every image is smaller than the canvas, so at least one full row and column are grey padding.
    grey = (a == 0.5).all(1)
    assert grey.all(2).any(1).all() and grey.all(1).any(1).all()


def test_noise_seeded_and_scaled():
    x = torch.full((4, 3, 32, 32), 0.5)
    a = build_defense("noise:0.05", seed=1)(x)
    assert torch.equal(a, build_defense("noise:0.05", seed=1)(x))
    assert abs((a - x).std().item() - 0.05) < 0.005


def test_specs_parse():
    chain = parse_defenses("jpeg:75, median:3,bits")
    assert [d.spec for d in chain] == ["jpeg:75", "median:3", "bits:5"]
    assert build_defense("resize_pad:0.8").r == 0.8
    model = DefendedModel(torch.nn.Identity(), "jpeg:60,noise:0.02")
    assert model.randomized and not DefendedModel(torch.nn.Identity(), "bits:4").randomized
    assert model.describe() == "jpeg:60,noise:0.02 (adaptive: BPDA through jpeg; random: noise)"
    assert "non-adaptive" in DefendedModel(torch.nn.Identity(), "bits", adaptive=False).describe()


@pytest.mark.parametrize("spec,needle", [
    ("jpg:75", "choose from bits, jpeg, median, noise, resize_pad"),
    ("jpeg:abc", "not a number; write e.g. jpeg:75"),
    ("jpeg:75.5", "must be an integer"),
    ("jpeg:200", "[1, 95]"),
    ("median:4", "odd"),
    ("resize_pad:1.5", "(0, 1)"),
    ("noise:-1", ">= 0"),
])
def test_bad_spec_names_the_fix(spec, needle):
    with pytest.raises(ConfigError) as err:
        build_defense(spec)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_register_refuses_a_taken_name():
    with pytest.raises(ValueError, match="already registered"):
        register_defense("jpeg")(type("Other", (JPEG,), {}))
    assert DEFENSES["jpeg"] is JPEG


def _input_grad(model, x, y):
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(x), y), x)
    return grad


@pytest.mark.parametrize("spec", ["jpeg:75", "bits:5"])
def test_bpda_gradient_is_the_models_at_the_defended_point(trained_cnn, images, spec):
    x, y = images
    plain = _input_grad(DefendedModel(trained_cnn, spec, adaptive=False), x, y)
    adaptive = _input_grad(DefendedModel(trained_cnn, spec, adaptive=True), x, y)
    assert plain.abs().max() == 0
    assert adaptive.abs().sum() > 0
    want = _input_grad(trained_cnn, build_defense(spec)(x), y)
    torch.testing.assert_close(adaptive, want)


def test_ensemble_averages_probabilities(trained_cnn, images):
    x, _ = images
    other = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 2))
    with torch.no_grad():
        one = EnsembleModel([trained_cnn])(x)
        torch.testing.assert_close(one.softmax(1), trained_cnn(x).softmax(1))
        two = EnsembleModel([trained_cnn, other])(x).softmax(1)
        torch.testing.assert_close(two, (trained_cnn(x).softmax(1) + other(x).softmax(1)) / 2)
    with pytest.raises(ConfigError):
        EnsembleModel([])


def test_jpeg_looks_robust_only_non_adaptively(trained_cnn):
    ds = SyntheticDeepfakeDataset(64, image_size=32, seed=11)
    x, y = ds.images, ds.labels
    attack = PGD(eps=8 / 255, alpha=2 / 255, steps=10, early_stop=True, seed=0)
    acc = {}
    for adaptive in (False, True):
        _, p = attack_correct(DefendedModel(trained_cnn, "jpeg:75", adaptive=adaptive), x, y, attack)
        acc[adaptive] = ((p >= 0.5).long() == y).float().mean().item()
    assert acc[False] >= 0.95  # zero gradient: PGD never leaves its random start
    assert acc[True] <= acc[False] - 0.15
