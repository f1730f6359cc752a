"""Metrics against values computed by hand on small fixed arrays."""

import math

import numpy as np
import pytest

from deepshield.evaluation.metrics import (
    aggregate_videos,
    binary_metrics,
    detection_metrics,
    eer,
    per_method,
    roc_points,
    sample_methods,
    tpr_at_fpr,
    video_metrics,
)

LABELS = [0, 0, 0, 1, 1, 1]
PROBS = [0.1, 0.2, 0.7, 0.3, 0.8, 0.9]


def test_binary_metrics_by_hand():
    m = binary_metrics(LABELS, PROBS)
    # threshold 0.5: reals 0.1, 0.2 right, 0.7 wrong; fakes 0.8, 0.9 right, 0.3 wrong -> 4/6
    assert m["acc"] == pytest.approx(4 / 6)
    assert m["real_acc"] == pytest.approx(2 / 3) and m["fake_acc"] == pytest.approx(2 / 3)
    # AUC: of 9 (fake, real) pairs, the fake scores higher in all but (0.3 vs 0.7) -> 8/9
    assert m["auc"] == pytest.approx(8 / 9)
    # AP: ranking 0.9 F, 0.8 F, 0.7 R, 0.3 F -> precisions at the fakes 1, 1, 3/4; mean over 3 fakes
    assert m["ap"] == pytest.approx((1 + 1 + 0.75) / 3)
    # at threshold 0.7 one real of three is called fake and one fake of three is missed -> EER 1/3
    assert m["eer"] == pytest.approx(1 / 3)
    assert m["n"] == 6


def test_tpr_at_1fpr_by_hand():
    # Fewer than 100 reals: no false positive is allowed, so the threshold sits above the top real (0.7):
    # at 0.8 the fakes 0.8, 0.9 are flagged, 0.3 is not.
    m = binary_metrics(LABELS, PROBS)
    assert m["tpr_at_1fpr"] == pytest.approx(2 / 3) and m["threshold_1fpr"] == pytest.approx(0.8)
    # 100 reals 0.00 .. 0.99: one false positive (the real at 0.99) is allowed, two are not. Fakes at
    # 0.995 and 0.985 pass the threshold 0.985; 0.97 and 0.5 would need it below the real at 0.98.
    reals = np.arange(100) / 100
    labels = [0] * 100 + [1] * 4
    tpr, thr = tpr_at_fpr(labels, [*reals, 0.995, 0.985, 0.97, 0.5])
    assert tpr == pytest.approx(0.5) and thr == pytest.approx(0.985)
    # Ties: a fake scored like the reals cannot be separated from them.
    tpr, thr = tpr_at_fpr([0] * 100 + [1, 1], [0.5] * 101 + [0.6])
    assert tpr == pytest.approx(0.5) and thr == pytest.approx(0.6)
    # No fake above the top real: nothing can be flagged.
    tpr, thr = tpr_at_fpr([0, 0, 1], [0.9, 0.1, 0.5])
    assert tpr == 0 and thr == math.inf
    # Not the 0.5-threshold accuracy: all fakes are flagged at 0.3 while fake_acc (at 0.5) is 0.
    m = binary_metrics([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4])
    assert m["tpr_at_1fpr"] == 1.0 and m["fake_acc"] == 0.0 and m["threshold_1fpr"] == pytest.approx(0.3)


def test_eer_interpolates_between_roc_points():
    # ROC: (0,0) (0,.5) (.5,.5) (.5,1) (1,1); fnr = fpr = 0.5 at threshold 0.6
    assert eer([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9]) == pytest.approx(0.5)
    assert eer([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(0.0)
    assert eer([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == pytest.approx(1.0)
    # crossing strictly between ROC points: fpr .. (0, 1/2) -> (1/2... ) checked against brute force
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    grid = np.unique(p)
    fpr = np.array([((p >= t) & (y == 0)).sum() / (y == 0).sum() for t in grid])
    fnr = np.array([((p < t) & (y == 1)).sum() / (y == 1).sum() for t in grid])
    brute = (fpr + fnr)[np.argmin(np.abs(fpr - fnr))] / 2
    assert eer(y, p) == pytest.approx(brute, abs=0.02)


def test_one_class_gives_nan_ranking_metrics():
    m = binary_metrics([1, 1], [0.7, 0.2])
    assert m["acc"] == 0.5 and math.isnan(m["auc"]) and math.isnan(m["eer"]) and math.isnan(m["real_acc"])
    assert math.isnan(m["tpr_at_1fpr"]) and math.isnan(m["threshold_1fpr"])


def test_video_aggregation_groups_by_video_id():
    labels = [0, 0, 1, 1, 1, 0]
    probs = [0.2, 0.4, 0.9, 0.1, 0.8, 0.6]
    vids = ["a", "a", "b", "b", "b", "c"]
    vl, vp, ids = aggregate_videos(labels, probs, vids, "mean")
    assert ids == ["a", "b", "c"]
    assert vl.tolist() == [0, 1, 0]
    assert vp == pytest.approx([0.3, 0.6, 0.6])
    # top50: mean of the upper half of each video's sorted scores
    _, vp, _ = aggregate_videos(labels, probs, vids, "top50")
    assert vp == pytest.approx([0.4, (0.8 + 0.9) / 2, 0.6])
    v = video_metrics(labels, probs, vids)
    assert v["mean"]["n"] == 3 and v["mean"]["acc"] == pytest.approx(2 / 3)
    assert v["top50"]["acc"] == pytest.approx(2 / 3)


def test_video_with_mixed_labels_is_an_error():
    with pytest.raises(ValueError, match="video 'a'"):
        aggregate_videos([0, 1], [0.1, 0.9], ["a", "a"])
    with pytest.raises(ValueError, match="unknown video aggregation"):
        aggregate_videos([0], [0.1], ["a"], "max")


def test_per_method_scores_each_method_against_all_reals():
    labels = np.array([0, 0, 1, 1, 1, 1])
    probs = np.array([0.1, 0.6, 0.9, 0.8, 0.2, 0.7])
    methods = ["original", "original", "Deepfakes", "Deepfakes", "FaceSwap", "FaceSwap"]
    out = per_method(labels, probs, methods)
    assert sorted(out) == ["Deepfakes", "FaceSwap", "real"]
    assert out["Deepfakes"]["n"] == 4 and out["Deepfakes"]["auc"] == pytest.approx(1.0)
    # FaceSwap fakes 0.2, 0.7 vs reals 0.1, 0.6: pairs won 3 of 4
    assert out["FaceSwap"]["auc"] == pytest.approx(0.75)
    assert out["real"]["n"] == 2 and out["real"]["acc"] == pytest.approx(0.5)


def test_detection_metrics_with_and_without_videos():
    vids = ["r1", "r1", "f1", "f1", "f2", "f2"]
    d = detection_metrics(LABELS, PROBS)
    assert set(d) >= {"acc", "auc"} and "video" not in d and "by_method" not in d
    labels = [0, 0, 1, 1, 1, 1]
    methods = sample_methods(labels, vids, {"r1": "original", "f1": "Deepfakes", "f2": "NeuralTextures"})
    assert methods == ["real", "real", "Deepfakes", "Deepfakes", "NeuralTextures", "NeuralTextures"]
    d = detection_metrics(labels, [0.1, 0.3, 0.8, 0.6, 0.4, 0.9], vids, methods)
    assert d["video"]["mean"]["n"] == 3
    assert set(d["by_method"]) == {"real", "Deepfakes", "NeuralTextures"}
    assert d["by_method"]["NeuralTextures"]["video"]["n"] == 2
    assert sample_methods(labels, None, {"r1": "x"}) is None


def test_roc_points_thinned_with_endpoints():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 5000)
    p = rng.random(5000)
    r = roc_points(y, p, max_points=50)
    assert len(r["fpr"]) <= 50 and r["fpr"][0] == 0 and r["fpr"][-1] == 1 and r["tpr"][-1] == 1
    assert roc_points([1, 1], [0.2, 0.3]) == {"fpr": [], "tpr": []}
