"""Frame scores -> one video score: the aggregations predict and the video metrics share (numpy only, so
``deepshield predict`` does not load the metrics stack).

    >>> AGGREGATIONS.lookup("top50")(np.array([0.1, 0.2, 0.9, 0.8]))     # 0.85
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from deepshield.registry import Registry

AGGREGATIONS: Registry[Callable[[np.ndarray], float]] = Registry("video aggregation")
AGGREGATIONS.add("mean", lambda p: float(np.mean(p)))
# Mean of the most fake-looking half: one clearly fake stretch of a video is enough to flag it.
AGGREGATIONS.add("top50", lambda p: float(np.mean(np.sort(p)[len(p) // 2:])))
AGGREGATIONS.add("median", lambda p: float(np.median(p)))

__all__ = ["AGGREGATIONS"]
