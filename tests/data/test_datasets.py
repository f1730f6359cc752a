"""FaceCatalogDataset and the catalog dataset specs: filters, per-epoch sampling, balance, splits, cache.

Logic tests use a tiny catalog of synthetic faces written here; the end-to-end tests use crops that
the preprocessing pipeline cuts from the real FF++ dev videos (../shared/data/dev).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepshield.config import TrainConfig
from deepshield.data.catalog import CatalogRow, read_catalog, write_catalog
from deepshield.data.datasets import (
    FaceCatalogDataset,
    build_datasets,
    build_eval_dataset,
    holdout_videos,
    parse_catalog_arg,
    read_crop,
    subset_videos,
)
from deepshield.data.synthetic import SyntheticDeepfakeDataset
from deepshield.errors import DataError, MissingFileError

# (video_id, label, method, compression, split, frames)
VIDEOS = [
    ("original/c23/001", 0, "original", "c23", "train", 6),
    ("original/c23/002", 0, "original", "c23", "train", 5),
    ("original/c40/003", 0, "original", "c40", "val", 4),
    ("Deepfakes/c23/001_009", 1, "Deepfakes", "c23", "train", 6),
    ("Face2Face/c23/001_009", 1, "Face2Face", "c23", "train", 6),
    ("FaceSwap/c23/002_008", 1, "FaceSwap", "c23", "train", 6),
    ("NeuralTextures/c23/002_008", 1, "NeuralTextures", "c23", "train", 6),
    ("Deepfakes/c40/003_007", 1, "Deepfakes", "c40", "val", 4),
    ("Deepfakes/c23/004_005", 1, "Deepfakes", "c23", "test", 3),
    ("original/c23/004", 0, "original", "c23", "test", 3),
]


def write_tiny_catalog(root: Path, size: int = 24, splits: bool = True) -> Path:
    """Synthetic-face PNG crops (label-consistent) and their catalog.csv under ``root``."""
    faces = SyntheticDeepfakeDataset(64, image_size=size, seed=3)
    rows, k = [], {0: 0, 1: 1}
    for vid, label, method, comp, split, n in VIDEOS:
        source = vid if label == 0 else f"original/{comp}/{vid.rsplit('/', 1)[1].split('_')[0]}"
        for f in range(n):
            img = (faces.images[k[label] % 64].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            k[label] += 2
            rel = f"ffpp/{vid}/{f:04d}_0.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / rel)
            rows.append(CatalogRow(rel, label, "ffpp", vid, method, comp, split if splits else "unassigned",
                                   10 * f, 0.4 * f, 0, 0.99, 1.0, 2.0, 20.0, 22.0, source))
    write_catalog(root / "catalog.csv", rows)
    return root / "catalog.csv"


@pytest.fixture()
def tiny(tmp_path) -> Path:
    return write_tiny_catalog(tmp_path)


# ------------------------------------------------------------------------------------------ logic


def test_items_are_float_images_int_labels_and_video_ids(tiny):
    ds = FaceCatalogDataset(tiny, image_size=16)
    x, y, vid = ds[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert isinstance(y, int) and isinstance(vid, str) and vid in ds.video_methods
    assert len(ds) == sum(v[-1] for v in VIDEOS)
    assert ds.video_methods["ffpp/original/c23/001"] == "original"
    assert ds.video_methods["ffpp/Deepfakes/c23/001_009"] == "Deepfakes"
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch[0].shape == (4, 3, 16, 16) and batch[1].dtype == torch.int64 and len(batch[2]) == 4


def test_filters(tiny):
    only = FaceCatalogDataset(tiny, split="train", methods=["original", "Deepfakes"], compressions="c23")
    assert set(only.video_methods) == {"ffpp/original/c23/001", "ffpp/original/c23/002",
                                       "ffpp/Deepfakes/c23/001_009"}
    assert FaceCatalogDataset(tiny, split="val").video_labels == {"ffpp/original/c40/003": 0,
                                                                  "ffpp/Deepfakes/c40/003_007": 1}
    with pytest.raises(DataError, match="no rows match"):
        FaceCatalogDataset(tiny, datasets="celebdf")


def test_fresh_seeded_sample_of_frames_per_video_each_epoch(tiny):
    ds = FaceCatalogDataset(tiny, split="train", frames_per_video=3, seed=1)
    per_video = Counter(ds.row_videos[i] for i in ds.index)
    assert set(per_video.values()) == {3} and len(ds) == 3 * 6
    first = ds.index.copy()
    ds.set_epoch(1)
    assert len(ds) == len(first) and not np.array_equal(ds.index, first)
    ds.set_epoch(0)
    assert np.array_equal(ds.index, first)
    other = FaceCatalogDataset(tiny, split="train", frames_per_video=3, seed=2)
    assert not np.array_equal(other.index, first)


def test_uniform_sampling_is_evenly_spaced_and_fixed(tiny):
    ds = FaceCatalogDataset(tiny, split="train", frames_per_video=3, sampling="uniform")
    frames = [ds.rows[i].frame_index for i in ds.index if ds.row_videos[i] == "ffpp/original/c23/001"]
    assert frames == [0, 20, 50]  # 6 frames (0, 10, ..., 50): first, middle, last
    before = ds.index.copy()
    ds.set_epoch(3)
    assert np.array_equal(ds.index, before)


def test_class_balanced_sampling(tiny):
    plain = FaceCatalogDataset(tiny, split="train", frames_per_video=2)
    assert Counter(plain.labels[plain.index].tolist()) == {0: 4, 1: 8}
    ds = FaceCatalogDataset(tiny, split="train", frames_per_video=2, balance=True)
    assert Counter(ds.labels[ds.index].tolist()) == {0: 8, 1: 8}
    extra_videos = Counter(ds.row_videos[i] for i in ds.index[len(plain):])
    assert set(extra_videos) == {"ffpp/original/c23/001", "ffpp/original/c23/002"}  # round-robin over reals


def test_augmented_items_repeat_per_seed_and_epoch(tiny):
    from deepshield.data.transforms import build_train_transform

    def make():
        return FaceCatalogDataset(tiny, split="train", frames_per_video=2, image_size=24,
                                  transform=build_train_transform(24), seed=4)

    a, b = make(), make()
    assert all(torch.equal(a[i][0], b[i][0]) for i in range(len(a)))
    clean = FaceCatalogDataset(tiny, split="train", frames_per_video=2, image_size=24, seed=4)
    assert any(not torch.equal(a[i][0], clean[i][0]) for i in range(len(a)))
    x0 = a[0][0]
    a.set_epoch(1)
    b.set_epoch(1)
    assert torch.equal(a[0][0], b[0][0]) and not torch.equal(a[0][0], x0)


def test_train_val_from_catalog_splits(tiny, tmp_path):
    cfg = TrainConfig(dataset=f"catalog:{tiny}", image_size=16, frames_per_video=2, out=str(tmp_path / "run"))
    train, val = build_datasets(cfg)
    assert {r.split for r in train.rows} == {"train"} and {r.split for r in val.rows} == {"val"}
    assert len(val) == 4 and val.transform is not train.transform
    assert (tmp_path / "run" / "cache").is_dir()


def test_holdout_without_splits_keeps_videos_and_sources_together(tmp_path):
    path = write_tiny_catalog(tmp_path, splits=False)
    rows = read_catalog(path)
    cfg = TrainConfig(dataset=f"catalog:{path}", image_size=16, frames_per_video=None, seed=0,
                      out=str(tmp_path / "r"))
    train, val = build_datasets(cfg)
    train_videos, val_videos = set(train.row_videos), set(val.row_videos)
    assert train_videos and val_videos and not train_videos & val_videos
    assert len(train.rows) + len(val.rows) == len(rows)
    assert {0, 1} <= set(train.labels.tolist()) and {0, 1} <= set(val.labels.tolist())

    def sources(ds):
        return {r.source_video for r in ds.rows}

    assert not sources(train) & sources(val)
    assert holdout_videos(rows, seed=0) == val_videos  # seeded
    assert all(len({r.video_key for r in rows} & holdout_videos(rows, seed=s)) >= 2 for s in range(5))


def test_test_split_rows_never_reach_training(tmp_path):
    path = write_tiny_catalog(tmp_path)
    rows = [replace(r, split="unassigned") if r.split == "val" else r for r in read_catalog(path)]
    write_catalog(path, rows)
    train, val = build_datasets(TrainConfig(dataset=f"catalog:{path}", image_size=16,
                                            out=str(tmp_path / "r")))
    assert "test" not in {r.split for r in train.rows + val.rows}
    train_only, _ = build_datasets(TrainConfig(dataset=f"catalog:{path}:train", image_size=16,
                                               out=str(tmp_path / "r")))
    assert {r.split for r in train_only.rows} == {"train"}


def test_eval_dataset_is_the_split_unaugmented_with_all_frames(tiny):
    ds = build_eval_dataset(f"catalog:{tiny}:test", image_size=24)
    assert len(ds) == 6 and {r.split for r in ds.rows} == {"test"}
    x, y, vid = ds[0]
    assert torch.equal(x, torch.from_numpy(read_crop(ds.paths[ds.index[0]], 24)).float() / 255)
    assert len(build_eval_dataset(f"catalog:{tiny}", image_size=24)) == sum(v[-1] for v in VIDEOS)
    assert len(build_eval_dataset(f"catalog:{tiny}:test", image_size=24, frames_per_video=1)) == 2
    assert parse_catalog_arg("a:b/catalog.csv:val") == (Path("a:b/catalog.csv"), "val")
    assert parse_catalog_arg("faces/catalog.csv") == (Path("faces/catalog.csv"), None)


def test_missing_crop_names_the_file(tiny):
    ds = FaceCatalogDataset(tiny, split="test")
    ds.paths[ds.index[0]].unlink()
    with pytest.raises(MissingFileError, match="rerun deepshield preprocess"):  # a FileNotFoundError
        ds[0]


def test_cache_is_keyed_by_rows_and_follows_catalog_changes(tiny, tmp_path):
    cache = tmp_path / "cache"
    a = FaceCatalogDataset(tiny, split="train", image_size=16, cache_dir=cache)
    b = FaceCatalogDataset(tiny, split="train", image_size=16, cache_dir=cache)
    assert a.cache.root == b.cache.root
    assert FaceCatalogDataset(tiny, split="train", image_size=20, cache_dir=cache).cache.root != a.cache.root
    rows = read_catalog(tiny)
    write_catalog(tiny, [replace(r, label=1 - r.label) if i == 0 else r for i, r in enumerate(rows)])
    assert FaceCatalogDataset(tiny, split="train", image_size=16, cache_dir=cache).cache.root != a.cache.root


# ------------------------------------------------------------------------- real FF++ face crops


@pytest.fixture(scope="module")
def ffpp_catalog(dev_data, tmp_path_factory) -> Path:
    """3 crops of 64 px per video from the 7 real FF++ dev videos, cut by ``deepshield preprocess``."""
    from deepshield.data.preprocess import PreprocessConfig, run_preprocess

    out = tmp_path_factory.mktemp("ffpp_faces")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # MTCNN's many small ops run faster on one thread of a busy 2-core box
    try:
        run_preprocess(PreprocessConfig(root=dev_data / "ffpp", layout="ffpp", out=out, frames_per_video=3,
                                        size=64, max_side=320, split_ratios="1,0,0"), progress=False)
    finally:
        torch.set_num_threads(threads)
    assert len({r.video_id for r in read_catalog(out / "catalog.csv")}) == 7
    return out / "catalog.csv"


@pytest.mark.slow
def test_no_frame_of_one_video_in_two_splits(ffpp_catalog, tmp_path):
    rows = read_catalog(ffpp_catalog)
    assert {r.split for r in rows} == {"train"}  # every group in train: validation is a seeded holdout
    cfg = TrainConfig(dataset=f"catalog:{ffpp_catalog}", image_size=64, out=str(tmp_path))
    train, val = build_datasets(cfg)
    assert not set(train.row_videos) & set(val.row_videos)
    assert not {r.path for r in train.rows} & {r.path for r in val.rows}
    assert len(train.rows) + len(val.rows) == len(rows)
    for ds in (train, val):
        assert set(ds.labels.tolist()) == {0, 1}
    assert not {r.source_video for r in train.rows} & {r.source_video for r in val.rows}


@pytest.mark.slow
def test_cache_hit_on_second_epoch_gives_the_uncached_tensors(ffpp_catalog, tmp_path, monkeypatch):
    uncached = FaceCatalogDataset(ffpp_catalog, image_size=64)
    expected = [uncached[i] for i in range(len(uncached))]
    cached = FaceCatalogDataset(ffpp_catalog, image_size=64, cache_dir=tmp_path / "cache")
    first = [cached[i] for i in range(len(cached))]  # epoch 0 decodes and fills the cache
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, expected, strict=True))
    cached.set_epoch(1)
    assert cached.cache.complete and (cached.cache.root / "COMPLETE").exists()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr("deepshield.data.datasets.read_crop", no_decoding)
    second = [cached[i] for i in range(len(cached))]
    reopened = FaceCatalogDataset(ffpp_catalog, image_size=64, cache_dir=tmp_path / "cache")
    third = [reopened[i] for i in range(len(reopened))]
    for got in (second, third):
        assert len(got) == len(expected)
        for (x, y, vid), (ex, ey, evid) in zip(got, expected, strict=True):
            assert torch.equal(x, ex) and (y, vid) == (ey, evid)


@pytest.mark.slow
def test_efficientnet_b0_trains_one_epoch_on_real_crops_and_evaluates(ffpp_catalog, tmp_path):
    from deepshield.training.trainer import train

    cfg = TrainConfig(dataset=f"catalog:{ffpp_catalog}", backbone="efficientnet_b0", image_size=64, epochs=1,
                      batch_size=8, frames_per_video=2, lr=1e-3, out=str(tmp_path / "run"), progress=False)
    result = train(cfg)
    assert result.best_path.exists() and np.isfinite(result.metrics["train_loss"])
    assert 0 <= result.metrics["val_acc"] <= 1
    assert list((tmp_path / "run" / "cache").iterdir())  # decoded crops were cached under the run
    # Evaluate the best checkpoint on every crop of the catalog, frame by frame with video ids.
    from torch.utils.data import DataLoader

    from deepshield.models import build_model
    from deepshield.models.loading import load_checkpoint
    from deepshield.training.loops import predict

    model = build_model("efficientnet_b0", num_classes=2, image_size=64)
    model.load_state_dict(load_checkpoint(result.best_path, map_location="cpu")["model"])
    test_ds = build_eval_dataset(f"catalog:{ffpp_catalog}", image_size=64)
    preds = predict(model, DataLoader(test_ds, batch_size=16), torch.device("cpu"))
    assert len(preds.probs) == len(read_catalog(ffpp_catalog)) and np.isfinite(preds.probs).all()
    assert set(preds.video_ids) == set(test_ds.video_methods) and len(test_ds.video_methods) == 7
    methods = {"original", "Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"}
    assert set(test_ds.video_methods.values()) == methods
    assert sorted(set(preds.labels.tolist())) == [0, 1]


def test_subset_videos_is_seeded_whole_videos_and_keeps_the_label_balance():
    rows = [CatalogRow(f"v{v}/{f}.png", v % 2, "d", f"v{v}", "m", "", "test", f, 0.0, 0, 1.0, 0, 0, 1, 1,
                       f"v{v}") for v in range(40) for f in range(3)]
    picked = subset_videos(rows, 10, seed=1)
    videos = {r.video_id for r in picked}
    assert len(videos) == 10 and len(picked) == 30  # whole videos: all 3 frames each
    assert Counter(r.label for r in picked) == {0: 15, 1: 15}
    assert picked == subset_videos(rows, 10, seed=1)
    assert videos != {r.video_id for r in subset_videos(rows, 10, seed=2)}
    assert subset_videos(rows, 100) == rows


def test_max_val_validates_on_a_seeded_label_balanced_subset_of_whole_videos(tmp_path):
    path = write_tiny_catalog(tmp_path)
    keep_train = {"ffpp/original/c23/001", "ffpp/Deepfakes/c23/001_009"}
    rows = [r if r.split == "test" or r.video_key in keep_train else replace(r, split="val")
            for r in read_catalog(path)]
    write_catalog(path, rows)  # 6 validation videos: 2 real, 4 fake
    base = dict(dataset=f"catalog:{path}", image_size=16, frames_per_video=None, seed=0,
                out=str(tmp_path / "r"))
    _, full = build_datasets(TrainConfig(**base))
    _, small = build_datasets(TrainConfig(**base, max_val=3))
    _, again = build_datasets(TrainConfig(**base, max_val=3))
    videos = set(small.row_videos)
    assert len(set(full.row_videos)) == 6 and len(videos) == 3  # a real cut
    assert videos <= set(full.row_videos) and set(again.row_videos) == videos
    assert set(small.labels.tolist()) == {0, 1}
    # whole videos: every frame of a kept video is kept
    assert len(small.rows) == sum(1 for r in full.rows if r.video_key in {r.video_key for r in small.rows})
