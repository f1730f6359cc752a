"""What capture, resizing and real codecs do to images: the pixel operations a re-upload applies.

Real codecs (no gradient): :func:`jpeg_roundtrip` (PIL/libjpeg, 4:2:0) and :func:`h264_roundtrip`
(libx264 via PyAV, in memory); capture and resizing: :func:`blur`, :func:`noise`, :func:`downscale`.
Training's ``platform`` augmentations (:mod:`deepshield.data.augment`) and the threat model's corruption
rows and re-encoding (:mod:`deepshield.threats.corruptions`, :mod:`deepshield.threats.reencode`) both use
these, so what a detector trains on and what it is tested against agree.

Tensors are (N, 3, H, W) RGB in [0, 1], any H and W; frames are HxWx3 RGB uint8. ``blur``, ``noise`` and
``downscale`` take ``(x, generator, level)``; only ``noise`` draws, from ``generator`` (None = seeded 0).

    >>> x_up = h264_roundtrip(x, crf=23)                 # what the viewer decodes
    >>> x_soft = blur(x, None, level=1.5)                # Gaussian blur, sigma 1.5 px
"""

from __future__ import annotations

import io
import math
from fractions import Fraction

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.v2.functional import gaussian_blur

from deepshield.errors import ConfigError


def check_images(x: torch.Tensor, what: str) -> None:
    """ConfigError naming ``what`` unless x is (N, 3, H, W)."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ConfigError(f"{what} takes images (N, 3, H, W) in [0, 1]; got shape {tuple(x.shape)}")


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [0, 1] -> (N, H, W, 3) uint8 (rounded)."""
    return (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def from_uint8(frames: np.ndarray | list[np.ndarray], like: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) in [0, 1] on ``like``'s device and dtype."""
    arr = torch.from_numpy(np.ascontiguousarray(np.stack(frames)))
    return arr.permute(0, 3, 1, 2).to(like.device, like.dtype) / 255


@torch.no_grad()
def jpeg_roundtrip(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Real JPEG (PIL/libjpeg, 4:2:0, ``quality`` 1..100) of each image in x (N, 3, H, W) in [0, 1]; no
    gradient."""
    check_images(x, "jpeg_roundtrip")
    if not 1 <= int(quality) <= 100:
        raise ConfigError(f"JPEG quality must be in 1..100, got {quality}")
    out = []
    for image in to_uint8(x):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        with Image.open(buf) as img:
            out.append(np.asarray(img.convert("RGB")))
    return from_uint8(out, x)


def pad_even(frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) edge-padded to even H and W (yuv420p needs them)."""
    h, w = frames.shape[1:3]
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _x264_stream(frames: np.ndarray, crf: int) -> list[np.ndarray]:
    """Encode (N, H, W, 3) uint8 frames (even H, W) as one libx264 stream at ``crf`` and decode it."""
    if not 0 <= int(crf) <= 51:
        raise ConfigError(f"H.264 CRF must be in 0..51 (lower = better quality), got {crf}")
    enc = av.CodecContext.create("libx264", "w")
    enc.height, enc.width = frames.shape[1:3]
    enc.pix_fmt, enc.time_base = "yuv420p", Fraction(1, 25)
    # One thread: x264's output depends on its thread count; this keeps results equal across machines.
    enc.options = {"crf": str(int(crf)), "preset": "medium", "threads": "1"}
    packets = []
    for i, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets += enc.encode(frame)
    packets += enc.encode(None)
    dec = av.CodecContext.create("h264", "r")
    decoded = [f.to_ndarray(format="rgb24") for packet in [*packets, None] for f in dec.decode(packet)]
    if len(decoded) != len(frames):
        raise RuntimeError(f"H.264 round trip returned {len(decoded)} frames for {len(frames)}")
    return decoded


@torch.no_grad()
def h264_roundtrip(x: torch.Tensor, crf: int = 23, *, intra: bool = True) -> torch.Tensor:
    """H.264 (libx264, yuv420p, preset medium, ``crf`` 0..51) encode and decode of the images of x
    (N, 3, H, W) in [0, 1]: same order and shape; no gradient.

    ``intra`` (default): each image is its own one-frame stream (an I-frame), so its result does not
    depend on the rest of the batch (x264's CRF rate control carries state from frame to frame even with
    g=1). ``intra=False``: the batch is one stream with x264's default GOP (P/B frames), for consecutive
    video frames. Odd sizes are edge-padded to even and cropped back.
    """
    check_images(x, "h264_roundtrip")
    frames = to_uint8(x)
    h, w = frames.shape[1:3]
    padded = pad_even(frames)
    streams = [padded[i : i + 1] for i in range(len(padded))] if intra else [padded]
    decoded = [f[:h, :w] for stream in streams for f in _x264_stream(stream, crf)]
    return from_uint8(decoded, x)


def blur(x: torch.Tensor, generator: torch.Generator | None, level: float) -> torch.Tensor:
    """Gaussian blur, sigma ``level`` px (kernel 2*ceil(3 sigma)+1, reflected borders)."""
    size = 2 * math.ceil(3 * level) + 1
    return gaussian_blur(x, [size, size], [level, level]).clamp(0, 1)


def noise(x: torch.Tensor, generator: torch.Generator | None, level: float) -> torch.Tensor:
    """Additive Gaussian noise, std ``level`` in [0, 1] pixel units, clamped to [0, 1]."""
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    draw = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
    return (x + level * draw.to(x.device)).clamp(0, 1)


def downscale(x: torch.Tensor, generator: torch.Generator | None, level: float) -> torch.Tensor:
    """Downscale by ``level`` (bilinear, antialiased) and back up to the input size (bilinear)."""
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(1, round(h * level)), max(1, round(w * level))), mode="bilinear",
                          antialias=True, align_corners=False)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


__all__ = ["blur", "check_images", "downscale", "from_uint8", "h264_roundtrip", "jpeg_roundtrip", "noise",
           "pad_even", "to_uint8"]
