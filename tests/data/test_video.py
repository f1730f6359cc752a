from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from skimage.data import astronaut

from deepshield.data.video import (
    CorruptVideoError,
    EmptyVideoError,
    NotAVideoError,
    read_frames,
    read_image,
    read_media,
    sample_indices,
    upright,
)
from deepshield.errors import ConfigError, DeepshieldError


def _level(image: np.ndarray) -> int:
    """Which frame of ``level_frames`` this is."""
    return int(round((float(image.mean()) - 20) / 6))


def test_sample_indices_by_time_not_by_count():
    times = [0.0, 0.1, 0.2, 1.5, 1.6, 3.0]  # variable frame rate: a burst, a gap, a burst
    assert sample_indices(times, fps=1) == [0, 2, 4, 5]  # frames on screen at 0, 1, 2, 3 s
    assert sample_indices(np.arange(100) / 25, fps=1) == [0, 25, 50, 75]
    assert sample_indices(np.arange(100) / 25, num_frames=4) == [12, 37, 62, 87]  # slice centres
    assert sample_indices(np.arange(5) / 25, num_frames=32) == [0, 1, 2, 3, 4]  # no duplicates
    with pytest.raises(ConfigError, match="exactly one"):
        sample_indices([0.0], fps=1, num_frames=2)


def test_read_frames_seeks_to_the_right_frames(tmp_path: Path, make_video, make_levels):
    # 30 frames at 10 fps with a keyframe every 5 frames: sampling at 1 fps seeks between keyframes.
    path = make_video(tmp_path / "v.mp4", make_levels(30), fps=10, gop=5)
    frames = list(read_frames(path, fps=1))
    assert [f.index for f in frames] == [0, 10, 20]
    assert [f.timestamp_s for f in frames] == pytest.approx([0.0, 1.0, 2.0])
    assert [_level(f.image) for f in frames] == [0, 10, 20]


def test_sampled_frames_are_bit_exact(tmp_path: Path, make_video, make_face_frames):
    # Moving texture, H.264 with B-frames: a sampled frame needs the reference frames before it, which
    # are decoded, while the frames skipped on the way are not.
    images, _ = make_face_frames(40, canvas=(96, 128), photo=64, step=1)
    path = make_video(tmp_path / "t.mp4", images, fps=10, codec="libx264", gop=12)
    with av.open(str(path)) as c:
        sequential = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    got = list(read_frames(path, num_frames=7))
    assert [f.index for f in got] == [2, 8, 14, 20, 25, 31, 37]
    for f in got:
        assert f.image.dtype == np.uint8 and f.image.shape == (96, 128, 3)
        np.testing.assert_array_equal(f.image, sequential[f.index])


def test_b_frames_and_last_frame(tmp_path: Path, make_video, make_levels):
    path = make_video(tmp_path / "b.mp4", make_levels(25), fps=25, codec="libx264", gop=250)  # B-frames
    got = list(read_frames(path, num_frames=25))
    assert [f.index for f in got] == list(range(25))
    assert [_level(f.image) for f in got] == list(range(25))


def test_variable_frame_rate_uses_timestamps(tmp_path: Path, make_video, make_levels):
    times_ms = [0, 100, 200, 1500, 1600, 3000, 3100]
    path = make_video(tmp_path / "vfr.mp4", make_levels(7), times_ms=times_ms)
    got = list(read_frames(path, fps=1))
    assert [f.index for f in got] == [0, 2, 4, 5]  # counting frames at a nominal rate would give others
    assert [_level(f.image) for f in got] == [0, 2, 4, 5]
    assert [f.timestamp_s for f in got] == pytest.approx([0.0, 0.2, 1.6, 3.0])


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_metadata_decodes_upright(tmp_path: Path, rotation: int, make_video):
    image = np.asarray(Image.fromarray(astronaut()).resize((96, 64)))  # landscape, not symmetric
    path = make_video(tmp_path / "rot.mp4", [image] * 3, codec="libx264", rotation=rotation)
    with av.open(str(path)) as c:
        assert (next(c.decode(video=0)).rotation - rotation) % 360 == 0  # PyAV wrote the display matrix
    frame = next(read_frames(path, num_frames=1))
    expected = np.rot90(image, rotation // 90)
    assert frame.image.shape == expected.shape
    assert np.abs(frame.image.astype(int) - expected).mean() < 6


def test_upright_on_arrays():
    a = np.arange(6, dtype=np.uint8).reshape(2, 3, 1).repeat(3, axis=2)
    assert upright(a, 0) is a
    np.testing.assert_array_equal(upright(a, 90), np.rot90(a, 1))  # counter-clockwise
    np.testing.assert_array_equal(upright(a, -90), np.rot90(a, -1))
    np.testing.assert_array_equal(upright(a, 180), a[::-1, ::-1])


def test_still_images_with_exif_orientation(tmp_path: Path):
    image = Image.fromarray(astronaut()).resize((80, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(tmp_path / "p.jpg", exif=exif, quality=95)
    frame = read_image(tmp_path / "p.jpg")
    assert frame.index == 0 and frame.timestamp_s == 0.0
    assert frame.image.shape == (80, 40, 3)
    assert [f.image.shape for f in read_media(tmp_path / "p.jpg", fps=1)] == [(80, 40, 3)]


def test_bad_files_raise_clear_errors(tmp_path: Path, make_video, make_levels):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("this is a note, not a video\n" * 20)
    rng = np.random.default_rng(0)
    (tmp_path / "garbage.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + rng.bytes(4000))
    good = make_video(tmp_path / "good.mp4", make_levels(20))  # moov atom at the end
    (tmp_path / "cut.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (tmp_path / "img.png").write_bytes(b"not a png")
    with pytest.raises(EmptyVideoError) as err:
        list(read_frames(tmp_path / "empty.mp4", fps=1))
    assert isinstance(err.value, DeepshieldError)  # predict reports it as one line, no traceback
    with pytest.raises(NotAVideoError):
        list(read_frames(tmp_path / "text.mp4", fps=1))
    with pytest.raises(CorruptVideoError):
        list(read_frames(tmp_path / "garbage.mp4", fps=1))
    with pytest.raises(CorruptVideoError):
        list(read_frames(tmp_path / "cut.mp4", fps=1))
    with pytest.raises(NotAVideoError):
        list(read_media(tmp_path / "img.png", fps=1))


def test_audio_only_file_is_not_a_video(tmp_path: Path):
    path = tmp_path / "audio.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 16000
        for packet in list(stream.encode(frame)) + list(stream.encode()):
            out.mux(packet)
    with pytest.raises(NotAVideoError, match="no video stream"):
        list(read_frames(path, fps=1))


def test_truncated_video_keeps_frames_before_the_damage(tmp_path: Path, make_video, make_levels):
    good = make_video(tmp_path / "fast.mp4", make_levels(39, size=(96, 128)), faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: int(good.stat().st_size * 0.6)])
    got = list(read_frames(cut, num_frames=39))
    assert 5 < len(got) < 39
    assert [_level(f.image) for f in got] == [f.index for f in got]


def test_stream_without_timestamps_falls_back_to_counting(tmp_path: Path, make_levels):
    path = tmp_path / "raw.h264"  # an elementary stream: packets carry no pts
    with av.open(str(path), "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.height, stream.width, stream.pix_fmt = 48, 64, "yuv420p"
        for image in make_levels(30):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    got = list(read_frames(path, num_frames=3))
    assert [f.index for f in got] == [5, 15, 25]
    assert [_level(f.image) for f in got] == [5, 15, 25]


def test_prefetched_keeps_order_raises_the_readers_error_and_stops_early():
    import threading

    from deepshield.data.video import CorruptVideoError, Frame, prefetched

    def frames(n: int, fail: bool = False):
        for i in range(n):
            yield Frame(i, i / 10, np.full((4, 4, 3), i, np.uint8))
        if fail:
            raise CorruptVideoError("damaged at frame 3")

    assert [f.index for f in prefetched(frames(20), depth=3)] == list(range(20))
    seen = []
    with pytest.raises(CorruptVideoError, match="damaged at frame 3"):
        for f in prefetched(frames(3, fail=True), depth=2):
            seen.append(f.index)
    assert seen == [0, 1, 2]  # the frames before the damage arrive first
    stream = prefetched(frames(1000), depth=2)
    assert next(stream).index == 0
    stream.close()  # a consumer that stops early: the reader thread ends too
    assert not [t for t in threading.enumerate() if t.name == "decode-ahead"]
