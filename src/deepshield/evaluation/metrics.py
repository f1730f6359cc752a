"""Detection metrics (scikit-learn): accuracy, ROC-AUC, average precision, EER; frame and video level."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def eer(labels: np.ndarray, probs: np.ndarray) -> float:
    """Equal error rate: where the false-positive rate equals the false-negative rate (interpolated)."""
    fpr, tpr, _ = roc_curve(labels, probs)
    fnr = 1 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    if i == 0:
        return float((fpr[0] + fnr[0]) / 2)
    # Linear interpolation between the two ROC points that bracket fpr == fnr.
    d0, d1 = fpr[i - 1] - fnr[i - 1], fpr[i] - fnr[i]
    t = d0 / (d0 - d1) if d0 != d1 else 0.0
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def binary_metrics(labels: Sequence[int], probs: Sequence[float], threshold: float = 0.5) -> dict[str, float]:
    """acc, auc, ap, eer for labels (1 = fake) and fake probabilities; ranking metrics are NaN for one class."""
    labels, probs = np.asarray(labels, dtype=int), np.asarray(probs, dtype=float)
    out = {"n": int(len(labels)), "acc": float(((probs >= threshold) == labels).mean()) if len(labels) else float("nan")}
    both = len(np.unique(labels)) == 2
    out["auc"] = float(roc_auc_score(labels, probs)) if both else float("nan")
    out["ap"] = float(average_precision_score(labels, probs)) if both else float("nan")
    out["eer"] = eer(labels, probs) if both else float("nan")
    return out


AGGREGATIONS = {
    "mean": lambda p: float(np.mean(p)),
    # Mean of the most confident half: one clearly fake stretch of a video is enough to flag it.
    "top50": lambda p: float(np.mean(np.sort(p)[len(p) // 2:])),
    "median": lambda p: float(np.median(p)),
}


def aggregate_videos(
    labels: Sequence[int], probs: Sequence[float], video_ids: Sequence[str], how: str = "mean"
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Group frame scores by video id; returns (video labels, video probabilities, video ids)."""
    if how not in AGGREGATIONS:
        raise ValueError(f"unknown video aggregation {how!r}; choose from {sorted(AGGREGATIONS)}")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, v in enumerate(video_ids):
        groups[str(v)].append(i)
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=float)
    vids = sorted(groups)
    vlabels = np.array([labels[groups[v][0]] for v in vids], dtype=int)
    vprobs = np.array([AGGREGATIONS[how](probs[groups[v]]) for v in vids])
    return vlabels, vprobs, vids
