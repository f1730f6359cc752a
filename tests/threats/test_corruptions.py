"""Natural corruptions: registry, shapes and ranges, seeded noise, JPEG equal to PIL's."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.data import astronaut

from deepshield.errors import ConfigError
from deepshield.threats.corruptions import CORRUPTIONS, build_corruption


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    image = np.asarray(Image.fromarray(astronaut()).resize((67, 48), Image.Resampling.BILINEAR)).copy()
    one = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    return torch.stack([one, one.flip(-1)])


def test_registry_holds_the_re_upload_corruptions():
    assert set(CORRUPTIONS) == {"jpeg30", "jpeg50", "jpeg70", "jpeg90", "blur1", "blur2", "noise0.02",
                                "noise0.05", "down0.5"}
    with pytest.raises(ConfigError, match="unknown corruption 'jpeg75'; choose from blur1"):
        build_corruption("jpeg75")


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corruptions_keep_shape_and_range_and_change_the_image(x, name: str):
    y = build_corruption(name)(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.min() >= 0 and y.max() <= 1
    assert 0.002 < (y - x).abs().mean() < 0.1


def test_stronger_corruption_changes_more(x):
    def err(name: str) -> float:
        return float((build_corruption(name)(x, torch.Generator().manual_seed(0)) - x).abs().mean())

    assert err("jpeg30") > err("jpeg50") > err("jpeg70") > err("jpeg90")
    assert err("blur2") > err("blur1") and err("noise0.05") > err("noise0.02")


def test_noise_is_repeatable_with_a_seed(x):
    noise = build_corruption("noise0.05")
    a = noise(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, noise(x, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, noise(x, torch.Generator().manual_seed(4)))
    assert torch.equal(noise(x, None), noise(x, None))  # no generator: seeded 0, still repeatable
    assert float((a - x)[(x > 0.2) & (x < 0.8)].std()) == pytest.approx(0.05, rel=0.1)


def test_jpeg_corruption_is_pil_jpeg(x):
    y = build_corruption("jpeg50")(x, None)
    image = (x[0].permute(1, 2, 0) * 255).round().byte().numpy()
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=50)
    expected = np.asarray(Image.open(buf).convert("RGB"))
    assert np.array_equal((y[0].permute(1, 2, 0) * 255).round().byte().numpy(), expected)


def test_blur_leaves_a_flat_image_flat():
    flat = torch.full((1, 3, 20, 24), 0.4)
    assert torch.allclose(build_corruption("blur2")(flat, None), flat, atol=1e-6)
    assert torch.allclose(build_corruption("down0.5")(flat, None), flat, atol=1e-6)
