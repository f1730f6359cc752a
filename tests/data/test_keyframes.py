"""Keyframe-aware sampling (``read_frames(..., keyframes=True)``, ``preprocess --keyframes``)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from deepshield.data.video import (
    index_video,
    keyframe_positions,
    max_keyframe_distance,
    read_frames,
    sample_indices,
)


def _level(image: np.ndarray) -> int:
    """Which frame of ``level_frames`` this is."""
    return int(round((float(image.mean()) - 20) / 6))


def test_positions_move_to_the_nearest_keyframe_and_stay_distinct():
    keys = [0, 10, 20]
    # 4 and 6 are nearest to 0 and 10; 5 is a tie (the earlier keyframe); 14 and 16 share 10 with 6.
    assert keyframe_positions([4, 5], keys, 25) == {4: 0, 5: 1}
    assert keyframe_positions([6, 14, 16], keys, 25) == {6: 10, 14: 11, 16: 20}
    assert keyframe_positions([22, 24], keys, 25) == {22: 20, 24: 21}
    # Three positions share keyframe 20 but the video ends at 21: they keep their own frames.
    assert keyframe_positions([16, 19, 21], keys, 22) == {16: 16, 19: 19, 21: 21}
    assert keyframe_positions([3, 7], [], 10) == {3: 3, 7: 7}  # no keyframe known: nothing moves
    assert max_keyframe_distance(keys, 25) == 5 and max_keyframe_distance([3, 9], 10) == 3


def test_frame_position_error_is_bounded_by_half_the_keyframe_interval():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        n = int(rng.integers(1, 120))
        keys = sorted(rng.choice(n, size=int(rng.integers(1, min(n, 9) + 1)), replace=False).tolist())
        chosen = sorted(rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False).tolist())
        moved = keyframe_positions(chosen, keys, n)
        assert sorted(moved) == chosen
        assert len(set(moved.values())) == len(chosen) and all(0 <= m < n for m in moved.values())
        assert max(abs(m - p) for p, m in moved.items()) <= max_keyframe_distance(keys, n)


@pytest.fixture(scope="module")
def gop_clip(tmp_path_factory, make_video, make_levels) -> Path:
    """39 frames of H.264 (B-frames) at 10 fps with a keyframe every 13 frames: 0, 13, 26."""
    path = tmp_path_factory.mktemp("kf") / "gop.mp4"
    return make_video(path, make_levels(39), fps=10, codec="libx264", gop=13)


def test_synthetic_clip_has_the_keyframes_we_asked_for(gop_clip: Path):
    index = index_video(gop_clip)
    assert len(index.times_s) == 39 and index.keyframes == [0, 13, 26]
    assert index.times_s[:2] == pytest.approx([0.0, 0.1])


def test_keyframe_sampling_decodes_the_keyframes_bit_exactly(gop_clip: Path):
    with av.open(str(gop_clip)) as c:
        sequential = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    exact = [f.index for f in read_frames(gop_clip, fps=1)]
    assert exact == [0, 10, 20, 30]
    got = list(read_frames(gop_clip, fps=1, keyframes=True))
    # 0 -> 0; 10 -> 13 (nearer than 0); 20 is nearer to 26 (6) than to 13 (7), as is 30: they share
    # keyframe 26 and take 26 and 27.
    assert [f.index for f in got] == [0, 13, 26, 27]
    assert [_level(f.image) for f in got] == [0, 13, 26, 27]
    assert [f.timestamp_s for f in got] == pytest.approx([0.0, 1.3, 2.6, 2.7])
    for f in got:
        np.testing.assert_array_equal(f.image, sequential[f.index])


def test_more_frames_than_keyframes_still_gives_distinct_frames(gop_clip: Path):
    index = index_video(gop_clip)
    chosen = sample_indices(index.times_s, num_frames=8)
    got = [f.index for f in read_frames(gop_clip, num_frames=8, keyframes=True)]
    assert len(got) == len(set(got)) == 8
    assert got == sorted(keyframe_positions(chosen, index.keyframes, 39).values())
    assert set(index.keyframes) <= set(got)
    errors = [abs(m - p) for p, m in keyframe_positions(chosen, index.keyframes, 39).items()]
    assert max(errors) <= max_keyframe_distance(index.keyframes, 39) == 12  # 26 -> last frame 38


def test_every_frame_asked_for_still_works(gop_clip: Path):
    got = list(read_frames(gop_clip, num_frames=39, keyframes=True))
    assert [_level(f.image) for f in got] == list(range(39))  # nothing to move: each frame once
