"""scripts/cross_dataset.py: FF++ video metrics from frame scores, the default-model rule, the section."""

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import cross_dataset as cross  # noqa: E402


def frames() -> dict[str, np.ndarray]:
    """4 videos x 2 frames: reals (0.1/0.3, 0.2/0.6), a Deepfakes (0.9/0.7) and a FaceSwap (0.3/0.5)."""
    videos = np.repeat(["ffpp/r1", "ffpp/r2", "ffpp/df", "ffpp/fs"], 2)
    return {"probs": np.array([0.1, 0.3, 0.2, 0.6, 0.9, 0.7, 0.3, 0.5]),
            "labels": np.repeat([0, 0, 1, 1], 2), "videos": videos,
            "methods": np.repeat(["original", "original", "Deepfakes", "FaceSwap"], 2)}


def test_ffpp_metrics_aggregate_frames_per_video_and_score_methods_against_all_reals():
    m = cross.ffpp_metrics(frames(), cross._ThresholdOf({"ffpp/r1": 0.5, "ffpp/r2": 0.5, "ffpp/df": 0.5,
                                                         "ffpp/fs": 0.5}))
    # video means: r1 0.2, r2 0.4, df 0.8, fs 0.4 (ties r2)
    assert m["videos"] == 4 and m["reals"] == 2 and m["frames"] == 8
    assert m["video_auc"] == pytest.approx((1 + 1 + 1 + 0.5) / 4)
    assert m["methods"]["Deepfakes"]["auc"] == 1.0
    assert m["methods"]["FaceSwap"]["auc"] == pytest.approx(0.75)
    assert m["acc"] == pytest.approx(3 / 4)  # fs (0.4) missed at 0.5
    assert m["tpr_5fpr"] == pytest.approx(0.5)  # no real flagged: only df (0.8 > 0.4) caught


def test_choose_takes_the_best_worst_domain_auc():
    rows = [{"name": "a", "dfdc_auc": 0.95, "ffpp": {"video_auc": 0.70}},
            {"name": "b", "dfdc_auc": 0.91, "ffpp": {"video_auc": 0.88}},
            {"name": "c", "dfdc_auc": 0.80, "ffpp": {"video_auc": 0.95}},
            {"name": "d", "dfdc_auc": 0.99}]  # not measured on FF++: not a candidate
    best, lines = cross.choose(rows)
    assert best["name"] == "b"
    assert "b 0.880, c 0.800, a 0.700" in lines[0]
    assert cross.choose([rows[3]]) == (None, [])


def test_section_marks_rows_without_held_out_ffpp_videos():
    row = {"name": "x-all", "trained_on": "all", "dfdc_auc": 0.9, "dfdc_acc": 0.8,
           "ffpp_pending": "trained on every FF++ video"}
    text = "\n".join(cross.section([row]))
    assert text.startswith(cross.START) and text.endswith(cross.END)
    assert "| x-all | all | 0.900 | 0.800 | — (trained on every FF++ video) |" in text
