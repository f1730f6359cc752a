"""Compression-aware ("platform") augmentations: each op changes the image the way the channel does,
stays in range, and repeats under the dataset's per-item seed."""

from __future__ import annotations

import pytest
import torch

from deepshield.data.augment import PlatformOps
from deepshield.data.transforms import AUGMENTS, build_augment, seeded


def _image(size: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0, 1, size).expand(size, size)
    return (0.6 * ramp + 0.4 * torch.rand(3, size, size, generator=g)).clamp(0, 1)


@pytest.mark.parametrize("op", ["down_p", "blur_p", "noise_p", "h264_p"])
def test_each_op_changes_the_image_and_keeps_shape_and_range(op):
    x = _image()
    y = seeded(PlatformOps(**{op: 1.0}), x, 0)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert 0 <= float(y.min()) and float(y.max()) <= 1
    assert (y - x).abs().mean() > 1e-3


def test_h264_removes_fine_detail_and_blur_smooths():
    x = _image()
    h264 = seeded(PlatformOps(h264_p=1.0, h264_crfs=(38,)), x, 0)
    blur = seeded(PlatformOps(blur_p=1.0, blur_sigma=(1.5, 1.5)), x, 0)
    grad = lambda im: (im[..., 1:] - im[..., :-1]).abs().mean()  # noqa: E731
    assert grad(h264) < 0.8 * grad(x) and grad(blur) < 0.5 * grad(x)


def test_inactive_ops_are_the_identity():
    x = _image()
    assert not PlatformOps().active and torch.equal(PlatformOps()(x), x)


def test_platform_preset_is_seeded_and_differs_from_faces():
    assert "platform" in AUGMENTS and AUGMENTS["platform"].platform.active
    t = build_augment("platform", 64)
    x = (_image() * 255).round().to(torch.uint8)
    assert torch.equal(seeded(t, x, 5), seeded(t, x, 5))
    outs = [seeded(t, x, s) for s in range(6)]
    assert all(o.shape == (3, 64, 64) and 0 <= float(o.min()) and float(o.max()) <= 1 for o in outs)
    assert len({round(float(o.sum()), 3) for o in outs}) > 1
