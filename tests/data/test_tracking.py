"""Tracking between key frames: fewer detector calls, the same faces, never a box across a cut."""

import numpy as np
import pytest

from deepshield.data.faces import Face, IoUTracker, LargestFace, box_iou, faces_in
from deepshield.data.mtcnn_onnx import build_face_detector
from deepshield.data.tracking import MAX_SCENE_CHANGE, key_frames, scene_change, tracked_faces
from deepshield.data.video import read_media


class Scripted:
    """A detector answering from a script: frame i (its pixel [0, 0, 0]) -> faces; counts calls."""

    def __init__(self, script: dict[int, list[Face]]) -> None:
        self.script, self.seen = script, []

    def detect(self, images):
        ids = [int(im[0, 0, 0]) for im in images]
        self.seen += ids
        return [self.script[i] for i in ids]


def _frames(n: int) -> list[np.ndarray]:
    return [np.full((4, 4, 3), i, np.uint8) for i in range(n)]


def _face(x: float, score: float = 0.99) -> Face:
    return Face((x, 10.0, x + 40.0, 50.0), score)


def test_key_frames():
    assert key_frames(16, 4) == [0, 4, 8, 12, 15]
    assert key_frames(5, 8) == [0, 4] and key_frames(0, 4) == [] and key_frames(3, 1) == [0, 1, 2]


def test_boxes_between_key_frames_are_interpolated():
    script = {i: [_face(2.0 * i, 0.95 + 0.001 * i), _face(300.0, 0.99)] for i in range(16)}
    script = {i: [f for f in faces if f.box[0] != 300.0 or i % 2] for i, faces in script.items()}  # decoys
    det = Scripted({i: [_face(2.0 * i, 0.95 + 0.001 * i)] for i in range(16)})
    kept = tracked_faces(_frames(16), det, LargestFace(), 0.9, every=4)
    assert sorted(det.seen) == [0, 4, 8, 12, 15]
    boxes = [k[0][1].box[0] for k in kept]
    assert boxes == pytest.approx([2.0 * i for i in range(16)])  # a face moving steadily is followed
    assert kept[5][1 - 1][1].score == pytest.approx(min(0.954, 0.958))


def test_a_cut_or_a_face_that_leaves_is_detected_not_carried():
    script = {i: [_face(0.0)] for i in range(8)} | {i: [_face(500.0)] for i in range(8, 12)}
    script |= {i: [] for i in range(12, 16)}  # the face leaves the frame
    det = Scripted(script)
    kept = tracked_faces(_frames(16), det, LargestFace(), 0.9, every=4)
    full = faces_in(_frames(16), Scripted(script), LargestFace(), 0.9)
    assert [[f.box for _, f in k] for k in kept] == [[f.box for _, f in k] for k in full]
    assert {5, 6, 7, 13, 14} <= set(det.seen)  # the frames around the cut and the exit were looked at


def test_low_scores_and_the_all_mode_fall_back_to_the_detector():
    det = Scripted({i: [_face(0.0, 0.5)] for i in range(8)})
    assert all(k == [] for k in tracked_faces(_frames(8), det, LargestFace(), 0.9, every=4))
    det = Scripted({i: [_face(0.0)] for i in range(8)})
    tracked_faces(_frames(8), det, IoUTracker(), 0.9, every=4)
    assert sorted(det.seen) == list(range(8))


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_spliced_real_clips_keep_each_persons_box(dev_data, one_torch_thread, runtime):
    """Two FF++ people cut together: after the cut, no frame gets the first person's box (with either
    MTCNN: facenet-pytorch's, or its nets on ONNX Runtime, predict's default)."""
    videos = sorted((dev_data / "ffpp/original_sequences/youtube/c23/videos").glob("*.mp4"))[:2]
    clips = [[f.image for f in read_media(v, num_frames=32)][:8] for v in videos]  # predict's sampling
    frames = clips[0] + clips[1]
    assert scene_change(clips[0][-1], clips[1][0]) > MAX_SCENE_CHANGE > scene_change(*clips[0][:2])
    detector = build_face_detector("mtcnn", runtime, max_side=640, min_face_size=40)
    full = faces_in(frames, detector, LargestFace(), 0.9)
    kept = tracked_faces(frames, detector, LargestFace(), 0.9, every=4)
    for a, b in zip(full, kept, strict=True):
        assert bool(a) == bool(b)
        if a:
            assert box_iou(a[0][1].box, b[0][1].box) >= 0.5


class Refining(Scripted):
    """A detector with a last stage: ``refine`` puts its own box near the prediction, or loses frame 6."""

    def __init__(self, script) -> None:
        super().__init__(script)
        self.refined: list[int] = []

    def refine(self, images, boxes):
        ids = [int(im[0, 0, 0]) for im in images]
        self.refined += ids
        return [None if i == 6 else Face((b[0] + 1.0, b[1], b[2] + 1.0, b[3]), 0.97) for i, b in
                zip(ids, boxes, strict=True)]


def test_a_refining_detector_places_its_own_boxes_and_lost_faces_are_detected():
    det = Refining({i: [_face(2.0 * i)] for i in range(8)})
    kept = tracked_faces(_frames(8), det, LargestFace(), 0.9, every=4)
    assert sorted(det.refined) == [1, 2, 3, 5, 6]
    assert kept[1][0][1].box[0] == pytest.approx(3.0) and kept[1][0][1].score == 0.97  # refine's own box
    assert sorted(det.seen) == [0, 4, 6, 7] and kept[6][0][1].box[0] == 12.0  # frame 6 detected in full
