"""A synthetic real/fake face dataset that makes every path runnable in seconds, with no download.

**Real** images: a smooth, coloured background texture (a few random low-frequency waves), a
face-like layout (skin-toned ellipse with soft shading, two eyes, brows and a mouth) at a random
position, scale and tone, and mild Gaussian sensor noise.

**Fake** images are made from a real one the way face-swap pipelines make them: the face region is
re-rendered by a "generator" and blended back. Two cues result, both documented in the literature:
1. generator up-sampling artifacts: the face is rendered at half resolution, up-sampled by
   nearest neighbour and carries the periodic checkerboard pattern of transposed convolutions
   (Odena et al., 2016; Durall et al., CVPR 2020 -- a peak in the high-frequency spectrum);
2. a blending boundary: the swapped region is pasted with a hard-edged elliptical mask, leaving a
   seam (the cue Face X-ray, Li et al., CVPR 2020, looks for).
The checkerboard amplitude is 0.05-0.08 in pixel units, well above ε = 4/255, so an adversarially
trained model can learn a cue the attack cannot erase, while a standard model stays brittle.
Both classes get the same sensor noise, so neither noise level nor colour separates them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from deepshield.errors import ConfigError


def _background(rng: np.random.Generator, size: int, grid: np.ndarray) -> np.ndarray:
    yy, xx = grid
    img = np.empty((3, size, size), dtype=np.float32)
    base = rng.uniform(0.2, 0.8, size=3)
    for c in range(3):
        field = np.zeros((size, size), dtype=np.float32)
        for _ in range(3):
            fx, fy = rng.uniform(0.3, 2.0, size=2) * 2 * np.pi
            phase = rng.uniform(0, 2 * np.pi)
            field += np.sin(fx * xx + fy * yy + phase) * rng.uniform(0.03, 0.1)
        img[c] = base[c] + field
    return img


def _face(rng: np.random.Generator, img: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Draw a face in place; returns (img, ellipse geometry) in normalized [0, 1] coordinates."""
    yy, xx = grid
    cx, cy = rng.uniform(0.38, 0.62, size=2)
    rx = rng.uniform(0.2, 0.28)
    ry = rx * rng.uniform(1.2, 1.4)
    skin = np.array([rng.uniform(0.55, 0.9), rng.uniform(0.4, 0.7), rng.uniform(0.3, 0.55)], np.float32)
    d = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
    inside = np.clip(1.0 - d, 0, 1)
    alpha = np.clip((1.0 - d) * 8, 0, 1)  # soft natural face edge
    shade = 0.85 + 0.15 * np.sqrt(inside)
    for c in range(3):
        img[c] = img[c] * (1 - alpha) + skin[c] * shade * alpha
    dark = rng.uniform(0.05, 0.25)
    for side in (-1, 1):  # eyes and brows
        ex, ey = cx + side * rx * 0.4, cy - ry * 0.2
        eye = np.exp(-(((xx - ex) / (rx * 0.15)) ** 2 + ((yy - ey) / (ry * 0.07)) ** 2))
        brow = np.exp(-(((xx - ex) / (rx * 0.22)) ** 2 + ((yy - ey + ry * 0.16) / (ry * 0.03)) ** 2))
        img[:] = img * (1 - 0.9 * eye) + dark * 0.9 * eye
        img[:] = img * (1 - 0.6 * brow) + dark * 0.6 * brow
    mouth = np.exp(-(((xx - cx) / (rx * 0.35)) ** 2 + ((yy - cy - ry * 0.45) / (ry * 0.05)) ** 2))
    img[0] = img[0] * (1 - 0.7 * mouth) + 0.6 * 0.7 * mouth
    img[1:] = img[1:] * (1 - 0.7 * mouth) + 0.25 * 0.7 * mouth
    return img, (cx, cy, rx, ry)


def _swap(rng: np.random.Generator, img: np.ndarray, geom: tuple, grid: np.ndarray) -> np.ndarray:
    """Re-render the face region at half resolution with a checkerboard and paste it with a seam."""
    yy, xx = grid
    size = img.shape[-1]
    low = img.reshape(3, size // 2, 2, size // 2, 2).mean(axis=(2, 4))
    gen = low.repeat(2, axis=1).repeat(2, axis=2)
    gen = gen * rng.uniform(0.95, 1.05, size=(3, 1, 1)).astype(np.float32)  # slight tone mismatch
    iy, ix = np.indices((size, size))
    checker = np.where((iy + ix) % 2 == 0, 1.0, -1.0).astype(np.float32)
    gen = gen + rng.uniform(0.05, 0.08) * checker
    cx, cy, rx, ry = geom
    d = ((xx - cx) / (rx * 0.85)) ** 2 + ((yy - cy) / (ry * 0.85)) ** 2
    mask = np.clip((1.0 - d) * 30, 0, 1)  # a hard edge: the blending seam
    return img * (1 - mask) + gen * mask


class SyntheticDeepfakeDataset(Dataset):
    """``n`` deterministic images (float32 [3, S, S] in [0, 1]) with labels 0 = real, 1 = fake.

    Labels alternate (balanced); the same ``(n, image_size, seed)`` always gives the same tensors.
    See the module docstring for what makes a fake detectable.
    """

    def __init__(self, n: int, image_size: int = 64, seed: int = 0) -> None:
        if n < 1 or image_size < 16 or image_size % 2:
            raise ConfigError(f"need n >= 1 and an even image_size >= 16, got n={n}, image_size={image_size}")
        self.n, self.image_size, self.seed = n, image_size, seed
        lin = (np.arange(image_size, dtype=np.float32) + 0.5) / image_size
        grid = np.stack(np.meshgrid(lin, lin, indexing="ij"))
        images = np.empty((n, 3, image_size, image_size), dtype=np.float32)
        for i in range(n):
            rng = np.random.default_rng([seed, i])
            img, geom = _face(rng, _background(rng, image_size, grid), grid)
            if i % 2 == 1:
                img = _swap(rng, img, geom, grid)
            img = img + rng.normal(0, 0.01, size=img.shape).astype(np.float32)
            images[i] = np.clip(img, 0, 1)
        self.images = torch.from_numpy(images)
        self.labels = torch.arange(n) % 2

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[i], self.labels[i]
