"""Detection metrics (scikit-learn): accuracy, ROC-AUC, average precision, EER; frame and video level.

Labels are 1 = fake, 0 = real; scores are fake probabilities in [0, 1]; a sample is called fake when its
score is >= ``threshold`` (0.5).

Video level: frame scores are grouped by video id and aggregated, then the metrics are computed over
videos. ``mean`` (average fake probability of the video's frames) is the headline number, as in the
FaceForensics++ and DFDC evaluations. The documented alternative is ``top50``: the mean of the most
fake-looking half of the frames, so a video whose manipulation shows in only part of its frames (or
whose face is lost in some of them) is not averaged back under the threshold.

Per method: every fake method (e.g. FF++ Deepfakes, Face2Face, FaceSwap, NeuralTextures) is scored
against *all* the reals, so each method's AUC answers "can it tell this manipulation from real faces".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from deepshield.contracts.aggregate import aggregate_videos

VIDEO_AGGREGATIONS = ("mean", "top50")


def eer(labels: Sequence[int], probs: Sequence[float]) -> float:
    """Equal error rate: where the false-positive rate equals the false-negative rate (interpolated)."""
    fpr, tpr, _ = roc_curve(np.asarray(labels), np.asarray(probs, dtype=float))
    fnr = 1 - tpr
    i = int(np.argmax(fnr <= fpr))  # first ROC point where the curves have crossed
    if i == 0:
        return float((fpr[0] + fnr[0]) / 2)
    # Linear interpolation between the two ROC points that bracket fpr == fnr.
    d0, d1 = fpr[i - 1] - fnr[i - 1], fpr[i] - fnr[i]
    t = d0 / (d0 - d1) if d0 != d1 else 0.0
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def tpr_at_fpr(labels: Sequence[int], probs: Sequence[float], max_fpr: float = 0.01) -> tuple[float, float]:
    """(TPR on fakes, threshold) at the operating point that flags the most fakes while calling at most
    ``max_fpr`` of the reals fake; a sample is flagged when its score >= threshold (inf: none can be).
    (NaN, NaN) with one class."""
    labels = np.asarray(labels, dtype=int)
    if len(np.unique(labels)) < 2:
        return float("nan"), float("nan")
    fpr, tpr, thresholds = roc_curve(labels, np.asarray(probs, dtype=float), drop_intermediate=False)
    i = int(np.flatnonzero(fpr <= max_fpr + 1e-12)[-1])  # fpr rises with i; index 0 is (0, 0) at inf
    return float(tpr[i]), float(thresholds[i])


def binary_metrics(labels: Sequence[int], probs: Sequence[float], threshold: float = 0.5) -> dict[str, float]:
    """n, acc, auc, ap, eer, real_acc (true-negative rate), fake_acc (true-positive rate), tpr_at_1fpr
    (fakes flagged at the threshold that flags at most 1% of reals) and that threshold_1fpr.

    Under attack, ``fake_acc`` is the fake->real (evasion) direction and ``real_acc`` the real->fake
    (framing) direction. Ranking metrics (auc, ap, eer, tpr_at_1fpr, threshold_1fpr) are NaN when only
    one class is present; so is the accuracy of an absent class.
    """
    labels, probs = np.asarray(labels, dtype=int), np.asarray(probs, dtype=float)
    pred = (probs >= threshold).astype(int)
    hit = pred == labels
    nan = float("nan")
    out = {"n": int(len(labels)), "acc": float(hit.mean()) if len(labels) else nan}
    both = len(np.unique(labels)) == 2
    out["auc"] = float(roc_auc_score(labels, probs)) if both else nan
    out["ap"] = float(average_precision_score(labels, probs)) if both else nan
    out["eer"] = eer(labels, probs) if both else nan
    out["real_acc"] = float(hit[labels == 0].mean()) if (labels == 0).any() else nan
    out["fake_acc"] = float(hit[labels == 1].mean()) if (labels == 1).any() else nan
    out["tpr_at_1fpr"], out["threshold_1fpr"] = tpr_at_fpr(labels, probs, 0.01)
    return out


def video_metrics(
    labels: Sequence[int], probs: Sequence[float], video_ids: Sequence[str],
    aggregations: Sequence[str] = VIDEO_AGGREGATIONS, threshold: float = 0.5,
) -> dict[str, dict[str, float]]:
    """{aggregation: binary_metrics over videos} for each aggregation (``mean`` first)."""
    out = {}
    for how in aggregations:
        vl, vp, _ = aggregate_videos(labels, probs, video_ids, how)
        out[how] = binary_metrics(vl, vp, threshold)
    return out


def sample_methods(
    labels: Sequence[int], video_ids: Sequence[str] | None, video_methods: Mapping[str, str] | None
) -> list[str] | None:
    """Each sample's manipulation method (``"real"`` for label 0), or None without methods/video ids."""
    if not video_methods or video_ids is None:
        return None
    return ["real" if int(lab) == 0 else str(video_methods.get(str(v), video_methods.get(v, "unknown")))
            for lab, v in zip(labels, video_ids, strict=True)]


def per_method(
    labels: Sequence[int], probs: Sequence[float], methods: Sequence[str],
    video_ids: Sequence[str] | None = None, threshold: float = 0.5,
) -> dict[str, dict]:
    """Metrics of each fake method against all reals (frame level, plus video ``mean`` with ids).

    ``methods`` gives each sample's method (reals may carry any name; label 0 decides). The ``real``
    entry holds the accuracy on the reals alone.
    """
    labels, probs = np.asarray(labels, dtype=int), np.asarray(probs, dtype=float)
    methods = np.asarray([str(m) for m in methods])
    real = labels == 0
    out: dict[str, dict] = {}
    subsets = {"real": real}
    subsets.update({m: real | ((labels == 1) & (methods == m)) for m in sorted(set(methods[labels == 1]))})
    for name, keep in subsets.items():
        entry = binary_metrics(labels[keep], probs[keep], threshold)
        if video_ids is not None:
            vids = [video_ids[i] for i in np.flatnonzero(keep)]
            entry["video"] = video_metrics(labels[keep], probs[keep], vids, ("mean",), threshold)["mean"]
        out[name] = entry
    return out


def detection_metrics(
    labels: Sequence[int], probs: Sequence[float], video_ids: Sequence[str] | None = None,
    methods: Sequence[str] | None = None, threshold: float = 0.5,
    aggregations: Sequence[str] = VIDEO_AGGREGATIONS,
) -> dict:
    """Frame metrics at the top level, ``video`` ({aggregation: metrics}, with ids) and ``by_method``."""
    out: dict = binary_metrics(labels, probs, threshold)
    if video_ids is not None:
        out["video"] = video_metrics(labels, probs, video_ids, aggregations, threshold)
    if methods is not None:
        out["by_method"] = per_method(labels, probs, methods, video_ids, threshold)
    return out


def roc_points(labels: Sequence[int], probs: Sequence[float],
               max_points: int = 200) -> dict[str, list[float]]:
    """ROC curve (fpr, tpr) thinned to at most ``max_points`` points, endpoints kept; empty for one class."""
    labels = np.asarray(labels, dtype=int)
    if len(np.unique(labels)) < 2:
        return {"fpr": [], "tpr": []}
    fpr, tpr, _ = roc_curve(labels, np.asarray(probs, dtype=float))
    if len(fpr) > max_points:
        idx = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(int))
        fpr, tpr = fpr[idx], tpr[idx]
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
