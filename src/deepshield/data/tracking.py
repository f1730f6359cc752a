"""Detect less, track more: run the face detector on every ``every``-th sampled frame and carry the boxes
to the frames between.

Within a batch of consecutive sampled frames the detector runs on the key frames (0, every, 2·every, ...
and the last one). Between two key frames whose largest faces overlap (IoU >= ``min_iou``) and whose
frames look alike (no scene cut: :func:`scene_change`), the box of each frame between is interpolated
linearly; a detector with a ``refine`` stage (MTCNN's O-Net) then puts its own box on each frame from
that prediction (without the frame-wide search, most of its cost), and a frame where it loses the face is
detected in full. Without ``refine`` the interpolated box is kept, scored as the weaker of its two ends.
Where the two ends disagree (a cut, a face entering or leaving, no face at one end) the
detector runs on every frame between, so a box is never carried onto another person. Only the
``largest`` face mode is tracked; ``all`` (several faces a frame) detects all.

    >>> kept = tracked_faces(images, detector, LargestFace(), min_score=0.9, every=4)
    >>> kept[i]            # [(face_index, Face)] for frame i, as faces_in returns
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepshield.data.faces import Face, FaceDetector, IoUTracker, LargestFace, box_iou, faces_in

MIN_IOU = 0.5  # two key frames' faces this similar are taken as one face that moved
MAX_SCENE_CHANGE = 0.12  # mean |difference| of 32x32 grey thumbnails in [0, 1] above which a cut is assumed


def scene_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two frames' 32x32 grey thumbnails, in [0, 1] (a cut scores high)."""

    def thumb(im: np.ndarray) -> np.ndarray:
        h, w = im.shape[:2]
        grey = im[:: max(1, h // 32), :: max(1, w // 32)].mean(axis=2)[:32, :32]
        return grey / 255.0

    ta, tb = thumb(a), thumb(b)
    n, m = min(ta.shape[0], tb.shape[0]), min(ta.shape[1], tb.shape[1])
    return float(np.abs(ta[:n, :m] - tb[:n, :m]).mean())


def key_frames(n: int, every: int) -> list[int]:
    """Indices of the frames the detector sees in a run of ``n``: every ``every``-th and the last."""
    return sorted(set(range(0, n, max(1, every))) | ({n - 1} if n else set()))


def _largest(faces: Sequence[Face], min_score: float) -> Face | None:
    kept = LargestFace().update([f for f in faces if f.score >= min_score])
    return kept[0][1] if kept else None


def _between(a: Face, b: Face, t: float) -> Face:
    box = tuple(float(x) for x in (1 - t) * np.asarray(a.box) + t * np.asarray(b.box))
    return Face(box, min(a.score, b.score))  # type: ignore[arg-type]


def tracked_faces(images: Sequence[np.ndarray], detector: FaceDetector, selector: LargestFace | IoUTracker,
                  min_score: float, every: int = 1,
                  min_iou: float = MIN_IOU) -> list[list[tuple[int, Face]]]:
    """The faces kept in each image, as :func:`~deepshield.data.faces.faces_in` gives them, with the
    detector run on key frames only (see the module docstring). ``every`` <= 1, the ``all`` mode or
    fewer than three frames: every frame is detected."""
    n = len(images)
    if every <= 1 or n < 3 or not isinstance(selector, LargestFace):
        return faces_in(images, detector, selector, min_score)
    keys = key_frames(n, every)
    found: dict[int, list[Face]] = dict(zip(keys, detector.detect([images[i] for i in keys]), strict=True))
    gaps: list[int] = []
    carried: dict[int, Face] = {}
    for a, b in zip(keys, keys[1:], strict=False):
        fa, fb = _largest(found[a], min_score), _largest(found[b], min_score)
        same = (fa is not None and fb is not None and box_iou(fa.box, fb.box) >= min_iou
                and scene_change(images[a], images[b]) <= MAX_SCENE_CHANGE)
        if same:
            carried.update({i: _between(fa, fb, (i - a) / (b - a)) for i in range(a + 1, b)})
        else:  # a cut, a face that came or went: look at every frame between
            gaps += range(a + 1, b)
    refine = getattr(detector, "refine", None)
    if carried and refine is not None:  # the detector's last stage on the predicted box: its own box
        frames = sorted(carried)
        for i, face in zip(frames, refine([images[i] for i in frames], [carried[i].box for i in frames]),
                           strict=True):
            if face is None or box_iou(face.box, carried[i].box) < min_iou:
                gaps.append(i)  # lost the face: detect this frame in full
            else:
                carried[i] = face
    found.update({i: [f] for i, f in carried.items() if i not in gaps})
    if gaps:
        gaps.sort()
        found.update(zip(gaps, detector.detect([images[i] for i in gaps]), strict=True))
    return [selector.update([f for f in found[i] if f.score >= min_score]) for i in range(n)]


__all__ = ["MAX_SCENE_CHANGE", "MIN_IOU", "key_frames", "scene_change", "tracked_faces"]
