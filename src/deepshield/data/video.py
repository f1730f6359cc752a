"""Decode sampled frames from a video (PyAV), or read a still image, as RGB arrays.

Frames are chosen by presentation time, not by frame count, so variable-frame-rate videos are sampled
evenly in time: ``fps=1`` takes the frame on screen at 0 s, 1 s, 2 s, ...; ``num_frames=N`` takes the
frames on screen at the centres of N equal slices of the video. Only what those frames need is
decoded: the packets are demuxed once (cheap, no decoding) to learn every frame's timestamp and the
keyframes, then the decoder seeks to the keyframe before each sampled frame when that skips work, and
skips non-reference frames it does not have to show (``skip_frame``), which is bit-exact.

    >>> for frame in read_media("clip.mp4", fps=1.0):
    ...     frame.index, frame.timestamp_s, frame.image.shape   # (25, 1.0, (720, 1280, 3))
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from deepshield.errors import ConfigError, DeepshieldError

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts"}
)
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})

# Box types at bytes 4..8 of an ISO-BMFF (mp4/mov) file, and magic numbers of other containers: a file
# that starts like a video but will not open is reported as corrupt rather than "not a video".
_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")
_MAGICS = (b"\x1aE\xdf\xa3", b"RIFF", b"FLV", b"OggS", b"\x00\x00\x01\xba", b"\x30\x26\xb2\x75")


class VideoError(DeepshieldError):
    """A media file that cannot be read; ``str(err)`` is a one-line reason fit for errors.csv."""


class EmptyVideoError(VideoError):
    """A 0-byte file, or a video without a single frame."""


class NotAVideoError(VideoError):
    """A file that is no video or image FFmpeg/PIL can read (e.g. text named .mp4), or has no video stream."""


class CorruptVideoError(VideoError):
    """A video or image whose container is recognisable but damaged, or from which no frame decodes."""


class UnusableImageError(VideoError):
    """A readable image no face detector should be given: grey-scale, tiny, or huge."""


MIN_IMAGE_SIDE = 32             # px: smaller images hold no usable face
MAX_IMAGE_PIXELS = 50_000_000   # decoding larger images costs GBs; downscale them first
_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F", "P;grey"}


class Frame(NamedTuple):
    """One decoded frame: its index in presentation order, its time from the first frame, HxWx3 RGB uint8."""

    index: int
    timestamp_s: float
    image: np.ndarray


def read_media(
    path: str | Path, *, fps: float | None = None, num_frames: int | None = None, threads: int = 0
) -> Iterator[Frame]:
    """Sampled frames of a video, or the single frame of a still image (chosen by file extension)."""
    if Path(path).suffix.lower() in IMAGE_EXTENSIONS:
        _check_sampling(fps, num_frames)
        yield read_image(path)
    else:
        yield from read_frames(path, fps=fps, num_frames=num_frames, threads=threads)


def read_image(path: str | Path) -> Frame:
    """A still image as frame 0 at 0 s, turned upright by its EXIF orientation."""
    path = Path(path)
    _check_not_empty(path)
    try:
        with Image.open(path) as img:
            _check_image(img)
            img = ImageOps.exif_transpose(img).convert("RGB")
            return Frame(0, 0.0, np.asarray(img))
    except UnidentifiedImageError as err:
        raise NotAVideoError("not an image PIL can read") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise CorruptVideoError(f"damaged image: {err}") from err


def _check_image(img: Image.Image) -> None:
    """Refuse grey-scale images, and (before decoding) images under 32 px or over 50 megapixels."""
    width, height = img.size
    if width * height > MAX_IMAGE_PIXELS:
        raise UnusableImageError(f"image is {width}x{height} (over {MAX_IMAGE_PIXELS // 1_000_000} "
                                 "megapixels); downscale it first")
    if min(width, height) < MIN_IMAGE_SIDE:
        raise UnusableImageError(f"image is {width}x{height}, under {MIN_IMAGE_SIDE} px: too small for "
                                 "a face")
    grey_palette = img.mode == "P" and img.palette is not None and img.palette.mode == "L"
    if img.mode in _GREY_MODES or grey_palette:
        raise UnusableImageError(f"grey-scale image (mode {img.mode}); the detector needs colour images")


def sample_indices(
    times_s: np.ndarray | list[float], *, fps: float | None = None, num_frames: int | None = None
) -> list[int]:
    """Indices into ``times_s`` (sorted presentation times, s) of the frames shown at the sampled instants.

    ``fps``: one instant every 1/fps s from 0. ``num_frames``: the centres of ``num_frames`` equal slices of
    the video. The video ends one (median) frame interval after its last frame. Duplicates are dropped,
    so asking for more frames than the video has returns every frame once.
    """
    _check_sampling(fps, num_frames)
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


def read_frames(
    path: str | Path, *, fps: float | None = None, num_frames: int | None = None, threads: int = 0
) -> Iterator[Frame]:
    """Decode the sampled frames of a video, upright (rotation metadata applied), in time order.

    Exactly one of ``fps`` (frames per second of video) or ``num_frames`` (evenly spaced) is given.
    ``threads``: decoder threads, 0 = FFmpeg's choice. Raises a ``VideoError`` subclass for empty,
    non-video or corrupt files; a truncated video yields the frames that precede the damage.
    """
    _check_sampling(fps, num_frames)
    path = Path(path)
    with _open(path) as container:
        packets = _demux_index(container, _video_stream(container))
    if not packets:
        raise EmptyVideoError("no video frames")
    with _open(path) as container:  # a fresh demuxer at the start: no seek needed to get there
        stream = _video_stream(container)
        stream.thread_type = "AUTO"
        stream.thread_count = threads
        if any(pts is None for pts, _ in packets):
            plan = None  # no timestamps (e.g. raw streams): fall back to counting frames
        else:
            pts_sorted = sorted({pts for pts, _ in packets})
            times = [float((p - pts_sorted[0]) * stream.time_base) for p in pts_sorted]
            chosen = sample_indices(times, fps=fps, num_frames=num_frames)
            plan = {pts_sorted[i]: (i, times[i]) for i in chosen}
        keyframes = sorted(pts for pts, key in packets if key and pts is not None)
        if plan is not None:
            frames = _decode_planned(container, stream, plan, keyframes)
        else:
            frames = _decode_counted(container, stream, len(packets), fps, num_frames)
        delivered = 0
        for frame, index, time_s in frames:
            delivered += 1
            yield Frame(index, time_s, upright(frame.to_ndarray(format="rgb24"), frame.rotation))
        if delivered == 0:
            raise CorruptVideoError("no frame could be decoded")


def upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """Turn a decoded frame upright given its display-matrix rotation (degrees counter-clockwise)."""
    quarter_turns = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(image, quarter_turns)) if quarter_turns else image


def _decode_planned(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    plan: dict[int, tuple[int, float]],
    keyframes: list[int],
) -> Iterator[tuple[av.VideoFrame, int, float]]:
    """Decode the frames whose pts are in ``plan``, seeking past stretches no sampled frame needs.

    Seeking is only a shortcut: where it fails (unseekable input), decoding carries on sequentially.
    """
    codec = stream.codec_context
    pending = sorted(plan)
    can_seek = True
    while pending:
        fed = None  # largest pts fed to the decoder since the start or the last seek
        jumped = False
        try:
            for packet in container.demux(stream):
                if packet.pts is not None and packet.pts in plan:
                    codec.skip_frame = "DEFAULT"
                else:
                    # Non-reference frames that are not shown are never needed by other frames.
                    codec.skip_frame = "NONREF"
                for frame in _safe_decode(codec, packet):
                    yield from _take(frame, pending, plan)
                if not pending:
                    return
                if packet.pts is not None:
                    fed = packet.pts if fed is None else max(fed, packet.pts)
                if can_seek and fed is not None and _keyframe_before(keyframes, pending[0]) > fed:
                    # The next sampled frame starts from a keyframe not reached yet: jump there.
                    jumped = can_seek = _seek(container, stream, pending[0])
                    if jumped:
                        break
        except av.error.FFmpegError:
            return  # damaged tail: keep what was decoded
        if not jumped:
            return  # end of stream; frames not found (e.g. broken index) are dropped


def _seek(container: av.container.InputContainer, stream: av.video.stream.VideoStream, pts: int) -> bool:
    """Seek to the keyframe at or before ``pts``; False if the input cannot seek."""
    try:
        container.seek(pts, stream=stream, backward=True)
    except av.error.FFmpegError:
        return False
    return True


def _take(
    frame: av.VideoFrame, pending: list[int], plan: dict[int, tuple[int, float]]
) -> Iterator[tuple[av.VideoFrame, int, float]]:
    pts = frame.pts
    if pts is None:
        return
    while pending and pending[0] < pts:
        pending.pop(0)  # decoder never produced it (damaged or skipped by the container)
    if pending and pending[0] == pts:
        pending.pop(0)
        index, time_s = plan[pts]
        yield frame, index, time_s


def _decode_counted(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    n_packets: int,
    fps: float | None,
    num_frames: int | None,
) -> Iterator[tuple[av.VideoFrame, int, float]]:
    """Fallback without timestamps: decode sequentially, frame k shown at k / average rate."""
    rate = float(stream.average_rate or stream.guessed_rate or 25)
    chosen = set(sample_indices(np.arange(n_packets) / rate, fps=fps, num_frames=num_frames))
    index = -1
    try:
        for packet in container.demux(stream):
            for frame in _safe_decode(stream.codec_context, packet):
                index += 1
                if index in chosen:
                    yield frame, index, index / rate
    except av.error.FFmpegError:
        return


def _safe_decode(codec: av.codec.context.CodecContext, packet: av.Packet) -> list[av.VideoFrame]:
    try:
        return codec.decode(packet if packet.size else None)
    except av.error.InvalidDataError:
        return []  # one broken packet; FFmpeg conceals it in the frames that follow


def _keyframe_before(keyframes: list[int], pts: int) -> int | float:
    k = bisect.bisect_right(keyframes, pts) - 1
    return keyframes[k] if k >= 0 else float("-inf")


def _demux_index(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> list[tuple[int | None, bool]]:
    """(pts, is_keyframe) of every video packet, read without decoding; stops at damage."""
    packets: list[tuple[int | None, bool]] = []
    try:
        for packet in container.demux(stream):
            if packet.size:
                packets.append((packet.pts, packet.is_keyframe))
    except av.error.FFmpegError:
        pass
    return packets


def _open(path: Path) -> av.container.InputContainer:
    _check_not_empty(path)
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as err:
        reason = getattr(err, "strerror", None) or str(err)
        if _looks_like_video(path):
            raise CorruptVideoError(f"damaged video container: {reason}") from err
        raise NotAVideoError(f"not a video FFmpeg can read: {reason}") from err


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise NotAVideoError("no video stream in the file")
    return container.streams.video[0]


def _check_not_empty(path: Path) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError as err:
        raise VideoError("file not found") from err
    if size == 0:
        raise EmptyVideoError("empty file (0 bytes)")


def _looks_like_video(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(12)
    return head[4:8] in _MP4_BOXES or head.startswith(_MAGICS)


def _check_sampling(fps: float | None, num_frames: int | None) -> None:
    if (fps is None) == (num_frames is None):
        raise ConfigError("give exactly one of fps or num_frames")
    if fps is not None and not fps > 0:
        raise ConfigError(f"fps must be > 0, got {fps}")
    if num_frames is not None and num_frames < 1:
        raise ConfigError(f"num_frames must be >= 1, got {num_frames}")


__all__ = [
    "IMAGE_EXTENSIONS",
    "UnusableImageError",
    "VIDEO_EXTENSIONS",
    "CorruptVideoError",
    "EmptyVideoError",
    "Frame",
    "NotAVideoError",
    "VideoError",
    "read_frames",
    "read_image",
    "read_media",
    "sample_indices",
    "upright",
]
