"""Self-blended pseudo-fakes (SBI; Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images",
CVPR 2022): a real face blended with a slightly altered copy of itself, so a detector learns the
generic traces of face swapping (blending boundary, colour and sharpness mismatch) from real videos only.

:func:`self_blend` takes a uint8 face crop [3, S, S] and its five MTCNN landmarks
(:mod:`deepshield.data.landmarks`, crop fractions) and returns the pseudo-fake and its blending mask.
Every random choice draws from the given ``torch.Generator``. What it does (defaults in :class:`SBI`):

1. **Source and target** are two copies of the face; one of them (coin flip) is altered:
   colour (p 0.3 each: per-channel RGB shift ±20/255; HSV: hue ±0.015, saturation and value ×(1±0.15);
   brightness and contrast ±0.1), sharpness (one of: Gaussian blur σ 0.3-1.0, sharpening ×1.5-3,
   downscale to 0.5-0.9 and back, or nothing) and geometry (scale 0.95-1.05 per axis, shift ±3 %).
2. **Mask**: the five landmarks only span eyes to mouth, so the region is enlarged to the face: either
   their convex hull scaled ×1.05-1.45 about its centroid, or (coin flip) an ellipse on the landmarks'
   centroid, rotated with the eye line, through the corners of their bounding box (half-axes √2 × their
   half-extent) scaled ×1.0-1.2. The original uses the 81-point hull of dlib landmarks; five points are
   what MTCNN gives. The ranges keep the blending boundary inside the tight crops of ``deepshield
   preprocess`` (the face fills most of the crop): a mask over the whole crop would blend no boundary.
3. The mask is **deformed** (a smooth random elastic field, up to 4 % of S; a random affine: ±5 %
   scale, ±2 % shift), **blurred** (Gaussian σ 1.5-5 % of S, renormalised to a maximum of 1) and
   scaled by a **blend ratio** drawn from {0.25, 0.5, 0.75, 1, 1, 1}.
4. fake = source × mask + target × (1 − mask), rounded to uint8.

:class:`PseudoFakeDataset` turns a catalog dataset's real rows into pseudo-fakes on the fly (in DataLoader
workers), alone or mixed with the catalog's real fakes.

    >>> fake, mask = self_blend(face_uint8, points, torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from deepshield.errors import ConfigError
from deepshield.io import atomic_write
from deepshield.registry import Registry
from deepshield.runtime import single_thread

if TYPE_CHECKING:
    from deepshield.data.datasets import FaceCatalogDataset

PseudoFake = Callable[[torch.Tensor, np.ndarray, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
PSEUDO_FAKES: Registry[PseudoFake] = Registry("pseudo-fake method")
PSEUDO = 2  # item kind: a pseudo-fake made from a real row


@dataclass(frozen=True)
class SBI:
    """Self-blending settings (see the module docstring); sizes are fractions of the crop side."""

    colour_p: float = 0.3
    rgb_shift: float = 20 / 255
    hue: float = 0.015
    sat_val: float = 0.15
    bright_contrast: float = 0.1
    blur_sigma: tuple[float, float] = (0.3, 1.0)
    sharpen: tuple[float, float] = (1.5, 3.0)
    downscale: tuple[float, float] = (0.5, 0.9)
    scale: tuple[float, float] = (0.95, 1.05)
    shift: float = 0.03
    region_scale: tuple[float, float] = (1.05, 1.45)
    ellipse_scale: tuple[float, float] = (1.0, 1.2)
    elastic: float = 0.04
    mask_scale: float = 0.05
    mask_shift: float = 0.02
    mask_sigma: tuple[float, float] = (0.015, 0.05)
    blend_ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)


def _u(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _chance(g: torch.Generator, p: float) -> bool:
    return float(torch.rand((), generator=g)) < p


def _colour(x: torch.Tensor, g: torch.Generator, s: SBI) -> torch.Tensor:
    """x float [3, S, S] in [0, 1]: RGB shift, HSV and brightness/contrast, each with p ``colour_p``."""
    if _chance(g, s.colour_p):
        x = x + (torch.rand(3, 1, 1, generator=g) * 2 - 1) * s.rgb_shift
    if _chance(g, s.colour_p):
        x = TF.adjust_hue(x.clamp(0, 1), _u(g, -s.hue, s.hue))
        x = TF.adjust_saturation(x, _u(g, 1 - s.sat_val, 1 + s.sat_val))
        x = x * _u(g, 1 - s.sat_val, 1 + s.sat_val)
    if _chance(g, s.colour_p):
        x = TF.adjust_brightness(x.clamp(0, 1), _u(g, 1 - s.bright_contrast, 1 + s.bright_contrast))
        x = TF.adjust_contrast(x, _u(g, 1 - s.bright_contrast, 1 + s.bright_contrast))
    return x.clamp(0, 1)


def _sharpness(x: torch.Tensor, g: torch.Generator, s: SBI) -> torch.Tensor:
    """One of: blur, sharpen, downscale-upscale, nothing (equally likely)."""
    choice = int(torch.randint(4, (), generator=g))
    size = x.shape[-1]
    if choice == 0:
        sigma = _u(g, *s.blur_sigma)
        k = 2 * math.ceil(3 * sigma) + 1
        return TF.gaussian_blur(x, [k, k], [sigma, sigma])
    if choice == 1:
        return TF.adjust_sharpness(x, _u(g, *s.sharpen))
    if choice == 2:
        small = max(8, round(size * _u(g, *s.downscale)))
        down = F.interpolate(x[None], size=(small, small), mode="bilinear", antialias=True,
                             align_corners=False)
        return F.interpolate(down, size=(size, size), mode="bilinear", align_corners=False)[0].clamp(0, 1)
    return x


def _affine(x: torch.Tensor, sx: float, sy: float, tx: float, ty: float,
            mode: str = "bilinear") -> torch.Tensor:
    """x [C, S, S] scaled by (sx, sy) about the centre and shifted by (tx, ty) (fractions of S)."""
    theta = torch.tensor([[1 / sx, 0.0, -2 * tx / sx], [0.0, 1 / sy, -2 * ty / sy]], dtype=x.dtype)[None]
    grid = F.affine_grid(theta, [1, *x.shape], align_corners=False)
    return F.grid_sample(x[None], grid, mode=mode, padding_mode="border", align_corners=False)[0]


def _geometry(x: torch.Tensor, g: torch.Generator, s: SBI) -> torch.Tensor:
    return _affine(x, _u(g, *s.scale), _u(g, *s.scale), _u(g, -s.shift, s.shift), _u(g, -s.shift, s.shift))


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Andrew's monotone chain: the hull of [K, 2] points, counter-clockwise."""
    pts = sorted(map(tuple, points.tolist()))

    def half(seq: list) -> list:
        out: list = []
        for p in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


def _polygon_mask(poly: np.ndarray, size: int) -> torch.Tensor:
    """[S, S] float mask of a convex counter-clockwise polygon (pixel-centre coordinates in pixels)."""
    c = torch.arange(size, dtype=torch.float32) + 0.5
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    inside = torch.ones(size, size, dtype=torch.bool)
    for (x0, y0), (x1, y1) in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        inside &= (x1 - x0) * (yy - y0) - (y1 - y0) * (xx - x0) >= 0
    return inside.float()


def face_region(points: np.ndarray, size: int, g: torch.Generator, s: SBI = SBI()) -> torch.Tensor:
    """The undeformed [S, S] {0, 1} mask over the face: enlarged 5-point hull, or an ellipse (coin flip).
    ``points``: [5, 2] crop fractions."""
    pts = np.asarray(points, dtype=np.float64) * size
    centre = pts.mean(axis=0)
    if _chance(g, 0.5):
        hull = _convex_hull(pts)
        return _polygon_mask(centre + (hull - centre) * _u(g, *s.region_scale), size)
    k = math.sqrt(2) * _u(g, *s.ellipse_scale)
    (lx, ly), (rx, ry) = pts[0], pts[1]
    angle = math.atan2(ry - ly, rx - lx)
    rot = np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
    local = (pts - centre) @ rot.T  # face-aligned coordinates
    a = max(1.0, np.abs(local[:, 0]).max() * k)
    b = max(1.0, np.abs(local[:, 1]).max() * k)
    c = torch.arange(size, dtype=torch.float64) + 0.5
    yy, xx = torch.meshgrid(c - centre[1], c - centre[0], indexing="ij")
    u = xx * rot[0, 0] + yy * rot[0, 1]
    v = xx * rot[1, 0] + yy * rot[1, 1]
    return ((u / a) ** 2 + (v / b) ** 2 <= 1).float()


def _deform(mask: torch.Tensor, g: torch.Generator, s: SBI) -> torch.Tensor:
    """Smooth random elastic field (4x4 control grid, bicubic) and a random affine on a [S, S] mask."""
    size = mask.shape[-1]
    field = (torch.rand(1, 2, 4, 4, generator=g) * 2 - 1) * s.elastic * 2  # grid units span 2
    field = F.interpolate(field, size=(size, size), mode="bicubic", align_corners=True)
    base = F.affine_grid(torch.eye(2, 3)[None], [1, 1, size, size], align_corners=False)
    warped = F.grid_sample(mask[None, None], base + field.permute(0, 2, 3, 1), mode="bilinear",
                           padding_mode="zeros", align_corners=False)[0]
    sx, sy = _u(g, 1 - s.mask_scale, 1 + s.mask_scale), _u(g, 1 - s.mask_scale, 1 + s.mask_scale)
    return _affine(warped, sx, sy, _u(g, -s.mask_shift, s.mask_shift), _u(g, -s.mask_shift, s.mask_shift))[0]


def blend_mask(points: np.ndarray, size: int, g: torch.Generator, s: SBI = SBI()) -> torch.Tensor:
    """The soft [S, S] blending mask in [0, 1]: face region, deformed, blurred, times a blend ratio."""
    mask = _deform(face_region(points, size, g, s), g, s)
    sigma = max(0.5, size * _u(g, *s.mask_sigma))
    k = 2 * math.ceil(3 * sigma) + 1
    mask = TF.gaussian_blur(mask[None, None], [k, k], [sigma, sigma])[0, 0]
    peak = float(mask.max())
    if peak <= 0:
        return mask
    ratio = s.blend_ratios[int(torch.randint(len(s.blend_ratios), (), generator=g))]
    return (mask / peak).clamp(0, 1) * ratio


def self_blend(image: torch.Tensor, points: np.ndarray, g: torch.Generator,
               s: SBI = SBI()) -> tuple[torch.Tensor, torch.Tensor]:
    """A self-blended pseudo-fake of ``image`` (uint8 [3, S, S]) with landmarks ``points`` ([5, 2] crop
    fractions): (fake uint8 [3, S, S], mask float [S, S] in [0, 1])."""
    if not np.isfinite(points).all():
        raise ValueError("self_blend needs five finite landmarks")
    x = image.to(torch.float32) / 255
    altered = _geometry(_sharpness(_colour(x, g, s), g, s), g, s)
    source, target = (altered, x) if _chance(g, 0.5) else (x, altered)
    mask = blend_mask(points, x.shape[-1], g, s)
    fake = source * mask + target * (1 - mask)
    return (fake * 255).round().clamp(0, 255).to(torch.uint8), mask


PSEUDO_FAKES.add("sbi", self_blend)


class PseudoFakeDataset(Dataset):
    """A :class:`~deepshield.data.datasets.FaceCatalogDataset` whose fake items are (partly) pseudo-fakes.

    Each epoch takes the base dataset's sampled items: every real item stays; the fake items are
    ``ratio`` pseudo-fakes (made by ``method`` from real items with landmarks, drawn seeded) and
    ``1 - ratio`` the catalog's fakes (a seeded subset). ``ratio`` 1 ignores the catalog's fakes and
    makes one pseudo-fake per real item. ``landmarks``: [rows of the base catalog, 5, 2] crop
    fractions, NaN where MTCNN found no face (such reals are never blended). The base dataset's
    transform (augmentation) runs after blending. Items are (x, label, video id); a pseudo-fake's video
    id is its real video's id + ``"#sbi"``. Pseudo-fakes are seeded by (seed, epoch, position).
    """

    def __init__(self, base: FaceCatalogDataset, landmarks: np.ndarray, *, ratio: float = 1.0,
                 method: str = "sbi", seed: int = 0) -> None:
        if not 0 < ratio <= 1:
            raise ConfigError(f"pseudo-fake ratio must be in (0, 1] (the fraction of fake samples that are "
                              f"pseudo-fakes), got {ratio}")
        self.base, self.ratio, self.seed = base, ratio, seed
        self.make = PSEUDO_FAKES.lookup(method)
        self.method = method
        self.landmarks = np.asarray(landmarks, dtype=np.float32)
        self.has_points = np.isfinite(self.landmarks).all(axis=(1, 2))
        reals = base.labels == 0
        if not (reals & self.has_points).any():
            raise ConfigError(f"{base.catalog}: no real face with landmarks to make pseudo-fakes from "
                              "(MTCNN found none); check the crops or train without --pseudo-fakes")
        if ratio < 1 and not (base.labels == 1).any():
            raise ConfigError(f"{base.catalog}: no fakes to mix with pseudo-fakes; use --pseudo-fake-ratio 1 "
                              "(train from reals only) or a catalog with fakes")
        self.video_methods = {**base.video_methods,
                              **{f"{k}#{method}": method for k, v in base.video_labels.items() if v == 0}}
        self.notes: list[str] = []  # lines for the run log (with_pseudo_fakes fills them)
        self.epoch = 0
        self.items = self._plan(0)

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)
        self.epoch = epoch
        self.items = self._plan(epoch)

    @property
    def skipped(self) -> int:
        """Real rows without landmarks (never blended)."""
        return int(((self.base.labels == 0) & ~self.has_points).sum())

    def _plan(self, epoch: int) -> np.ndarray:
        """[N, 2] (base row, kind): kind 0/1 = the row's own label, ``PSEUDO`` = a pseudo-fake of it."""
        rng = np.random.default_rng([self.seed, epoch, 17])
        index = self.base.index
        labels = self.base.labels[index]
        reals, fakes = index[labels == 0], index[labels == 1]
        sources = reals[self.has_points[reals]]
        n_fake = len(reals) if self.ratio >= 1 or not len(fakes) else len(fakes)
        n_pseudo = round(self.ratio * n_fake)
        kept = rng.choice(fakes, n_fake - n_pseudo, replace=False) if n_pseudo < n_fake else fakes[:0]
        picks = np.concatenate([rng.permutation(sources) for _ in range(-(-n_pseudo // len(sources)))] or
                               [sources[:0]])[:n_pseudo]
        rows = np.concatenate([reals, np.sort(kept), picks])
        kinds = np.concatenate([np.zeros(len(reals)), np.ones(len(kept)), np.full(len(picks), PSEUDO)])
        return np.stack([rows, kinds.astype(np.int64)], axis=1).astype(np.int64)

    def __len__(self) -> int:
        return len(self.items)

    def pseudo_fake(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Item ``i`` (a pseudo-fake) before augmentation: (uint8 [3, S, S], mask [S, S])."""
        row = int(self.items[i, 0])
        seed = int(np.random.SeedSequence([self.seed, self.epoch, i, 1]).generate_state(1)[0])
        g = torch.Generator().manual_seed(seed)
        with single_thread():  # tiny per-image ops: a thread pool costs more than it saves
            return self.make(self.base.load_uint8(row), self.landmarks[row], g)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, str]:
        row, kind = (int(v) for v in self.items[i])
        if kind == PSEUDO:
            x, _ = self.pseudo_fake(i)
            return self.base.finish(x, i), 1, f"{self.base.row_videos[row]}#{self.method}"
        return self.base.finish(self.base.load_uint8(row), i), kind, self.base.row_videos[row]

    def save_examples(self, path: str | Path, n: int = 6) -> Path | None:
        """A PNG grid, one row per example: real | pseudo-fake | mask (before augmentation)."""
        from PIL import Image

        pseudo = np.flatnonzero(self.items[:, 1] == PSEUDO)[:n]
        if not len(pseudo):
            return None
        tiles = []
        for i in pseudo:
            fake, mask = self.pseudo_fake(int(i))
            real = self.base.load_uint8(int(self.items[i, 0]))
            m = (mask * 255).round().to(torch.uint8).expand(3, -1, -1)
            tiles.append(torch.cat([real, fake, m], dim=2))
        grid = torch.cat(tiles, dim=1).permute(1, 2, 0).numpy()
        image = Image.fromarray(np.ascontiguousarray(grid))
        return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def _landmarks_of(ds, sidecar: Path, show_progress: bool) -> np.ndarray:
    """[rows of ds, 5, 2] landmarks of its real rows (NaN for fakes and faces MTCNN misses)."""
    from deepshield.data.landmarks import cached_landmarks

    points = np.full((len(ds.rows), 5, 2), np.nan, dtype=np.float32)
    reals = np.flatnonzero(ds.labels == 0)
    points[reals] = cached_landmarks([ds.paths[i] for i in reals], sidecar, show_progress=show_progress)
    return points


def with_pseudo_fakes(train: FaceCatalogDataset, val: FaceCatalogDataset, *, method: str, ratio: float,
                      sidecar: Path, seed: int, blend_val: bool,
                      show_progress: bool = True) -> tuple[Dataset, Dataset]:
    """Wrap catalog datasets with pseudo-fakes: training always; validation when ``blend_val`` (a real-only
    run: its fakes are pseudo-fakes of the validation reals, fixed across epochs). Landmarks are detected
    once and cached in ``sidecar``; ``notes`` on the training dataset say how many faces had none."""
    PSEUDO_FAKES.lookup(method)
    wrapped = PseudoFakeDataset(train, _landmarks_of(train, sidecar, show_progress), ratio=ratio,
                                method=method, seed=seed)
    n_real = int((train.labels == 0).sum())
    wrapped.notes = [f"pseudo-fakes: {method}, ratio {ratio:g} of the fake samples; {wrapped.skipped} of "
                     f"{n_real} real training faces have no landmarks (MTCNN) and are not blended; "
                     f"landmarks cached in {sidecar}"]
    if blend_val:
        val = PseudoFakeDataset(val, _landmarks_of(val, sidecar, show_progress), ratio=1.0, method=method,
                                seed=seed + 1)
        wrapped.notes.append(f"validation: {len(val)} items, the validation reals and pseudo-fakes of them "
                             f"({val.skipped} reals without landmarks); the catalog's fakes are not used")
    return wrapped, val


__all__ = ["PSEUDO_FAKES", "SBI", "PseudoFakeDataset", "blend_mask", "face_region", "self_blend",
           "with_pseudo_fakes"]
