"""Natural corruptions a re-upload causes: JPEG, blur, sensor noise, downscaling. No adversary: how much a
detector's clean accuracy survives a platform's processing (the "Natural corruptions" report table).

Each corruption is ``fn(x, generator) -> Tensor``: x (N, 3, H, W) in [0, 1] in, the same shape in [0, 1]
out; only the noise corruptions draw random numbers, from ``generator`` (a CPU ``torch.Generator``;
None = a fresh one seeded 0). Adding a family is one decorated function:

    @register_corruption({"jpeg30": 30, "jpeg50": 50})
    def jpeg(x, generator, level): ...

    >>> x_blur = build_corruption("blur1")(x, torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import partial

import torch
import torch.nn.functional as F
from torchvision.transforms.v2.functional import gaussian_blur

from deepshield.registry import Registry
from deepshield.threats.reencode import jpeg_roundtrip

Corruption = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]
CORRUPTIONS: Registry[Corruption] = Registry("corruption")


def register_corruption(levels: Mapping[str, float]) -> Callable[[Callable[..., torch.Tensor]],
                                                                 Callable[..., torch.Tensor]]:
    """Decorator: register ``fn(x, generator, level)`` once per ``{name: level}`` entry."""

    def register(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        for name, level in levels.items():
            CORRUPTIONS.add(name, partial(fn, level=level))
        return fn

    return register


def build_corruption(name: str) -> Corruption:
    """The registered corruption ``name`` (e.g. ``jpeg50``); ConfigError listing the choices otherwise."""
    return CORRUPTIONS.lookup(name)


@register_corruption({"jpeg30": 30, "jpeg50": 50, "jpeg70": 70, "jpeg90": 90})
def jpeg(x: torch.Tensor, generator: torch.Generator | None, level: int) -> torch.Tensor:
    """Real JPEG (PIL, 4:2:0) at quality ``level``."""
    return jpeg_roundtrip(x, int(level))


@register_corruption({"blur1": 1.0, "blur2": 2.0})
def blur(x: torch.Tensor, generator: torch.Generator | None, level: float) -> torch.Tensor:
    """Gaussian blur, sigma ``level`` px (kernel 2*ceil(3 sigma)+1, reflected borders)."""
    size = 2 * math.ceil(3 * level) + 1
    return gaussian_blur(x, [size, size], [level, level]).clamp(0, 1)


@register_corruption({"noise0.02": 0.02, "noise0.05": 0.05})
def noise(x: torch.Tensor, generator: torch.Generator | None, level: float) -> torch.Tensor:
    """Additive Gaussian noise, std ``level`` in [0, 1] pixel units, clamped to [0, 1]."""
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    draw = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
    return (x + level * draw.to(x.device)).clamp(0, 1)


@register_corruption({"down0.5": 0.5})
def downscale(x: torch.Tensor, generator: torch.Generator | None, level: float) -> torch.Tensor:
    """Downscale by ``level`` (bilinear, antialiased) and back up to the input size (bilinear)."""
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(1, round(h * level)), max(1, round(w * level))), mode="bilinear",
                          antialias=True, align_corners=False)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


__all__ = ["CORRUPTIONS", "Corruption", "blur", "build_corruption", "downscale", "jpeg", "noise",
           "register_corruption"]
