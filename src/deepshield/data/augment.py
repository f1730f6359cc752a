"""Compression-aware ("platform") training augmentations: what an upload does to a face before a detector
sees it. Capture and resizing (downscale-upscale, sensor noise, blur) then re-encoding (H.264 intra coding
at several CRFs); JPEG re-compression is :class:`~deepshield.data.transforms.Augment`'s ``jpeg_p``.

Each op is the function the evaluation's corruption rows use (:mod:`deepshield.data.degrade`), so training
and the report agree: real H.264 is :func:`~deepshield.data.degrade.h264_roundtrip` (libx264 via PyAV, a
one-frame clip, ~5 ms at 128 px on one core); downscaling, blur and noise at a level drawn per image.

Ops take float [3, S, S] in [0, 1] and draw from torch's global RNG (the dataset seeds it per item, see
:func:`deepshield.data.transforms.seeded`).

    >>> op = PlatformOps(h264_p=1.0)
    >>> y = op(x)           # x float [3, S, S]; y: x after an H.264 round trip at a random CRF
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from deepshield.data.degrade import blur, downscale, h264_roundtrip, noise


def _u(lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(()))


def _chance(p: float) -> bool:
    return p > 0 and float(torch.rand(())) < p


@dataclass(frozen=True)
class PlatformOps:
    """Capture/resize/re-encode ops, each with its own probability (0 = off), applied in this order:
    downscale-upscale (scale ``down_scale``), Gaussian blur (σ ``blur_sigma`` px), Gaussian noise (std
    ``noise_std``), H.264 intra coding at a CRF drawn from ``h264_crfs``."""

    down_p: float = 0.0
    down_scale: tuple[float, float] = (0.4, 0.9)
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    noise_p: float = 0.0
    noise_std: tuple[float, float] = (0.005, 0.03)
    h264_p: float = 0.0
    h264_crfs: tuple[int, ...] = (18, 23, 28, 33, 38)

    @property
    def active(self) -> bool:
        return max(self.down_p, self.blur_p, self.noise_p, self.h264_p) > 0

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        batch = x[None]
        if _chance(self.down_p):
            batch = downscale(batch, None, level=_u(*self.down_scale))
        if _chance(self.blur_p):
            batch = blur(batch, None, level=_u(*self.blur_sigma))
        if _chance(self.noise_p):
            seed = int(torch.randint(2**31 - 1, ()))
            batch = noise(batch, torch.Generator().manual_seed(seed), level=_u(*self.noise_std))
        if _chance(self.h264_p):
            crf = self.h264_crfs[int(torch.randint(len(self.h264_crfs), ()))]
            batch = h264_roundtrip(batch, crf)
        return batch[0]


__all__ = ["PlatformOps"]
