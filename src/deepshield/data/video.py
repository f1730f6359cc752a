"""Decode sampled frames from a video (PyAV), or read a still image, as RGB arrays.

Frames are chosen by presentation time, not by frame count, so variable-frame-rate videos are sampled
evenly in time: ``fps=1`` takes the frame on screen at 0 s, 1 s, 2 s, ...; ``num_frames=N`` takes the
frames on screen at the centres of N equal slices of the video. Only what those frames need is
decoded: the packets are demuxed once (cheap, no decoding) to learn every frame's timestamp and the
keyframes, then the decoder seeks to the keyframe before each sampled frame when that skips work,
skips non-reference frames it does not have to show (``skip_frame``), which is bit-exact, and is
drained as soon as it holds every sampled frame of a stretch (no packet is decoded only to push
frames out of its reorder buffer).

``keyframes=True`` trades frame position for speed (:func:`keyframe_positions`): each sampled instant
moves to the nearest keyframe, which decodes alone, so no stretch of frames is decoded to reach it.
Where a video has few keyframes (FF++ c23: one per 250 frames) several instants share one; they take
it and the frames that follow it, so N instants still give N distinct frames.

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

from deepshield.data.sampling import check_sampling, keyframe_positions, max_keyframe_distance, sample_indices
from deepshield.errors import DeepshieldError

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
    path: str | Path,
    *,
    fps: float | None = None,
    num_frames: int | None = None,
    threads: int = 0,
    keyframes: bool = False,
) -> Iterator[Frame]:
    """Sampled frames of a video, or the single frame of a still image (chosen by file extension)."""
    if Path(path).suffix.lower() in IMAGE_EXTENSIONS:
        check_sampling(fps, num_frames)
        yield read_image(path)
    else:
        yield from read_frames(path, fps=fps, num_frames=num_frames, threads=threads, keyframes=keyframes)


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


class VideoIndex(NamedTuple):
    """What demuxing a video (without decoding) tells: each frame's time (s, from the first frame, in
    presentation order) and the positions of the keyframes among them."""

    times_s: list[float]
    keyframes: list[int]


def index_video(path: str | Path) -> VideoIndex:
    """Frame times and keyframe positions of a video, from its packets (no decoding)."""
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container)
        packets = _demux_index(container, stream)
        time_base = stream.time_base
    if not packets or any(pts is None for pts, _ in packets):
        return VideoIndex([], [])
    pts_sorted = sorted({pts for pts, _ in packets})
    key_pts = {pts for pts, key in packets if key}
    times = [float((p - pts_sorted[0]) * time_base) for p in pts_sorted]
    return VideoIndex(times, [i for i, p in enumerate(pts_sorted) if p in key_pts])


def read_frames(
    path: str | Path,
    *,
    fps: float | None = None,
    num_frames: int | None = None,
    threads: int = 0,
    keyframes: bool = False,
) -> Iterator[Frame]:
    """Decode the sampled frames of a video, upright (rotation metadata applied), in time order.

    Exactly one of ``fps`` (frames per second of video) or ``num_frames`` (evenly spaced) is given.
    ``threads``: decoder threads, 0 = FFmpeg's choice. ``keyframes``: sample the nearest keyframes
    instead (:func:`keyframe_positions`; ignored for streams without timestamps). Raises a ``VideoError``
    subclass for empty, non-video or corrupt files; a truncated video yields the frames that precede the
    damage.
    """
    check_sampling(fps, num_frames)
    path = Path(path)
    with _open(path) as container:
        packets = _demux_index(container, _video_stream(container))
    if not packets:
        raise EmptyVideoError("no video frames")
    with _open(path) as container:  # a fresh demuxer at the start: no seek needed to get there
        stream = _video_stream(container)
        stream.thread_type = "AUTO"
        stream.thread_count = threads
        key_pts = sorted(pts for pts, key in packets if key and pts is not None)
        if any(pts is None for pts, _ in packets):
            plan = None  # no timestamps (e.g. raw streams): fall back to counting frames
        else:
            pts_sorted = sorted({pts for pts, _ in packets})
            times = [float((p - pts_sorted[0]) * stream.time_base) for p in pts_sorted]
            chosen = sample_indices(times, fps=fps, num_frames=num_frames)
            if keyframes:
                positions = {p: i for i, p in enumerate(pts_sorted)}
                keys = [positions[p] for p in key_pts]
                chosen = sorted(keyframe_positions(chosen, keys, len(pts_sorted)).values())
            plan = {pts_sorted[i]: (i, times[i]) for i in chosen}
        if plan is not None:
            frames = _decode_planned(container, stream, plan, key_pts)
        else:
            frames = _decode_counted(container, stream, len(packets), fps, num_frames)
        delivered = 0
        for frame, index, time_s in frames:
            delivered += 1
            yield Frame(index, time_s, upright(frame.to_ndarray(format="rgb24"), frame.rotation))
        if delivered == 0:
            raise CorruptVideoError("no frame could be decoded")


def prefetched(frames: Iterator[Frame], depth: int = 8) -> Iterator[Frame]:
    """``frames``, decoded ahead by a background thread into a queue of at most ``depth`` frames, so that
    decoding (FFmpeg releases the GIL) overlaps the face detector's work on the frames before. An error
    the reader raises (a ``VideoError``) is raised here, after the frames that came before it."""
    import queue
    import threading

    done = object()
    ahead: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        """Queue ``item`` unless the consumer has stopped; False once it has."""
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for frame in frames:
                if not offer(frame):
                    return
            offer(done)
        except BaseException as err:  # handed to the consumer, raised there
            offer(err)

    reader = threading.Thread(target=read, name="decode-ahead", daemon=True)
    reader.start()
    try:
        while (item := ahead.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()  # a consumer that stops early releases the reader
        reader.join()
        close = getattr(frames, "close", None)
        if close is not None:
            close()


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

    Once the decoder has been fed every sampled frame before the next one's keyframe, it is drained
    (rather than fed more packets until its reorder delay lets the frames out), then the demuxer seeks
    to that keyframe. Seeking is only a shortcut: where it fails (unseekable input), decoding carries on
    sequentially.
    """
    codec = stream.codec_context
    pending = sorted(plan)  # sampled frames not delivered yet
    unfed = sorted(plan)  # those of them whose packet the decoder has not been given yet (a subset)
    can_seek = True
    while pending:
        fed = None  # largest pts fed to the decoder since the start or the last seek
        jumped = False
        try:
            for packet in container.demux(stream):
                wanted = packet.pts is not None and packet.pts in plan
                # Non-reference frames that are not shown are never needed by other frames.
                codec.skip_frame = "DEFAULT" if wanted else "NONREF"
                if wanted:
                    _discard(unfed, packet.pts)
                for frame in _safe_decode(codec, packet):
                    yield from _take(frame, pending, plan, unfed)
                if not pending:
                    return
                if packet.pts is not None:
                    fed = packet.pts if fed is None else max(fed, packet.pts)
                if fed is None or (unfed and _keyframe_before(keyframes, unfed[0]) <= fed):
                    continue  # the next sampled frame is reached by decoding on
                held = len(pending) > len(unfed)  # it was fed sampled frames it still holds: drain it
                if held:
                    for frame in _safe_decode(codec, None):
                        yield from _take(frame, pending, plan, unfed)
                    pending[:] = unfed[:]  # the others were fed but never shown (damaged)
                    if not pending:
                        return
                if can_seek:
                    # The next sampled frame starts from a keyframe not reached yet: jump there.
                    jumped = can_seek = _seek(container, stream, pending[0])
                    if jumped:
                        break
                if held:
                    codec.flush_buffers()  # a drained decoder takes no packet before a flush
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
    frame: av.VideoFrame, pending: list[int], plan: dict[int, tuple[int, float]], unfed: list[int]
) -> Iterator[tuple[av.VideoFrame, int, float]]:
    pts = frame.pts
    if pts is None:
        return
    while pending and pending[0] < pts:
        _discard(unfed, pending.pop(0))  # decoder never produced it (damaged or skipped by the container)
    if pending and pending[0] == pts:
        pending.pop(0)
        index, time_s = plan[pts]
        yield frame, index, time_s


def _discard(values: list[int], value: int) -> None:
    """Remove ``value`` from the sorted list ``values`` if it is there."""
    i = bisect.bisect_left(values, value)
    if i < len(values) and values[i] == value:
        del values[i]


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


def _safe_decode(codec: av.codec.context.CodecContext, packet: av.Packet | None) -> list[av.VideoFrame]:
    """Frames out of the decoder after ``packet``; ``None`` (or an empty packet) drains it."""
    try:
        return codec.decode(packet if packet is not None and packet.size else None)
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


__all__ = [
    "IMAGE_EXTENSIONS",
    "UnusableImageError",
    "VIDEO_EXTENSIONS",
    "CorruptVideoError",
    "EmptyVideoError",
    "Frame",
    "prefetched",
    "NotAVideoError",
    "VideoError",
    "VideoIndex",
    "index_video",
    "keyframe_positions",
    "max_keyframe_distance",
    "read_frames",
    "read_image",
    "read_media",
    "sample_indices",
    "upright",
]
