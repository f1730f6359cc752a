"""Mixtures of datasets (``--dataset mix:FILE``): shares by weight, method balance, splits, errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepshield.config import TrainConfig
from deepshield.data.catalog import CatalogRow, write_catalog
from deepshield.data.datasets import build_datasets, build_eval_dataset, catalog_preprocess_settings
from deepshield.data.mixture import MixtureError, load_mixture


def write_catalog_of(root: Path, dataset: str, videos: list[tuple[str, int, str, str]], frames: int = 3,
                     margin: float = 0.7) -> Path:
    """Tiny PNG crops (grey level = label) of ``videos`` (video_id, label, method, split) and a catalog."""
    rows = []
    for vid, label, method, split in videos:
        for f in range(frames):
            rel = f"{dataset}/{vid}/{f}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((16, 16, 3), 60 + 120 * label, dtype=np.uint8)).save(root / rel)
            source = vid if label == 0 else f"r{vid}"
            rows.append(CatalogRow(rel, label, dataset, vid, method, "", split, f, f * 0.1, 0, 0.99,
                                   0, 0, 9, 9, source))
    write_catalog(root / "catalog.csv", rows)
    (root / "preprocess.json").write_text(json.dumps({"margin": margin, "shift": 0.1, "size": 224,
                                                      "frames_per_video": 32 if dataset == "ffpp" else None}))
    return root / "catalog.csv"


@pytest.fixture()
def two_catalogs(tmp_path: Path) -> tuple[Path, Path]:
    big = [(f"b{i}", i % 2, "unknown" if i % 2 else "original", "train" if i < 40 else "val" if i < 46 else
            "test") for i in range(50)]
    small = [("r1", 0, "original", "train"), ("r2", 0, "original", "train"), ("f1", 1, "Deepfakes", "train"),
             ("f2", 1, "Deepfakes", "train"), ("f3", 1, "Deepfakes", "train"), ("f4", 1, "FaceSwap", "train"),
             ("r3", 0, "original", "val"), ("f5", 1, "FaceSwap", "val"), ("r4", 0, "original", "test"),
             ("f6", 1, "FaceSwap", "test")]
    return (write_catalog_of(tmp_path / "big", "dfdc", big, frames=1),
            write_catalog_of(tmp_path / "small", "ffpp", small))


def write_mixture(path: Path, parts: list[dict], samples: int | None = 600) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({"samples_per_epoch": samples, "parts": parts} if samples else
                                   {"parts": parts}))
    return path


def test_weights_and_method_balance(two_catalogs, tmp_path: Path):
    big, small = two_catalogs
    parts = [{"name": "dfdc", "catalog": str(big), "weight": 3},
             {"name": "ffpp", "catalog": str(small), "balance": "methods"}]
    mix = write_mixture(tmp_path / "mix.yaml", parts)
    cfg = TrainConfig(dataset=f"mix:{mix}", image_size=16, out=str(tmp_path / "run"), frames_per_video=None)
    train, val = build_datasets(cfg)
    assert len(train) == 600
    items = [train[i] for i in range(len(train))]
    by_dataset = Counter(v.split("/")[0] for _, _, v in items)
    assert by_dataset == {"dfdc": 450, "ffpp": 150}
    ffpp = [(y, v) for _, y, v in items if v.startswith("ffpp/")]
    assert sum(y == 0 for y, _ in ffpp) == 75  # half reals
    methods = Counter("FaceSwap" if v.endswith("f4") else "Deepfakes" for y, v in ffpp if y == 1)
    assert abs(methods["FaceSwap"] - methods["Deepfakes"]) <= 1  # 1 FaceSwap video weighs as 3 Deepfakes ones
    # Validation: both parts' val videos; test videos never appear in training or validation.
    val_videos = {v for _, _, v in (val[i] for i in range(len(val)))}
    assert {v.split("/")[0] for v in val_videos} == {"dfdc", "ffpp"}
    assert not {"ffpp/r4", "ffpp/f6", "dfdc/b49"} & (val_videos | {v for _, _, v in items})
    train.set_epoch(1)  # a new draw per epoch
    assert len(train) == 600
    x, y, _ = train[0]
    assert x.shape == (3, 16, 16) and y in (0, 1)


def test_test_split_crop_settings_and_errors(two_catalogs, tmp_path: Path):
    big, small = two_catalogs
    mix = write_mixture(tmp_path / "mix.yaml", [{"catalog": str(big)}, {"catalog": str(small)}], samples=None)
    assert len(build_eval_dataset(f"mix:{mix}", 16)) == 4 + 2 * 3  # dfdc b46..b49, ffpp r4 and f6
    crop = catalog_preprocess_settings(f"mix:{mix}")
    assert crop.margin == 0.7 and crop.frames_per_video == 32  # the video part's frame sampling
    assert load_mixture(mix).parts[0].name == "part1"
    other = write_catalog_of(tmp_path / "wide", "wide", [("w", 0, "original", "train")], margin=1.3)
    bad = write_mixture(tmp_path / "bad.yaml", [{"catalog": str(big)}, {"catalog": str(other)}])
    with pytest.raises(MixtureError, match="cropped differently"):
        catalog_preprocess_settings(f"mix:{bad}")
    only_test = write_catalog_of(tmp_path / "t", "t", [("t1", 0, "original", "test"), ("t2", 1, "x", "test")])
    empty = write_mixture(tmp_path / "empty.yaml", [{"name": "x", "catalog": str(big)},
                                                    {"name": "ffpp", "catalog": str(only_test)}])
    cfg = TrainConfig(dataset=f"mix:{empty}", image_size=16, out=str(tmp_path / "run"))
    with pytest.raises(MixtureError, match="part ffpp: .*no rows for training"):
        build_datasets(cfg)
    for text, match in [("parts: []", "non-empty 'parts'"), ("parts: [{weight: 1}]", "needs at least"),
                        (f"parts: [{{catalog: {big}, balance: odd}}]", "balance 'odd'"),
                        (f"parts: [{{catalog: {big}, weight: 0}}]", "weight must be > 0"),
                        (f"parts: [{{catalog: {big}}}]\nepochs: 3", "unknown key")]:
        (tmp_path / "m.yaml").write_text(text)
        with pytest.raises(MixtureError, match=match):
            load_mixture(tmp_path / "m.yaml")
    with pytest.raises(MixtureError, match="not found"):
        load_mixture(tmp_path / "nope.yaml")
