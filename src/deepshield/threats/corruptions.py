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

from collections.abc import Callable, Mapping
from functools import partial

import torch

from deepshield.data import degrade
from deepshield.registry import Registry

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
    return degrade.jpeg_roundtrip(x, int(level))


# Capture and resizing: the same functions training's platform augmentations apply (data.degrade).
blur = register_corruption({"blur1": 1.0, "blur2": 2.0})(degrade.blur)
noise = register_corruption({"noise0.02": 0.02, "noise0.05": 0.05})(degrade.noise)
downscale = register_corruption({"down0.5": 0.5})(degrade.downscale)


__all__ = ["CORRUPTIONS", "Corruption", "blur", "build_corruption", "downscale", "jpeg", "noise",
           "register_corruption"]
