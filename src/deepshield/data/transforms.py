"""Train/eval transforms for face crops: uint8 [3, S, S] tensors in, float [3, S, S] in [0, 1] out.

Training augmentations follow what deepfake detectors use (DeepfakeBench's default recipe, the DFDC
winners' pipelines): they mimic re-encoding and capture changes a detector meets at test time
(JPEG re-compression, blur, colour shifts), framing changes (flip, mild resized crop) and occlusion
(cutout), so the detector cannot lean on one fragile local cue. Defaults, each applied with its own
probability (all in :class:`Augment`):

==================  ===========================================================  ====
transform           setting                                                      p
==================  ===========================================================  ====
horizontal flip                                                                  0.5
resized crop        area 0.8-1.0 of the crop, aspect 0.9-1.1, back to S x S      0.5
colour jitter       brightness/contrast/saturation +-0.2 (hue off, see below)    0.5
JPEG re-compress    quality uniform in 40-100                                    0.5
Gaussian blur       kernel 5, sigma 0.1-1.5                                      0.1
cutout              RandomErasing, 2-15 % of the area, aspect 0.3-3.3, black     0.25
==================  ===========================================================  ====

The ``platform`` recipe adds compression-aware ops (:mod:`deepshield.data.augment`): downscale-upscale,
blur, sensor noise and real H.264 intra coding at several CRFs, after the uint8 -> float conversion.

Hue jitter is off by default: its HSV round trip costs ~10 ms per 224 px crop on a CPU core, five times
the rest of the pipeline together.

Evaluation applies none of them (only the uint8 -> float conversion). The transforms draw from
torch's global RNG; :func:`seeded` runs one under a given seed without disturbing that RNG, which is
how :class:`~deepshield.data.datasets.FaceCatalogDataset` makes every epoch's augmentations repeatable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torchvision.transforms import v2

from deepshield.data.augment import PlatformOps
from deepshield.registry import Registry
from deepshield.runtime import single_thread

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Augment:
    """Training augmentation settings; a probability of 0 turns a transform off."""

    flip_p: float = 0.5
    crop_p: float = 0.5
    crop_scale: tuple[float, float] = (0.8, 1.0)
    crop_ratio: tuple[float, float] = (0.9, 1.1)
    jitter_p: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.0
    jpeg_p: float = 0.5
    jpeg_quality: tuple[int, int] = (40, 100)
    blur_p: float = 0.1
    blur_kernel: int = 5
    blur_sigma: tuple[float, float] = (0.1, 1.5)
    erase_p: float = 0.25
    erase_scale: tuple[float, float] = (0.02, 0.15)
    erase_ratio: tuple[float, float] = (0.3, 3.3)
    platform: PlatformOps = PlatformOps()   # downscale, blur, noise, H.264 (data.augment); off by default


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 [..., 3, H, W] -> float32 in [0, 1] (exactly x / 255)."""
    return x.to(torch.float32).div_(255.0)


def build_eval_transform() -> Transform:
    """No augmentation: uint8 -> float32 in [0, 1]."""
    return to_float


def build_train_transform(image_size: int, aug: Augment | None = None) -> Transform:
    """The training augmentation pipeline (see the module docstring) for S = ``image_size``."""
    a = aug or Augment()

    def maybe(p: float, t: v2.Transform) -> list[v2.Transform]:
        return [] if p <= 0 else [t if p >= 1 else v2.RandomApply([t], p=p)]

    steps: list[v2.Transform] = []
    if a.flip_p > 0:
        steps.append(v2.RandomHorizontalFlip(a.flip_p))
    steps += maybe(a.crop_p, v2.RandomResizedCrop(image_size, scale=a.crop_scale, ratio=a.crop_ratio,
                                                  antialias=True))
    steps += maybe(a.jitter_p, v2.ColorJitter(a.brightness, a.contrast, a.saturation, a.hue))
    steps += maybe(a.jpeg_p, v2.JPEG(list(a.jpeg_quality)))
    steps += maybe(a.blur_p, v2.GaussianBlur(a.blur_kernel, sigma=a.blur_sigma))
    steps.append(v2.Lambda(to_float, torch.Tensor))  # the same conversion as evaluation, bit for bit
    if a.platform.active:
        steps.append(v2.Lambda(a.platform, torch.Tensor))
    if a.erase_p > 0:
        steps.append(v2.RandomErasing(p=a.erase_p, scale=a.erase_scale, ratio=a.erase_ratio, value=0.0))
    return v2.Compose(steps)


# Named augmentation recipes (``TrainConfig.augment``); None = no augmentation. ``platform``: the face
# augmentations plus what an upload does (data.augment): JPEG 40-100 (p 0.5), downscale x0.4-0.9 and back
# (p 0.3), blur σ 0.3-1.5 (p 0.2, instead of the faces recipe's σ 0.1-1.5 at p 0.1), noise std 0.005-0.03
# (p 0.2), real H.264 intra coding at CRF 18/23/28/33/38 (p 0.3).
AUGMENTS: Registry[Augment | None] = Registry("augmentation")
AUGMENTS.add("faces", Augment())
AUGMENTS.add("platform",
             Augment(blur_p=0.0, platform=PlatformOps(down_p=0.3, blur_p=0.2, noise_p=0.2, h264_p=0.3)))
AUGMENTS.add("none", None)


def build_augment(name: str, image_size: int) -> Transform | None:
    """The training transform of augmentation recipe ``name`` (None for ``none``)."""
    aug = AUGMENTS.lookup(name)
    return None if aug is None else build_train_transform(image_size, aug)


def seeded(transform: Transform, x: torch.Tensor, seed: int) -> torch.Tensor:
    """``transform(x)`` single-threaded, with torch's CPU RNG seeded by ``seed`` and restored after."""
    with torch.random.fork_rng(devices=[]), single_thread():
        torch.default_generator.manual_seed(seed)  # not torch.manual_seed: that also queues CUDA seeding
        return transform(x)
