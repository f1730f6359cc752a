"""What a platform does to an image or video on upload: JPEG and H.264 re-encoding, real and differentiable.

Real codecs (no gradient): :func:`jpeg_roundtrip` (PIL/libjpeg), :func:`h264_roundtrip` (libx264 via
PyAV, in memory). Differentiable proxies for attacks that must survive the channel (EOT/BPDA):
:func:`jpeg_diff` (JPEG in torch ops, after Shin & Song, "JPEG-resistant adversarial images", NIPS 2017
workshop) and :func:`h264_diff` (``jpeg_diff`` at the JPEG quality whose distortion matches x264 intra
coding at that CRF). Plus whole-video I/O (:func:`write_video`, :func:`read_video`) and frame quality
(:func:`psnr`, :func:`ssim`).

Tensors are (N, 3, H, W) RGB in [0, 1], any H and W; frames are HxWx3 RGB uint8.

    >>> x_jpeg = jpeg_diff(x_adv, quality=75)        # gradients flow to x_adv
    >>> x_up = h264_roundtrip(x_adv, crf=23)         # what the viewer decodes
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from deepshield.data.degrade import check_images, h264_roundtrip, jpeg_roundtrip, pad_even
from deepshield.data.video import CorruptVideoError, upright
from deepshield.errors import ConfigError, MissingFileError
from deepshield.io import atomic_write

# The IJG (libjpeg) example tables, JPEG standard Annex K.1 (luminance) and K.2 (chrominance).
_LUMA_Q = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]
_CHROMA_Q = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
] + [99] * 32

# x264 intra (each image one I-frame, preset medium, yuv420p) CRF -> the JPEG quality (PIL, 4:2:0) with
# the same mean PSNR vs the original; the median over four image sets, measured with h264_roundtrip and
# jpeg_roundtrip: 5 skimage photos (astronaut, coffee, chelsea, rocket, immunohistochemistry) at 128
# and at 256 px, 8 synthetic faces at 128 px, 16 DFDC face crops (JPEGs) at 224 px.
#   CRF   x264 PSNR dB (nat128 / nat256 / synth / dfdc)   matching JPEG quality (same order) -> table
#    0    37.3 / 39.0 / 38.0 / 44.1                       96 / 96 / 93 / 64   -> 94
#   10    35.7 / 37.2 / 36.9 / 42.7                       92 / 91 / 88 / 60   -> 89
#   18    32.8 / 34.2 / 35.8 / 40.8                       79 / 77 / 80 / 55   -> 78
#   23    30.4 / 31.9 / 34.6 / 38.4                       49 / 46 / 69 / 34   -> 47
#   28    28.1 / 29.5 / 32.8 / 35.9                       21 / 21 / 41 / 23   -> 22
#   33    26.0 / 27.4 / 30.8 / 33.8                       11 / 11 / 23 / 15   -> 13
#   40    23.3 / 24.6 / 28.4 / 30.4                        5 /  6 / 13 /  9   -> 7
#   51    19.4 / 21.3 / 24.7 / 25.3                        1 /  3 /  5 /  4   -> 3
# (CRF 0 is not lossless here: the RGB -> limited-range 4:2:0 YUV conversion alone costs that much.)
# The match holds per image set, not per image: smooth, already-compressed faces (DFDC) need a lower
# quality than photos for the same CRF; h264_diff is a proxy to attack through, h264_roundtrip the test.
CRF_TO_JPEG_QUALITY: dict[int, int] = {
    0: 94, 10: 89, 14: 86, 18: 78, 20: 69, 23: 47, 26: 28, 28: 22, 30: 17, 33: 13, 36: 10, 40: 7,
    45: 5, 51: 3,
}


def quant_tables(quality: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(luminance, chrominance) 8x8 quantization tables at ``quality`` in [1, 100], libjpeg's scaling
    (``jpeg_quality_scaling``, baseline: entries clamped to [1, 255])."""
    if not 1 <= int(quality) <= 100:
        raise ConfigError(f"JPEG quality must be in 1..100, got {quality}")
    quality = int(quality)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality

    def table(base: list[int]) -> torch.Tensor:
        q = [min(max((b * scale + 50) // 100, 1), 255) for b in base]
        return torch.tensor(q, dtype=torch.float32).view(8, 8)

    return table(_LUMA_Q), table(_CHROMA_Q)


@lru_cache(maxsize=1)
def _dct_matrix() -> torch.Tensor:
    """The orthonormal 8-point DCT-II matrix D (rows = frequencies): coefficients = D @ block @ D.T."""
    k = torch.arange(8, dtype=torch.float64)
    d = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d.float()


def _diff_round(x: torch.Tensor) -> torch.Tensor:
    """Shin & Song's differentiable rounding: round(x) + (x - round(x))^3."""
    r = torch.round(x)
    return r + (x - r) ** 3


def _sample(x: torch.Tensor) -> torch.Tensor:
    """An 8-bit sample: clamped to 0..255 and rounded, with an identity gradient for the rounding."""
    x = x.clamp(0, 255)
    return x + (torch.round(x) - x).detach()


def _jpeg_plane(plane: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Level-shifted DCT, (soft) quantization and inverse of one (N, h, w) plane in 0..255; h, w % 8 == 0."""
    n, h, w = plane.shape
    d = _dct_matrix().to(plane.device, plane.dtype)
    q = q.to(plane.device, plane.dtype)
    blocks = (plane - 128).view(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)
    coef = d @ blocks @ d.T
    coef = _diff_round(coef / q) * q
    out = d.T @ coef @ d
    return out.permute(0, 1, 3, 2, 4).reshape(n, h, w) + 128


def jpeg_diff(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Differentiable approximation of a JPEG round trip at ``quality`` (1..100), as libjpeg does it by
    default: JFIF YCbCr, 4:2:0 chroma (2x2 mean; bilinear = libjpeg's "fancy" upsampling), 8x8 DCT,
    the IJG tables scaled by quality.

    Quantization uses Shin & Song's round(x) + (x - round(x))^3; the codec's 8-bit rounding of samples
    (after colour conversion, subsampling, IDCT and upsampling, and of the output) is kept in the value
    with an identity gradient: closer to real JPEG (about -0.2 mean abs error) at no cost to the gradient.
    x: (N, 3, H, W) in [0, 1], any H, W (edge-padded to a multiple of 16, cropped back). Returns the same
    shape in [0, 1], on the 1/255 grid; gradients flow to x. Mean absolute difference to PIL's JPEG, in
    0..255 units: 0.7-1.2 at quality 30-95, up to 1.6 at quality 10 (photos and synthetic faces).
    """
    check_images(x, "jpeg_diff")
    luma_q, chroma_q = quant_tables(quality)
    h, w = x.shape[-2:]
    x = F.pad(x, (0, -w % 16, 0, -h % 16), mode="replicate") * 255
    r, g, b = x.unbind(1)
    y = _sample(0.299 * r + 0.587 * g + 0.114 * b)
    cb = _sample(-0.168736 * r - 0.331264 * g + 0.5 * b + 128)
    cr = _sample(0.5 * r - 0.418688 * g - 0.081312 * b + 128)
    chroma = _sample(F.avg_pool2d(torch.stack([cb, cr], 1), 2))
    y = _sample(_jpeg_plane(y, luma_q))
    n, _, hc, wc = chroma.shape
    chroma = _sample(_jpeg_plane(chroma.reshape(n * 2, hc, wc), chroma_q).view(n, 2, hc, wc))
    chroma = _sample(F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False))
    cb, cr = (chroma - 128).unbind(1)
    rgb = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1)
    return _sample(rgb)[..., :h, :w] / 255


def h264_quality(crf: int) -> int:
    """The JPEG quality :func:`h264_diff` uses for ``crf`` (the measured table, linearly interpolated)."""
    if not 0 <= int(crf) <= 51:
        raise ConfigError(f"H.264 CRF must be in 0..51 (lower = better quality), got {crf}")
    crfs = sorted(CRF_TO_JPEG_QUALITY)
    q = np.interp(int(crf), crfs, [CRF_TO_JPEG_QUALITY[c] for c in crfs])
    return int(np.clip(round(float(q)), 1, 100))


def h264_diff(x: torch.Tensor, crf: int = 23) -> torch.Tensor:
    """Differentiable proxy for H.264 intra coding at ``crf``: :func:`jpeg_diff` at
    ``h264_quality(crf)``, the JPEG quality whose PSNR matches x264 at that CRF (``CRF_TO_JPEG_QUALITY``,
    measured; e.g. CRF 18 -> 78, 23 -> 47, 28 -> 22). x: (N, 3, H, W) in [0, 1]; gradients flow to x."""
    return jpeg_diff(x, h264_quality(crf))


def write_video(path: str | Path, frames: list[np.ndarray], fps: float, crf: int = 23) -> Path:
    """Write HxWx3 RGB uint8 ``frames`` as an H.264 mp4 (libx264, yuv420p, preset medium, ``crf``) at
    ``fps``, atomically; every frame is kept (one pts step per frame). Odd sizes are edge-padded to even.
    """
    if not frames:
        raise ConfigError(f"write_video({path}): no frames to write")
    shapes = {f.shape for f in frames}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3 or next(iter(shapes))[2] != 3:
        raise ConfigError(f"write_video({path}): frames must all be HxWx3 uint8 of one size; got {shapes}")
    if not fps > 0:
        raise ConfigError(f"write_video({path}): fps must be > 0, got {fps}")
    if not 0 <= int(crf) <= 51:
        raise ConfigError(f"H.264 CRF must be in 0..51 (lower = better quality), got {crf}")
    rate = Fraction(fps).limit_denominator(1001)  # 30000/1001 stays exact

    def write(tmp: Path) -> None:
        with av.open(str(tmp), "w", format="mp4") as out:
            stream = out.add_stream("libx264", rate=rate)
            stream.height, stream.width = pad_even(frames[0][None]).shape[1:3]
            stream.pix_fmt = "yuv420p"
            stream.time_base = 1 / rate
            stream.codec_context.time_base = 1 / rate
            stream.options = {"crf": str(int(crf)), "preset": "medium"}
            for i, image in enumerate(frames):
                image = pad_even(np.asarray(image, dtype=np.uint8)[None])[0]
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts, frame.time_base = i, 1 / rate
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))

    return atomic_write(path, write)


def read_video(path: str | Path) -> tuple[list[np.ndarray], float]:
    """Every frame of a video, upright (rotation metadata applied), as HxWx3 RGB uint8; and its fps."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"video not found: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise CorruptVideoError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or 25
            frames = [upright(f.to_ndarray(format="rgb24"), f.rotation) for f in container.decode(stream)]
    except av.error.FFmpegError as err:
        raise CorruptVideoError(f"{path}: cannot decode ({err}); is it a video?") from err
    return frames, float(rate)


def _frame_metric(fn, a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.shape[-1] != 3:
        raise ConfigError(f"compare HxWx3 (or NxHxWx3) uint8 frames of one shape; got {a.shape}, {b.shape}")
    if a.ndim == 4:
        return float(np.mean([fn(x, y) for x, y in zip(a, b, strict=True)]))
    return float(fn(a, b))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of uint8 frame(s) a vs b (HxWx3, or NxHxWx3 averaged over frames); inf when equal."""
    # Imported here, not at module load: skimage.metrics pulls in scipy.stats (~0.8 s), and of the
    # commands that load this module only the frame-quality numbers of `deepshield attack` need it.
    from skimage.metrics import peak_signal_noise_ratio

    return _frame_metric(lambda x, y: float("inf") if np.array_equal(x, y)
                         else peak_signal_noise_ratio(x, y, data_range=255), a, b)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM in [-1, 1] of uint8 frame(s) a vs b (HxWx3, or NxHxWx3 averaged over frames)."""
    from skimage.metrics import structural_similarity  # lazily, as in psnr

    return _frame_metric(lambda x, y: structural_similarity(x, y, channel_axis=-1, data_range=255), a, b)


__all__ = ["CRF_TO_JPEG_QUALITY", "h264_diff", "h264_quality", "h264_roundtrip", "jpeg_diff",
           "jpeg_roundtrip", "psnr", "quant_tables", "read_video", "ssim", "write_video"]
