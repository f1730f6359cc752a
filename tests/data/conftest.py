"""Fixtures for the preprocessing tests: videos written with PyAV in the test, real FF++ dev videos."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from skimage.data import astronaut

DEV_FFPP = Path(__file__).resolve().parents[3] / "shared" / "data" / "dev" / "ffpp"


def write_video(
    path: Path,
    frames: Sequence[np.ndarray],
    *,
    fps: int = 10,
    codec: str = "mpeg4",
    gop: int = 12,
    times_ms: Sequence[int] | None = None,
    rotation: int | None = None,
    faststart: bool = False,
) -> Path:
    """Encode HxWx3 uint8 frames; ``times_ms`` gives variable frame timing, ``rotation`` display metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.gop_size = gop
        if codec == "mpeg4":
            stream.bit_rate = 4_000_000
        else:
            stream.options = {"crf": "18"}
        if times_ms is not None:
            stream.time_base = Fraction(1, 1000)
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            if times_ms is not None:
                frame.pts, frame.time_base = times_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def level_frames(n: int, size: tuple[int, int] = (48, 64)) -> list[np.ndarray]:
    """Frames whose grey level (6 * index + 20, up to 39 frames) tells which frame a decoder returned."""
    return [np.full((*size, 3), 6 * i + 20, dtype=np.uint8) for i in range(n)]


def moving_face_frames(
    n: int, canvas: tuple[int, int] = (320, 480), photo: int = 200, step: int = 20, copies: int = 1
) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """The astronaut photo (``photo`` px) moving right by ``step`` px a frame on a grey canvas.

    Returns the frames and each frame's (x, y) offset of the photo's top-left corner. ``copies`` > 1
    places more photos side by side, ``photo + 20`` px apart.
    """
    face = np.asarray(Image.fromarray(astronaut()).resize((photo, photo), Image.Resampling.BILINEAR))
    frames, offsets = [], []
    for i in range(n):
        image = np.full((*canvas, 3), 128, dtype=np.uint8)
        x, y = 10 + step * i, (canvas[0] - photo) // 2
        for c in range(copies):
            cx = x + c * (photo + 20)
            image[y : y + photo, cx : cx + photo] = face
        frames.append(image)
        offsets.append((x, y))
    return frames, offsets


@pytest.fixture(scope="session")
def make_video() -> Callable[..., Path]:
    """``write_video`` (tests import no helpers from conftest, so worker processes need not either)."""
    return write_video


@pytest.fixture(scope="session")
def make_levels() -> Callable[..., list[np.ndarray]]:
    return level_frames


@pytest.fixture(scope="session")
def make_face_frames() -> Callable[..., tuple[list[np.ndarray], list[tuple[int, int]]]]:
    return moving_face_frames


@pytest.fixture(scope="session")
def detector():
    from deepshield.data.faces import build_detector

    return build_detector("mtcnn", max_side=640)


@pytest.fixture(scope="session")
def photo_face_box() -> Callable[[int], np.ndarray]:
    """Ground truth: facenet-pytorch's own MTCNN on the still astronaut photo resized to ``photo`` px."""
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(device="cpu")

    def box(photo: int) -> np.ndarray:
        import torch

        image = Image.fromarray(astronaut()).resize((photo, photo), Image.Resampling.BILINEAR)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            boxes, _ = mtcnn.detect(image)
        finally:
            torch.set_num_threads(threads)
        return np.asarray(boxes, dtype=float)[0]

    return box


@pytest.fixture(scope="session")
def face_video(tmp_path_factory: pytest.TempPathFactory, photo_face_box) -> tuple[Path, list[np.ndarray]]:
    """An mp4 of the astronaut moving across a 480x320 frame, with the true face box of every frame."""
    frames, offsets = moving_face_frames(10)
    path = write_video(tmp_path_factory.mktemp("face") / "moving.mp4", frames, codec="libx264")
    box = photo_face_box(200)
    truth = [box + np.array([x, y, x, y], dtype=float) for x, y in offsets]
    return path, truth


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``folder`` layout with 3 real and 2 fake 6-frame face videos (fast to preprocess); read-only."""
    root = tmp_path_factory.mktemp("small") / "clips"
    for i, name in enumerate(["real/a.mp4", "real/b.mp4", "real/c.mp4", "fake/swap/d.mp4", "fake/e.mp4"]):
        frames, _ = moving_face_frames(6, canvas=(144, 192), photo=128, step=6 + i)
        write_video(root / name, frames)
    return root


@pytest.fixture(scope="session")
def dev_ffpp() -> Path:
    """The seven real FF++ c23 videos in ../shared/data/dev/ffpp (official layout)."""
    if not (DEV_FFPP / "original_sequences").is_dir():
        pytest.skip(f"real FF++ dev videos not found at {DEV_FFPP}")
    return DEV_FFPP
