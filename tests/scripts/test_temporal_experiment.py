"""scripts/temporal.py: the head learns a temporal cue that frame averaging cannot see; the table and the
bootstrap are computed out of fold."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

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
