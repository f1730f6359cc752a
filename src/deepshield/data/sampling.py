"""Which frames of a video to take: instants evenly spaced in time, and where ``keyframes=True`` moves them.

Pure functions of frame timestamps and keyframe positions (no decoding); ``deepshield.data.video`` decodes
the frames they choose.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from deepshield.errors import ConfigError


def sample_indices(
    times_s: np.ndarray | list[float], *, fps: float | None = None, num_frames: int | None = None
) -> list[int]:
    """Indices into ``times_s`` (sorted presentation times, s) of the frames shown at the sampled instants.

    ``fps``: one instant every 1/fps s from 0. ``num_frames``: the centres of ``num_frames`` equal slices of
    the video. The video ends one (median) frame interval after its last frame. Duplicates are dropped,
    so asking for more frames than the video has returns every frame once.
    """
    check_sampling(fps, num_frames)
    times = np.asarray(times_s, dtype=float)
    if times.size == 0:
        return []
    step = float(np.median(np.diff(times))) if times.size > 1 else 0.0
    end = times[-1] - times[0] + step
    if fps is not None:
        instants = np.arange(int(np.floor(end * fps - 1e-9)) + 1) / fps
    else:
        instants = (np.arange(num_frames) + 0.5) * end / num_frames
    # The frame on screen at t is the last one that started at or before t (1 µs of float slack).
    idx = np.searchsorted(times - times[0], instants + 1e-6, side="right") - 1
    return sorted({int(i) for i in np.clip(idx, 0, times.size - 1)})


def keyframe_positions(chosen: Sequence[int], keys: Sequence[int], n_frames: int) -> dict[int, int]:
    """Where ``keyframes=True`` sampling moves each sampled frame position: ``{position: moved to}``.

    Positions count frames in presentation order, ``keys`` are the keyframes' positions (sorted) and
    ``n_frames`` the video's length. Each position moves to its nearest keyframe (ties: the earlier).
    The m positions that share a keyframe K take K, K+1, ..., K+m-1 (decoded forward from K), in their
    order, unless those run past the frames nearer to K than to the next keyframe: then the m positions
    keep their own frames (decoded forward as without ``keyframes``). So the frames moved to are
    distinct, as many as ``chosen``, and a position moves by at most :func:`max_keyframe_distance`
    frames. Without keyframes nothing moves.
    """
    chosen = sorted(set(chosen))
    if not keys:
        return {p: p for p in chosen}
    groups: dict[int, list[int]] = {}
    for position in chosen:
        k = bisect.bisect_right(keys, position) - 1
        if k < 0 or (k + 1 < len(keys) and keys[k + 1] - position < position - keys[k]):
            k += 1
        groups.setdefault(k, []).append(position)
    moved: dict[int, int] = {}
    for k, positions in groups.items():
        # Frames K .. room-1 are nearer to K than to the next keyframe: no other group can take them.
        room = (keys[k] + keys[k + 1]) // 2 + 1 if k + 1 < len(keys) else n_frames
        fits = keys[k] + len(positions) <= room
        moved.update((p, keys[k] + j if fits else p) for j, p in enumerate(positions))
    return moved


def max_keyframe_distance(keys: Sequence[int], n_frames: int) -> int:
    """The largest distance (frames) from a frame of the video to its nearest keyframe: the bound on how
    far :func:`keyframe_positions` moves a sampled frame."""
    if not keys:
        return 0
    gaps = [(b - a) // 2 for a, b in zip(keys, keys[1:], strict=False)]
    return max([keys[0], n_frames - 1 - keys[-1], *gaps])


def check_sampling(fps: float | None, num_frames: int | None) -> None:
    """Exactly one of ``fps`` (> 0) or ``num_frames`` (>= 1); ConfigError otherwise."""
    if (fps is None) == (num_frames is None):
        raise ConfigError("give exactly one of fps or num_frames")
    if fps is not None and not fps > 0:
        raise ConfigError(f"fps must be > 0, got {fps}")
    if num_frames is not None and num_frames < 1:
        raise ConfigError(f"num_frames must be >= 1, got {num_frames}")
