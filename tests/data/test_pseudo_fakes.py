"""Self-blended pseudo-fakes (SBI): the blend, the mask, the dataset wrapper, landmarks and the CLI rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepshield.config import TrainConfig
from deepshield.data import landmarks as lm
from deepshield.data.catalog import CatalogRow, write_catalog
from deepshield.data.datasets import FaceCatalogDataset, build_datasets
from deepshield.data.pseudo_fakes import (
    PSEUDO,
    PseudoFakeDataset,
    _convex_hull,
    blend_mask,
    face_region,
    self_blend,
)
from deepshield.errors import ConfigError

# Five landmarks (crop fractions) as MTCNN places them on a DFDC crop: eyes, nose, mouth corners.
POINTS = np.array([[0.3, 0.35], [0.7, 0.35], [0.5, 0.55], [0.35, 0.75], [0.65, 0.75]], dtype=np.float32)


def _face(size: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.linspace(40, 220, size).expand(size, size)
    return (base[None] + torch.randint(0, 30, (3, size, size), generator=g)).clamp(0, 255).to(torch.uint8)


def test_self_blend_is_seeded_uint8_and_only_changes_the_face_region():
    x = _face()
    fake, mask = self_blend(x, POINTS, torch.Generator().manual_seed(1))
    again, _ = self_blend(x, POINTS, torch.Generator().manual_seed(1))
    assert fake.dtype == torch.uint8 and fake.shape == x.shape and torch.equal(fake, again)
    assert mask.shape == (64, 64) and 0 <= float(mask.min()) and float(mask.max()) <= 1
    assert float(mask.max()) >= 0.25  # the smallest blend ratio
    assert float(mask[:3, :3].max()) == 0 and float(mask[-3:, -3:].max()) == 0  # corners: no face
    changed = [not torch.equal(self_blend(x, POINTS, torch.Generator().manual_seed(s))[0], x)
               for s in range(8)]
    assert sum(changed) >= 6


def test_face_region_covers_all_landmarks_and_grows_with_the_scale():
    pix = (POINTS * 64).astype(int)
    for seed in range(6):
        region = face_region(POINTS, 64, torch.Generator().manual_seed(seed))
        assert all(region[y, x] == 1 for x, y in pix)
        assert 0.1 < float(region.mean()) < 0.9


def test_blend_mask_is_soft_at_its_border():
    mask = blend_mask(POINTS, 64, torch.Generator().manual_seed(3))
    values = mask[mask > 0]
    assert (values < values.max() * 0.5).any()  # a blurred boundary, not a hard cut


def test_convex_hull_drops_the_inner_point():
    hull = _convex_hull(np.array([[0, 0], [4, 0], [4, 4], [0, 4], [2, 2]], dtype=float))
    assert len(hull) == 4 and [2.0, 2.0] not in hull.tolist()


def test_self_blend_refuses_missing_landmarks():
    with pytest.raises(ValueError, match="landmarks"):
        self_blend(_face(), np.full((5, 2), np.nan), torch.Generator())


# ------------------------------------------------------------------------------------- dataset


def _catalog(root: Path, n_real: int = 6, n_fake: int = 4, size: int = 32) -> Path:
    rows = []
    for i in range(n_real + n_fake):
        label = int(i >= n_real)
        rel = f"d/v{i}/0000_0.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_face(size, i).permute(1, 2, 0).numpy()).save(root / rel)
        split = "val" if i in (0, 1, n_real) else "train"
        rows.append(CatalogRow(rel, label, "d", f"v{i}", "m" if label else "original", "", split, 0, 0.0, 0,
                               0.99, 0.0, 0.0, 1.0, 1.0, f"v{i % n_real}"))
    write_catalog(root / "catalog.csv", rows)
    return root / "catalog.csv"


def _points(n: int, missing: tuple[int, ...] = ()) -> np.ndarray:
    points = np.repeat(POINTS[None], n, axis=0)
    points[list(missing)] = np.nan
    return points


def test_reals_only_one_pseudo_fake_per_real_and_never_from_faces_without_landmarks(tmp_path):
    base = FaceCatalogDataset(_catalog(tmp_path), split="train", image_size=32, frames_per_video=None)
    reals = np.flatnonzero(base.labels == 0)
    ds = PseudoFakeDataset(base, _points(len(base.rows), missing=(int(reals[0]),)), ratio=1.0)
    kinds = ds.items[:, 1]
    assert (kinds == 0).sum() == len(reals) == (kinds == PSEUDO).sum() and (kinds == 1).sum() == 0
    assert int(reals[0]) not in ds.items[kinds == PSEUDO, 0] and ds.skipped == 1
    x, y, vid = ds[int(np.flatnonzero(kinds == PSEUDO)[0])]
    assert x.dtype == torch.float32 and x.shape == (3, 32, 32) and y == 1 and vid.endswith("#sbi")
    assert all(ds[i][1] == 0 for i in np.flatnonzero(kinds == 0))


def test_ratio_splits_the_fake_samples_between_pseudo_fakes_and_catalog_fakes(tmp_path):
    base = FaceCatalogDataset(_catalog(tmp_path, n_real=8, n_fake=8), split="train", image_size=32)
    n_fake = int((base.labels[base.index] == 1).sum())
    ds = PseudoFakeDataset(base, _points(len(base.rows)), ratio=0.5, seed=1)
    kinds = ds.items[:, 1]
    n_pseudo = round(0.5 * n_fake)
    assert (kinds == PSEUDO).sum() == n_pseudo and (kinds == 1).sum() == n_fake - n_pseudo
    first = ds.items.copy()
    ds.set_epoch(1)
    assert not np.array_equal(first, ds.items) or len(first) < 4  # a fresh draw per epoch


def test_ratio_below_one_needs_catalog_fakes(tmp_path):
    base = FaceCatalogDataset(_catalog(tmp_path, n_fake=0), image_size=32)
    with pytest.raises(ConfigError, match="pseudo-fake-ratio 1"):
        PseudoFakeDataset(base, _points(len(base.rows)), ratio=0.5)


def test_example_grid_is_real_fake_mask_per_row(tmp_path):
    base = FaceCatalogDataset(_catalog(tmp_path), split="train", image_size=32)
    ds = PseudoFakeDataset(base, _points(len(base.rows)), ratio=1.0)
    path = ds.save_examples(tmp_path / "grid.png", n=3)
    with Image.open(path) as img:
        assert img.size == (3 * 32, 3 * 32)


@pytest.fixture()
def fake_detector(monkeypatch):
    """MTCNN stand-in: fixed landmarks for every crop; records the batch sizes it was asked for."""
    seen: list[int] = []

    def detect(images, mtcnn=None):
        seen.append(len(images))
        return _points(len(images))

    monkeypatch.setattr(lm, "_mtcnn", lambda: None)
    monkeypatch.setattr(lm, "detect_landmarks", detect)
    return seen


def test_train_from_reals_only_catalog_fakes_ignored_and_landmarks_cached(tmp_path, fake_detector):
    catalog = _catalog(tmp_path / "data")
    cfg = TrainConfig(dataset=f"catalog:{catalog}", image_size=32, out=str(tmp_path / "run"),
                      pseudo_fakes="sbi", progress=False, frames_per_video=1)
    train, val = build_datasets(cfg)
    assert set(train.base.labels) == {0} and set(val.base.labels) == {0}  # no catalog fake loaded
    assert {int(v) for v in val.items[:, 1]} == {0, PSEUDO}
    assert "ratio 1" in train.notes[0] and (tmp_path / "run" / "cache" / "landmarks.npz").is_file()
    detected = sum(fake_detector)
    build_datasets(cfg)
    assert sum(fake_detector) == detected  # the sidecar answers the rerun


def test_mixed_run_keeps_the_standard_validation(tmp_path, fake_detector):
    cfg = TrainConfig(dataset=f"catalog:{_catalog(tmp_path / 'data')}", image_size=32,
                      out=str(tmp_path / "r"), pseudo_fakes="sbi", pseudo_fake_ratio=0.5, progress=False)
    train, val = build_datasets(cfg)
    assert isinstance(val, FaceCatalogDataset) and set(val.labels) == {0, 1}
    assert (train.items[:, 1] == PSEUDO).any() and (train.items[:, 1] == 1).any()


def test_real_only_catalog_without_pseudo_fakes_is_a_one_line_config_error(tmp_path):
    cfg = TrainConfig(dataset=f"catalog:{_catalog(tmp_path, n_fake=0)}", image_size=32,
                      out=str(tmp_path / "r"))
    with pytest.raises(ConfigError, match="--pseudo-fakes sbi") as err:
        build_datasets(cfg)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------- real landmarks


def test_mtcnn_landmarks_on_real_dfdc_crops_are_ordered_and_cached(dev_dfdc, tmp_path, one_torch_thread,
                                                                    monkeypatch):
    paths = sorted((dev_dfdc / "real").glob("*.jpg"))[:3]
    sidecar = tmp_path / "landmarks.npz"
    points = lm.cached_landmarks(paths, sidecar, show_progress=False)
    found = points[np.isfinite(points).all(axis=(1, 2))]
    assert len(found) >= 2
    for (le, re, nose, ml, mr) in found:
        assert le[0] < re[0] and ml[0] < mr[0]            # left/right as seen in the image
        assert max(le[1], re[1]) < nose[1] < min(ml[1], mr[1])  # eyes above nose above mouth
        assert ((0 < found) & (found < 1)).all()
    monkeypatch.setattr(lm, "_mtcnn", lambda: pytest.fail("MTCNN ran again despite the sidecar"))
    np.testing.assert_array_equal(lm.cached_landmarks(paths, sidecar, show_progress=False), points)
    with Image.open(paths[0]) as img:
        face = torch.from_numpy(np.array(img.convert("RGB").resize((64, 64)))).permute(2, 0, 1).contiguous()
    fake, mask = self_blend(face, found[0], torch.Generator().manual_seed(0))
    assert fake.shape == face.shape and float(mask.max()) > 0


def test_cli_flags_reach_the_train_config():
    from deepshield.cli import parse_args
    from deepshield.cli.values import config_of

    args = parse_args(["train", "--dataset", "catalog:x.csv", "--pseudo-fakes", "sbi", "--pseudo-fake-ratio",
                       "0.5", "--augment", "platform"])
    cfg = config_of(TrainConfig, args)
    assert (cfg.pseudo_fakes, cfg.pseudo_fake_ratio, cfg.augment) == ("sbi", 0.5, "platform")
    with pytest.raises(SystemExit):
        parse_args(["train", "--pseudo-fakes", "sbi", "--pseudo-fake-ratio", "1.5"])
