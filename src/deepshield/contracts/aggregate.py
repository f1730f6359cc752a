"""Frame scores -> one video score: the aggregations that training, evaluation and predict share (numpy
only, so ``deepshield predict`` does not load the metrics stack).

    >>> AGGREGATIONS.lookup("top50")(np.array([0.1, 0.2, 0.9, 0.8]))     # 0.85
    >>> aggregate_videos([0, 0, 1], [0.1, 0.3, 0.9], ["a", "a", "b"])    # [0 1], [0.2 0.9], ["a", "b"]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from deepshield.errors import DataError
from deepshield.registry import Registry

EPS = 1e-6  # log-odds clip: |log-odds| <= 13.8


def logodds(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)) of probabilities, clipped to [EPS, 1 - EPS] first (float64)."""
    q = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(q) - np.log1p(-q)


def sigmoid(z: float) -> float:
    return float(1.0 / (1.0 + np.exp(-z)))


def mean_logodds(p: np.ndarray) -> float:
    """The mean log-odds of the frames, as a probability: one confident frame counts for more than under
    ``mean`` (where the temporal head of :mod:`deepshield.models.temporal` starts from)."""
    return sigmoid(float(np.mean(logodds(p))))


def topk_logodds(p: np.ndarray) -> float:
    """The mean log-odds of the most fake-looking quarter of the frames (at least one), as a probability."""
    z = np.sort(logodds(p))
    return sigmoid(float(np.mean(z[len(z) - max(1, len(z) // 4):])))


AGGREGATIONS: Registry[Callable[[np.ndarray], float]] = Registry("video aggregation")
AGGREGATIONS.add("mean", lambda p: float(np.mean(p)))
# Mean of the most fake-looking half: one clearly fake stretch of a video is enough to flag it.
AGGREGATIONS.add("top50", lambda p: float(np.mean(np.sort(p)[len(p) // 2:])))
AGGREGATIONS.add("median", lambda p: float(np.median(p)))
AGGREGATIONS.add("mean_logodds", mean_logodds)
AGGREGATIONS.add("topk_logodds", topk_logodds)


def aggregate_videos(
    labels: Sequence[int], probs: Sequence[float], video_ids: Sequence[str], how: str = "mean"
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Group frame scores by video id; returns (video labels, video probabilities, sorted video ids).

    Raises DataError when one video's frames carry different labels (a broken catalog).
    """
    aggregate = AGGREGATIONS.lookup(how)
    if len(video_ids) != len(labels):
        raise ValueError(f"{len(video_ids)} video ids for {len(labels)} frames")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, v in enumerate(video_ids):
        groups[str(v)].append(i)
    labels, probs = np.asarray(labels, dtype=int), np.asarray(probs, dtype=float)
    vids = sorted(groups)
    for v in vids:
        if len(set(labels[groups[v]].tolist())) > 1:
            raise DataError(f"video {v!r} has frames labelled both real and fake; fix the catalog")
    vlabels = np.array([labels[groups[v][0]] for v in vids], dtype=int)
    vprobs = np.array([aggregate(probs[groups[v]]) for v in vids])
    return vlabels, vprobs, vids


__all__ = ["AGGREGATIONS", "aggregate_videos"]
