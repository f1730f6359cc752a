from __future__ import annotations

import numpy as np
import pytest

from deepshield.data.faces import (
    DETECTORS,
    CropGeometry,
    Face,
    FaceDetector,
    IoUTracker,
    LargestFace,
    box_iou,
    build_detector,
    build_selector,
    crop_face,
    fit_ratio,
    fit_square,
    square_box,
)
from deepshield.data.video import read_frames
from deepshield.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_square_box_is_centred_and_uses_the_longer_side():
    assert square_box((10, 20, 30, 60), margin=1.0) == (0, 20, 40, 60)
    assert square_box((10, 20, 30, 60), margin=1.5) == (-10, 10, 50, 70)


def test_square_box_shift_moves_the_centre_down_by_a_fraction_of_the_longer_side():
    assert square_box((10, 20, 30, 60), margin=1.0, shift=0.25) == (0, 30, 40, 70)


def test_crop_moves_inside_the_frame_instead_of_padding_or_squashing():
    image = np.zeros((50, 60, 3), dtype=np.uint8)
    image[:40, :20] = 200  # the "face" fills the top-left corner
    crop = crop_face(image, (0, 0, 20, 40), size=40, margin=1.0)  # square 40 px would start 10 px left
    assert crop.shape == (40, 40, 3)
    assert (crop[:, :20] == 200).all() and (crop[:, 20:] == 0).all()  # moved right, no black padding
    assert fit_square(square_box((0, 0, 20, 40), 1.0), 60, 50) == (0, 0, 40, 40)
    resized = crop_face(image, (0, 0, 20, 40), size=20, margin=1.0)
    assert resized.shape == (20, 20, 3)
    assert resized[:, 2:8].mean() > 190 and resized[:, 13:].mean() < 10  # same geometry, half size


def test_square_larger_than_the_image_is_reduced_to_it():
    image = np.random.default_rng(0).integers(0, 255, (100, 100, 3), dtype=np.uint8)
    box = (-20, -30, 120, 130)  # MTCNN's box of a tight face photo is larger than the photo
    assert fit_ratio(box, 100, 100, margin=1.3) == pytest.approx(100 / 208, abs=0.01)
    assert fit_ratio((40, 40, 60, 60), 100, 100, margin=1.3) == 1.0
    crop = crop_face(image, box, size=100, margin=1.3)
    assert np.array_equal(crop, image)  # the whole photo, no padding
    with pytest.raises(ConfigError, match="margin"):  # a ValueError, and a DeepshieldError for the CLI
        CropGeometry(margin=0)


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


def test_largest_face_selection():
    small, big = Face((0, 0, 10, 10), 0.99), Face((50, 50, 90, 90), 0.95)
    assert LargestFace().update([small, big]) == [(0, big)]
    assert LargestFace().update([]) == []


def test_tracker_keeps_face_index_across_frames():
    tracker = build_selector("all")
    assert isinstance(tracker, IoUTracker)
    left, right = Face((0, 0, 40, 40), 0.9), Face((100, 0, 150, 50), 0.9)
    assert tracker.update([left, right]) == [(0, right), (1, left)]  # new tracks: largest first
    moved_left, moved_right = Face((5, 2, 45, 42), 0.9), Face((104, 0, 154, 50), 0.9)
    assert tracker.update([moved_left, moved_right]) == [(0, moved_right), (1, moved_left)]  # order swapped
    assert tracker.update([]) == []
    newcomer = Face((300, 300, 340, 340), 0.9)
    back_left = Face((6, 2, 46, 42), 0.9)
    assert tracker.update([newcomer, back_left]) == [(1, back_left), (2, newcomer)]
    with pytest.raises(ConfigError, match="choose from"):
        build_selector("biggest")


def test_registry():
    assert "mtcnn" in DETECTORS
    with pytest.raises(ConfigError, match="unknown face detector 'yolo'"):
        build_detector("yolo")


@pytest.mark.parametrize("max_side", [640, 240])
def test_mtcnn_finds_the_moving_face(face_video, max_side: int):
    path, truth = face_video
    frames = [f.image for f in read_frames(path, num_frames=10)]
    detector = build_detector("mtcnn", max_side=max_side, batch_size=4)  # 240: detects at half size
    assert isinstance(detector, FaceDetector)
    found = detector.detect(frames)
    assert len(found) == 10
    for faces, box in zip(found, truth, strict=True):
        best = max(faces, key=lambda f: f.area)
        assert best.score > 0.95
        assert box_iou(best.box, box) >= 0.8, (best.box, box)


def test_min_face_size_bounds_the_search(face_video):
    path, truth = face_video
    frames = [f.image for f in read_frames(path, num_frames=10)][:2]
    truth = truth[:2]
    side = float(truth[0][2] - truth[0][0])

    def hits(min_face_size: int) -> list[bool]:
        found = build_detector("mtcnn", min_face_size=min_face_size).detect(frames)
        pairs = zip(found, truth, strict=True)
        return [any(box_iou(f.box, box) >= 0.5 for f in faces) for faces, box in pairs]

    assert all(hits(20)) and all(hits(int(side * 0.8)))
    assert not any(hits(int(side * 3)))  # a face a third of the smallest searched for is not looked for


def test_mtcnn_batches_match_single_frames(face_video, detector):
    frames = [f.image for f in read_frames(face_video[0], num_frames=3)]
    batched = detector.detect(frames)
    single = [detector.detect([frame])[0] for frame in frames]
    for a, b in zip(batched, single, strict=True):
        assert len(a) == len(b)
        for fa, fb in zip(a, b, strict=True):
            np.testing.assert_allclose(fa.box, fb.box, atol=1e-3)


def test_mtcnn_mixed_sizes_and_no_face(detector, make_face_frames):
    frames, _ = make_face_frames(1)
    blank = np.full((100, 150, 3), 90, dtype=np.uint8)
    found = detector.detect([frames[0], blank, frames[0][:200, :300]])
    assert len(found[0]) >= 1 and found[1] == [] and len(found[2]) >= 1


def test_two_faces_tracked(tmp_path, detector, make_face_frames, make_video):
    frames, _ = make_face_frames(4, canvas=(240, 480), photo=160, step=5, copies=2)
    path = make_video(tmp_path / "two.mp4", frames, codec="libx264")
    tracker = build_selector("all")
    lefts = {}
    for faces in detector.detect([f.image for f in read_frames(path, num_frames=4)]):
        kept = tracker.update([f for f in faces if f.score >= 0.9])
        assert len(kept) == 2
        left_index = min(kept, key=lambda item: item[1].box[0])[0]
        lefts[left_index] = lefts.get(left_index, 0) + 1
    assert len(lefts) == 1 and list(lefts.values()) == [4]  # the left face keeps one index
