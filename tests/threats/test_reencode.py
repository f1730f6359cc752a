"""Re-encoding: the differentiable JPEG against PIL's, H.264 round trips, whole-video write/read."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from skimage.data import astronaut

from deepshield.data.degrade import to_uint8
from deepshield.data.synthetic import SyntheticDeepfakeDataset
from deepshield.errors import ConfigError
from deepshield.threats.reencode import (
    CRF_TO_JPEG_QUALITY,
    h264_diff,
    h264_quality,
    h264_roundtrip,
    jpeg_diff,
    jpeg_roundtrip,
    psnr,
    quant_tables,
    read_video,
    ssim,
    write_video,
)


def _astronaut(size: tuple[int, int] = (128, 128)) -> torch.Tensor:
    image = np.asarray(Image.fromarray(astronaut()).resize(size, Image.Resampling.BILINEAR)).copy()
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255


@pytest.fixture(scope="module")
def images() -> dict[str, torch.Tensor]:
    faces = SyntheticDeepfakeDataset(2, image_size=64, seed=3)
    return {"astronaut": _astronaut(), "synthetic": torch.stack([faces[0][0], faces[1][0]]),
            "odd": _astronaut((53, 37))}


def _mad255(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().mean() * 255)


@pytest.mark.parametrize("quality", [30, 75, 95])
@pytest.mark.parametrize("name", ["astronaut", "synthetic", "odd"])
def test_jpeg_diff_is_close_to_pil_jpeg(images, name: str, quality: int):
    x = images[name]
    approx, real = jpeg_diff(x, quality), jpeg_roundtrip(x, quality)
    assert approx.shape == x.shape
    assert _mad255(approx, real) < 2.0
    # It is JPEG, not the identity: the codec's own error is several times larger than the mismatch.
    assert _mad255(approx, real) < 0.5 * _mad255(x, real)


def test_jpeg_diff_error_grows_as_quality_drops(images):
    x = images["astronaut"]
    errors = [_mad255(jpeg_diff(x, q), x) for q in (95, 75, 30, 10)]
    assert errors == sorted(errors) and errors[-1] > 2 * errors[0]


def test_jpeg_diff_gradient_flows_to_the_input(images):
    x = images["odd"].clone().requires_grad_()
    (grad,) = torch.autograd.grad(jpeg_diff(x, 50).mul(torch.linspace(0, 1, x.shape[-1])).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().mean() > 0.05


def test_quant_tables_follow_libjpeg_scaling():
    luma50, chroma50 = quant_tables(50)
    assert luma50[0, 0] == 16 and luma50[7, 7] == 99 and chroma50[0, 0] == 17
    luma90, _ = quant_tables(90)
    assert luma90[0, 0] == 3  # (16 * 20 + 50) // 100
    assert (quant_tables(100)[0] == 1).all() and (quant_tables(1)[1] == 255).all()
    with pytest.raises(ConfigError, match="1..100"):
        quant_tables(0)


def test_h264_roundtrip_keeps_order_shape_and_quality(images):
    x = torch.cat([images["odd"], images["odd"].flip(-1), 1 - images["odd"]])
    y = h264_roundtrip(x, crf=18)
    assert y.shape == x.shape and y.dtype == x.dtype
    for i in range(len(x)):  # each output is its own input, not a neighbour
        errs = [_mad255(y[i], x[j]) for j in range(len(x))]
        assert int(np.argmin(errs)) == i and errs[i] < 8  # 53x37 px of detail: CRF 18 is lossy here
    worse = h264_roundtrip(x, crf=40)
    assert psnr(to_uint8(x), to_uint8(worse)) < psnr(to_uint8(x), to_uint8(y)) - 5


def test_h264_all_intra_codes_each_image_alone(images):
    x = torch.cat([images["synthetic"], images["astronaut"][..., :64, :64]])
    assert torch.equal(h264_roundtrip(x, 28)[1], h264_roundtrip(x[1:2], 28)[0])


def test_h264_diff_matches_x264_distortion(images):
    x = images["astronaut"]
    for crf in (18, 28):
        real = psnr(to_uint8(x), to_uint8(h264_roundtrip(x, crf)))
        proxy = psnr(to_uint8(x), to_uint8(h264_diff(x, crf)))
        assert abs(real - proxy) < 2.0, (crf, real, proxy)
    assert h264_quality(23) == CRF_TO_JPEG_QUALITY[23]
    qualities = [h264_quality(c) for c in range(52)]
    assert qualities == sorted(qualities, reverse=True) and 1 <= qualities[-1] <= qualities[0] <= 100
    with pytest.raises(ConfigError, match="0..51"):
        h264_diff(x, 60)


def _moving_frames(n: int, size: tuple[int, int] = (61, 90)) -> list[np.ndarray]:
    """The astronaut (40 px) moving right 3 px a frame on a grey level that tells the frames apart."""
    face = np.asarray(Image.fromarray(astronaut()).resize((40, 40)))
    frames = []
    for i in range(n):
        frame = np.full((*size, 3), 60 + 10 * i, dtype=np.uint8)
        frame[4:44, 3 * i : 3 * i + 40] = face
        frames.append(frame)
    return frames


def test_write_video_keeps_every_frame_and_the_rate(tmp_path: Path):
    frames = _moving_frames(9)
    path = write_video(tmp_path / "out" / "clip.mp4", frames, fps=30000 / 1001, crf=18)
    assert [p.name for p in path.parent.iterdir()] == ["clip.mp4"]  # no temp file left
    back, fps = read_video(path)
    assert len(back) == len(frames) and fps == pytest.approx(29.97, abs=1e-3)
    assert back[0].shape == (62, 90, 3)  # odd height padded to even
    for orig, dec in zip(frames, back, strict=True):
        assert psnr(orig, dec[:61]) > 30
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in c.decode(video=0)) == 9


def test_write_video_refuses_mixed_sizes(tmp_path: Path):
    with pytest.raises(ConfigError, match="one size"):
        write_video(tmp_path / "x.mp4", [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)], 25)
    assert not list(tmp_path.iterdir())


def test_read_video_applies_rotation(tmp_path: Path):
    image = _moving_frames(1, (48, 64))[0]
    path = tmp_path / "rot.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(10))
        stream.height, stream.width, stream.pix_fmt = 48, 64, "yuv420p"
        stream.options = {"crf": "10"}
        stream.set_display_rotation(90)
        for _ in range(2):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))
    frames, fps = read_video(path)
    assert len(frames) == 2 and fps == 10 and frames[0].shape == (64, 48, 3)
    assert psnr(np.rot90(image), frames[0]) > 30


def test_psnr_and_ssim():
    a = _moving_frames(2)
    noisy = [np.clip(f + np.random.default_rng(0).normal(0, 8, f.shape), 0, 255).astype(np.uint8) for f in a]
    assert psnr(a[0], a[0]) == float("inf") and ssim(a[0], a[0]) == pytest.approx(1.0)
    assert 25 < psnr(a[0], noisy[0]) < 35 and ssim(a[0], noisy[0]) < 0.9
    mean = (psnr(a[0], noisy[0]) + psnr(a[1], noisy[1])) / 2
    assert psnr(np.stack(a), np.stack(noisy)) == pytest.approx(mean)
    with pytest.raises(ConfigError, match="one shape"):
        ssim(a[0], a[0][:30])
