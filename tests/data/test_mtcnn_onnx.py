"""MTCNN on ONNX Runtime: the numpy glue against PyTorch's ops, the detector against the torch one."""

from __future__ import annotations

import numpy as np
import pytest

from deepshield.data.faces import box_iou, build_detector
from deepshield.data.mtcnn_onnx import (
    NETS_DIR,
    OnnxMTCNN,
    area_crops,
    batched_nms,
    build_face_detector,
    clusters,
    detector_runtime,
    export_nets,
    integral,
    nets_available,
    nms,
)
from deepshield.data.video import read_frames, read_media
from deepshield.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def onnx_detector() -> OnnxMTCNN:
    assert nets_available(), f"the MTCNN nets ship in {NETS_DIR} (python scripts/bundle.py --mtcnn)"
    return OnnxMTCNN(max_side=640)


def test_area_crops_match_torch_area_interpolation():
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    table = integral(image)
    boxes = [(0, 0, 90, 70), (5, 7, 55, 40), (10, 10, 17, 21), (80, 60, 90, 70)]  # shrink and enlarge
    x0, y0, x1, y1 = (np.array(v) for v in zip(*boxes, strict=True))
    for size in (24, 48):
        got = area_crops(table, x0, y0, x1, y1, size)
        full = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        for k, (a, b, c, d) in enumerate(boxes):
            want = F.interpolate(full[:, :, b:d, a:c], size=(size, size), mode="area")[0].numpy()
            np.testing.assert_allclose(got[k], want, atol=1e-3)


def test_nms_matches_torchvision():
    import torch
    from torchvision.ops import batched_nms as tv_batched_nms

    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 100, (60, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (60, 2))], axis=1).astype(np.float32)
    scores = rng.uniform(0, 1, 60).astype(np.float32)
    owner = rng.integers(0, 3, 60)
    want = tv_batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(owner), 0.5)
    assert batched_nms(boxes, scores, owner, 0.5).tolist() == want.tolist()
    assert set(nms(boxes, scores, 0.5).tolist()) <= set(range(60))


def test_clusters_group_overlapping_boxes_transitively():
    x0, y0 = np.array([0, 8, 16, 100]), np.array([0, 0, 0, 100])
    groups = clusters(x0, y0, x0 + 10, y0 + 10)  # 0-1 and 1-2 overlap, 3 stands alone
    assert sorted(map(list, groups)) == [[0, 1, 2], [3]]


def test_onnx_mtcnn_gives_the_torch_detectors_boxes_on_real_frames(onnx_detector, dev_ffpp):
    """Same nets, same algorithm: on real FF++ frames (720p) the boxes agree to a thousandth of a pixel."""
    clip = next(dev_ffpp.rglob("*.mp4"))
    frames = [f.image for f in read_media(clip, num_frames=4)]
    torch_faces = build_detector("mtcnn", max_side=640, min_face_size=40).detect(frames)
    onnx_faces = OnnxMTCNN(max_side=640, min_face_size=40).detect(frames)
    for a, b in zip(torch_faces, onnx_faces, strict=True):
        assert len(a) == len(b) >= 1
        for fa, fb in zip(a, b, strict=True):
            np.testing.assert_allclose(fa.box, fb.box, atol=1e-2)
            assert abs(fa.score - fb.score) < 1e-4


def test_onnx_mtcnn_finds_the_moving_face_and_nothing_in_a_blank(onnx_detector, face_video):
    path, truth = face_video
    frames = [f.image for f in read_frames(path, num_frames=10)]
    found = onnx_detector.detect(frames + [np.full((100, 150, 3), 90, dtype=np.uint8)])
    assert found[-1] == []
    for faces, box in zip(found[:-1], truth, strict=True):
        assert box_iou(max(faces, key=lambda f: f.area).box, box) >= 0.8


def test_refine_puts_onets_box_on_a_nearby_proposal(onnx_detector, face_video):
    frames = [f.image for f in read_frames(face_video[0], num_frames=2)]
    face = onnx_detector.detect(frames[:1])[0][0]
    moved = tuple(v + 4 for v in face.box)
    refined = onnx_detector.refine([frames[0], np.zeros_like(frames[0])], [moved, moved])
    assert refined[0] is not None and box_iou(refined[0].box, face.box) > 0.9
    assert refined[1] is None  # no face on a black frame


def test_detector_runtime_picks_onnx_for_mtcnn_when_installed(tmp_path):
    assert detector_runtime("mtcnn") == "onnx" and detector_runtime("mtcnn", "torch") == "torch"
    assert isinstance(build_face_detector("mtcnn", "auto", max_side=320), OnnxMTCNN)
    with pytest.raises(ConfigError, match="unknown --detector-runtime 'tpu'"):
        detector_runtime("mtcnn", "tpu")
    with pytest.raises(ConfigError, match="no face detector 'x'|unknown face detector|runs MTCNN only"):
        build_face_detector("x", "onnx")
    assert not nets_available(tmp_path)


def test_export_nets_writes_nets_that_match_pytorch(tmp_path):
    diffs = export_nets(tmp_path)
    assert set(diffs) == {"pnet", "rnet", "onet"} and max(diffs.values()) < 1e-4
    assert nets_available(tmp_path)
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_refine_takes_frames_of_different_sizes(onnx_detector, face_video):
    frame = next(iter(read_frames(face_video[0], num_frames=1))).image
    face = onnx_detector.detect([frame])[0][0]
    padded = np.zeros((frame.shape[0] + 40, frame.shape[1] + 60, 3), np.uint8)
    padded[:frame.shape[0], :frame.shape[1]] = frame
    small, big = onnx_detector.refine([frame, padded], [face.box, face.box])
    assert small is not None and big is not None
    np.testing.assert_allclose(small.box, big.box, atol=1e-3)  # same pixels around the face, same box
