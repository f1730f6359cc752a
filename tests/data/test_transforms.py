"""Train/eval transforms: shapes and ranges, each augmentation does something, seeded repeatability."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepshield.data.transforms import (
    Augment,
    build_augment,
    build_eval_transform,
    build_train_transform,
    seeded,
)
from deepshield.errors import ConfigError

OFF = Augment(flip_p=0, crop_p=0, jitter_p=0, jpeg_p=0, blur_p=0, erase_p=0)


@pytest.fixture(scope="module")
def face() -> torch.Tensor:
    """scikit-image's astronaut face region as uint8 [3, 96, 96]."""
    from PIL import Image
    from skimage.data import astronaut

    crop = Image.fromarray(astronaut()[20:220, 140:340]).resize((96, 96), Image.BILINEAR)
    return torch.from_numpy(np.asarray(crop).copy()).permute(2, 0, 1).contiguous()


def test_eval_transform_only_converts_to_float(face):
    out = build_eval_transform()(face)
    assert out.dtype == torch.float32 and out.shape == face.shape
    assert torch.equal(out, face.float() / 255)


def test_all_off_is_the_eval_transform(face):
    assert torch.equal(build_train_transform(96, OFF)(face), build_eval_transform()(face))


@pytest.mark.parametrize("field", ["flip_p", "crop_p", "jitter_p", "jpeg_p", "blur_p", "erase_p"])
def test_each_augmentation_changes_the_image(face, field):
    from dataclasses import replace

    transform = build_train_transform(96, replace(OFF, **{field: 1.0}))
    out = seeded(transform, face, 0)
    assert out.shape == (3, 96, 96) and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    assert (out - face.float() / 255).abs().mean() > 1e-3


def test_flip_is_a_mirror_and_erase_blacks_out_a_patch(face):
    from dataclasses import replace

    flipped = build_train_transform(96, replace(OFF, flip_p=1.0))(face)
    assert torch.equal(flipped, face.flip(-1).float() / 255)
    erased = seeded(build_train_transform(96, replace(OFF, erase_p=1.0)), face, 3)
    changed = (erased != face.float() / 255).any(0)
    assert 0.02 * 96 * 96 * 0.5 <= changed.sum() <= 0.15 * 96 * 96 and (erased[:, changed] == 0).all()


def test_seeded_repeats_and_leaves_the_global_rng_alone(face):
    t = build_train_transform(96)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a, b = seeded(t, face, 7), seeded(t, face, 7)
    assert torch.equal(a, b)
    assert torch.equal(torch.rand(1), expected_next)
    outs = [seeded(t, face, s) for s in range(8)]
    assert len({o.sum().item() for o in outs}) > 4  # different seeds, different augmentations


def test_unknown_augmentation_names_the_choices():
    assert build_augment("none", 32) is None
    with pytest.raises(ConfigError, match="unknown augmentation 'heavy'; choose from faces, none"):
        build_augment("heavy", 32)
