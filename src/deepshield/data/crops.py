"""Crop geometry: how a square crop is cut around a face box, the same for video frames and still images.

    >>> crop = CropGeometry(size=224, margin=1.3).crop(frame, face.box)    # 224x224x3 uint8 RGB

* a square of ``margin`` x the box's longer side, centred on the box, its centre moved down by
  ``shift`` x that side (``margin`` < 1 zooms into the face: 0.72 with shift 0.1 frames the inner face
  from brows to chin, the framing of the DFDC face crops);
* where the square leaves the image it is moved back inside it ("fit"); a square larger than the
  image's shorter side is reduced to that side. Crops never hold padding, so a tight face photo and a
  face in a video frame give the same kind of crop (the alternative, black padding, gave crops of a
  tight face photo that were ~60% black);
* the square is resized (bicubic) to ``size`` x ``size``, never squashed.

:func:`fit_ratio` says how much of the wanted square an image could hold (1.0 = all of it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from deepshield.contracts.crops import CropSettings
from deepshield.errors import ConfigError


@dataclass(frozen=True)
class CropGeometry:
    """How a crop is cut around a face box: side = ``margin`` x the box's longer side, centre moved down
    by ``shift`` x that side, resized to ``size`` px. ``margin`` in (0, 4], ``shift`` in [-1, 1]."""

    size: int = 224
    margin: float = 1.3
    shift: float = 0.0

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ConfigError(f"crop size {self.size}: must be >= 8 pixels")
        if not 0 < self.margin <= 4:
            raise ConfigError(f"crop margin {self.margin}: must be in (0, 4] (1.3 = 30% context around "
                              "the face)")
        if not -1 <= self.shift <= 1:
            raise ConfigError(f"crop shift {self.shift}: must be in [-1, 1] (0.1 = centre 10% of the box "
                              "lower)")

    @classmethod
    def of(cls, settings: CropSettings) -> CropGeometry:
        """The crop ``settings`` cut (ConfigError on a bad margin, shift or size)."""
        return cls(settings.size, settings.margin, settings.shift)

    def crop(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """``size`` x ``size`` RGB crop of ``image`` around ``box``; see the module docstring."""
        return crop_face(image, box, self.size, self.margin, self.shift)


def square_box(box: Sequence[float], margin: float, shift: float = 0.0) -> tuple[int, int, int, int]:
    """Integer square (x0, y0, x1, y1) of side ``margin`` x the box's longer side, centred on the box
    and moved down by ``shift`` x that side. It may extend past the image; see :func:`fit_square`."""
    x0, y0, x1, y1 = (float(v) for v in box)
    longer = max(x1 - x0, y1 - y0)
    side = max(1, int(round(margin * longer)))
    left = int(round((x0 + x1) / 2 - side / 2))
    top = int(round((y0 + y1) / 2 + shift * longer - side / 2))
    return left, top, left + side, top + side


def fit_square(square: Sequence[int], width: int, height: int) -> tuple[int, int, int, int]:
    """``square`` moved inside a ``width`` x ``height`` image; reduced (about its centre) to the image's
    shorter side first when it is larger."""
    left, top, right, bottom = (int(v) for v in square)
    side = right - left
    if side > min(width, height):
        cx, cy, side = (left + right) / 2, (top + bottom) / 2, min(width, height)
        left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    left = min(max(left, 0), width - side)
    top = min(max(top, 0), height - side)
    return left, top, left + side, top + side


def fit_ratio(box: Sequence[float], width: int, height: int, margin: float, shift: float = 0.0) -> float:
    """Side of the crop an image can give / side of the wanted square (1.0: the full margin fits)."""
    left, top, right, _ = square_box(box, margin, shift)
    return min(1.0, min(width, height) / (right - left))


def crop_face(image: np.ndarray, box: Sequence[float], size: int, margin: float,
              shift: float = 0.0) -> np.ndarray:
    """``size`` x ``size`` RGB crop of the margin square around ``box``, fitted inside the image."""
    height, width = image.shape[:2]
    left, top, right, bottom = fit_square(square_box(box, margin, shift), width, height)
    canvas = np.ascontiguousarray(image[top:bottom, left:right])
    if right - left == size:
        return canvas
    return np.asarray(Image.fromarray(canvas).resize((size, size), Image.Resampling.BICUBIC))


__all__ = ["CropGeometry", "crop_face", "fit_ratio", "fit_square", "square_box"]
