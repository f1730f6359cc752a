"""scripts/temporal.py: the head learns a temporal cue that frame averaging cannot see; the table and the
bootstrap are computed out of fold; with a ``{fold}`` checkpoint each fold is scored by its own model."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepshield.config import TrainConfig
from deepshield.data.catalog import CatalogRow, write_catalog
from deepshield.data.synthetic import SyntheticDeepfakeDataset
from deepshield.training.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import temporal  # noqa: E402


def _flicker(videos=48, t=8, d=4, seed=0):
    """Fakes flicker (log-odds alternate ±1.5 around the video's level), reals are steady; the level is
    drawn the same for both, so every aggregation of frame scores is near chance."""
    rng = np.random.default_rng(seed)
    label = np.arange(videos) % 2
    level = rng.normal(0, 1, (videos, 1))
    wave = 1.5 * np.where(np.arange(t) % 2, 1.0, -1.0)[None] * label[:, None]
    lo = (level + wave + 0.1 * rng.normal(size=(videos, t))).astype(np.float32)
    emb = rng.normal(size=(videos, t, d)).astype(np.float32)
    n = np.full(videos, t)
    n[:4] = 5  # short videos: padded by repeating
    return temporal.Features([f"v{i:03d}" for i in range(videos)], emb, lo, n, label,
                             ["original" if y == 0 else "FakeA" for y in label])


def test_the_head_sees_time_that_averaging_cannot():
    f = _flicker()
    train, val, test = np.arange(0, 24), np.arange(24, 32), np.arange(32, 48)
    hcfg = temporal.HeadConfig(frames=8, dim=4, width=8, embeddings=False, dropout=0.0)
    torch.set_num_threads(1)
    head, step = temporal.train_head(f, train, val, hcfg, temporal.TrainSpec(steps=150, lr=1e-2))
    aggs = temporal.aggregation_scores(f)
    assert temporal.auc(f.label[test], aggs["mean"][test]) < 0.8
    assert step > 0 and temporal.auc(f.label[test], temporal.head_logits(head, f, test)) > 0.95


def test_batch_pads_short_videos_and_augments_within_the_video():
    f = _flicker()
    emb, lo = temporal.batch(f, np.array([0, 10]), 8)
    assert emb.shape == (2, 8, 4) and lo.shape == (2, 8)
    assert torch.equal(lo[0], torch.from_numpy(f.lo[0, [0, 1, 1, 2, 2, 3, 3, 4]]))
    _, aug = temporal.batch(f, np.array([10]), 8, np.random.default_rng(0))
    assert set(aug[0].tolist()) <= set(f.lo[10].tolist())


def test_summary_rows_and_bootstrap():
    f = _flicker()
    folds = [{k: ("test" if i % 3 == j else "train") for i, k in enumerate(f.keys)} for j in range(3)]
    rows = temporal.aggregation_scores(f)
    rows["oracle"] = f.label + 0.0
    result = temporal.summarize(f, folds, rows, {"oracle": [1.0, 1.0]})
    oracle = result["rows"]["oracle"]
    assert oracle["auc"] == 1.0 and oracle["by_method"] == {"FakeA": 1.0} and len(oracle["fold_auc"]) == 3
    assert oracle["diff_ci95"][0] > 0 and result["rows"]["mean"]["diff_vs_mean"] == 0
    assert "| oracle (2-seed ensemble; seeds 1.000 ± 0.000) | 1.000 |" in temporal.markdown(result)
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.5, 0.5, 0.9, 0.3, 0.2])
    assert temporal._rank_auc(y[None], s[None])[0] == pytest.approx(temporal.auc(y, s))


def _fold_catalogs(tmp: Path, videos: int = 12, frames: int = 3) -> Path:
    """Synthetic 32 px crops of ``videos`` videos (reals and fakes alternating) and three fold catalogs of
    them: video v is in fold (v // 2) % 3, so every fold's test holds reals and fakes; val = next fold."""
    data = SyntheticDeepfakeDataset(4 * videos * frames, image_size=32, seed=5)
    pools = {lab: iter(torch.nonzero(data.labels == lab).squeeze(1).tolist()) for lab in (0, 1)}
    items = []
    for v in range(videos):
        for t in range(frames):
            path = tmp / "crops" / f"v{v:02d}" / f"{t}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            image = data.images[next(pools[v % 2])].permute(1, 2, 0).numpy()
            Image.fromarray((image * 255).round().astype(np.uint8)).save(path)
            items.append((v, t, f"../../crops/v{v:02d}/{t}.png"))
    for k in range(3):
        split = {0: "test", 1: "val", 2: "train"}
        rows = [CatalogRow(path, v % 2, "syn", f"v{v:02d}", "FakeA" if v % 2 else "original", "",
                           split[((v // 2) - k) % 3], t, t / 25, 0, 1.0, 0, 0, 32, 32, f"v{v:02d}")
                for v, t, path in items]
        (tmp / "folds" / f"fold{k}").mkdir(parents=True)
        write_catalog(tmp / "folds" / f"fold{k}" / "catalog.csv", rows)
    return tmp / "folds"


def test_fold_template_scores_each_fold_with_its_own_checkpoint(tmp_path, trained_cnn):
    """Fold 1's frame model has its classes swapped: only fold 1's test videos must see it, in the
    aggregation rows too (their AUC on fold 1 flips to 1 - AUC), and features are cached per checkpoint."""
    folds = _fold_catalogs(tmp_path)
    config = TrainConfig(backbone="small_cnn", image_size=32).to_dict()
    flipped = {k: (v.flip(0) if k.startswith("head.") else v) for k, v in trained_cnn.state_dict().items()}
    for k in range(3):
        save_checkpoint(tmp_path / f"run-fold{k}" / "best.pt", config=config,
                        model=flipped if k == 1 else trained_cnn.state_dict())
    fast = ["--folds", str(folds), "--frames", "3", "--seeds", "1", "--steps", "2"]
    for checkpoint, out in (("run-fold0", "one"), ("run-fold{fold}", "per")):
        temporal.main(["--checkpoint", str(tmp_path / checkpoint / "best.pt"), "--out", str(tmp_path / out),
                       *fast])
    one = json.loads((tmp_path / "one" / "temporal.json").read_text())
    per = json.loads((tmp_path / "per" / "temporal.json").read_text())
    assert (tmp_path / "one" / "features.npz").is_file() and not (tmp_path / "per" / "features.npz").exists()
    assert all((tmp_path / "per" / f"features-fold{k}.npz").is_file() for k in range(3))
    assert per["fold_checkpoints"][1] == str(tmp_path / "run-fold1" / "best.pt")
    for name in temporal.AGGS:
        a, b = one["rows"][name]["fold_auc"], per["rows"][name]["fold_auc"]
        assert a[1] != 0.5 and b[1] == pytest.approx(1 - a[1])
        assert (b[0], b[2]) == pytest.approx((a[0], a[2]))
    assert np.isfinite([r["auc"] for r in per["rows"].values()]).all()
    with pytest.raises(SystemExit, match="not found"):
        temporal.main(["--checkpoint", str(tmp_path / "gone{fold}.pt"), "--out", str(tmp_path / "x"), *fast])
