"""Which part of the data a video goes to: its shard of a parallel run, and its train/val/test split.

Both are decided by a hash of a key (:mod:`deepshield.data.catalog`'s ``video_key`` for shards,
``group_key`` for splits), so every machine and every shard agrees without talking to the others.

    >>> shard = parse_shard("2/4")                                  # (2, 4)
    >>> mine = [r for r in scan.records if in_shard(r.key, shard)]
    >>> assign_split(record, parse_split_ratios("0.8,0.1,0.1")).split   # 'train'
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import replace

from deepshield.data.layouts import LayoutError, VideoRecord

DEFAULT_SPLIT_RATIOS = (0.8, 0.1, 0.1)


def parse_shard(shard: str | None) -> tuple[int, int] | None:
    """``"K/N"`` -> (K, N) with 1 <= K <= N; None -> None."""
    if shard is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", shard)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise LayoutError(f"--shard {shard!r}: expected K/N with 1 <= K <= N, e.g. 1/4")
    return int(match[1]), int(match[2])


def in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    """Whether the video ``key`` (dataset/video_id) belongs to shard (K, N); stable across machines."""
    if shard is None:
        return True
    return int(hashlib.sha1(key.encode()).hexdigest(), 16) % shard[1] == shard[0] - 1


def parse_split_ratios(text: str | Sequence[float] | None) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` (train, val, test; normalised to sum 1) -> a tuple; None -> the default."""
    if text is None:
        return DEFAULT_SPLIT_RATIOS
    try:
        values = tuple(float(v) for v in (text.split(",") if isinstance(text, str) else text))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 0 or sum(values) <= 0:
        raise LayoutError(f"--split-ratios {text!r}: expected three numbers >= 0 for train,val,test, "
                          "e.g. 0.8,0.1,0.1")
    total = sum(values)
    return values[0] / total, values[1] / total, values[2] / total


def assign_split(record: VideoRecord, ratios: Sequence[float] = DEFAULT_SPLIT_RATIOS) -> VideoRecord:
    """``record`` with an unassigned split set to train/val/test by a hash of its ``group_key``.

    Deterministic (the same group gets the same split on every machine and in every shard), so a real
    video and the fakes made from it always land on the same side. Official splits are kept.
    """
    if record.split != "unassigned":
        return record
    u = int(hashlib.sha1(record.group_key.encode()).hexdigest()[:12], 16) / 16**12
    split = "train" if u < ratios[0] else "val" if u < ratios[0] + ratios[1] else "test"
    return replace(record, split=split)


__all__ = ["DEFAULT_SPLIT_RATIOS", "assign_split", "in_shard", "parse_shard", "parse_split_ratios"]
