"""Input-transformation defenses and how to evaluate them adaptively (Athalye et al., ICML 2018).

A defense is an ``nn.Module`` mapping x in [0, 1] ([N, C, H, W]) to a transformed image of the same
shape in [0, 1], registered by name with ``@register_defense`` and built from a spec string with one
optional numeric argument: ``build_defense("jpeg:75")``, ``parse_defenses("jpeg:75,median:3")``.
Each class says whether it is ``differentiable`` and whether it is ``random``:

- a non-differentiable defense (JPEG, bit depth) masks gradients: attacking through its
  plain forward finds a zero or useless gradient and *overestimates* robustness. Adaptive evaluation
  uses BPDA, the straight-through identity gradient ``x + (f(x) - x).detach()``;
- a random defense (noise, random resize-and-pad) needs expectation over transformation: attack
  ``EOTModel(model, n)`` (``deepshield.threats.eot``), which averages n stochastic passes.

    >>> defended = DefendedModel(model, "jpeg:75,median:3", adaptive=True)
    >>> x_adv = PGD(eps=4/255, steps=20)(defended, x, y)        # BPDA-PGD
"""

from __future__ import annotations

import inspect
import io
import math
from collections.abc import Sequence
from typing import ClassVar, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from deepshield.errors import ConfigError
from deepshield.registry import Registry


class Defense(nn.Module):
    """Base class: ``forward(x) -> x'`` on [0, 1] images, same shape. ``arg`` names the one optional
    numeric setting (``"quality"``), ``arg_type`` its type; ``spec`` gives it back as ``"jpeg:75"``."""

    name: ClassVar[str] = ""
    differentiable: ClassVar[bool] = True
    random: ClassVar[bool] = False
    arg: ClassVar[str] = ""
    arg_type: ClassVar[type] = float
    help: ClassVar[str] = ""

    @property
    def value(self) -> float:
        return getattr(self, self.arg)

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.value:g}"

    def extra_repr(self) -> str:
        return f"{self.arg}={self.value:g}"


DEFENSES: Registry[type[Defense]] = Registry("defense")
D = TypeVar("D", bound=type[Defense])


def register_defense(name: str):
    """Class decorator: add a :class:`Defense` subclass to ``DEFENSES`` under ``name``."""

    def register(cls: D) -> D:
        DEFENSES.add(name, cls)
        cls.name = name
        return cls

    return register


def _check(ok: bool, what: str, example: str) -> None:
    if not ok:
        raise ConfigError(f"{what}; write e.g. {example}")


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """U[0, 1) draws from ``generator`` (on its own device) or, without one, the global RNG."""
    if generator is None:
        return torch.rand(shape, device=device)
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


@register_defense("jpeg")
class JPEG(Defense):
    """Real JPEG re-compression (PIL, per image, uint8 round trip) at ``quality`` in [1, 95].

    Its true gradient is zero almost everywhere; the output stays attached to x with that zero
    gradient, so a non-adaptive attack runs and fails the way it would against a real pipeline."""

    differentiable, arg, arg_type, help = False, "quality", int, "JPEG re-compression (quality, 75)"

    def __init__(self, quality: int = 75) -> None:
        super().__init__()
        _check(isinstance(quality, int) and 1 <= quality <= 95,
               f"jpeg quality must be an integer in [1, 95], got {quality}", "jpeg:75")
        self.quality = quality

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] not in (1, 3):
            raise ConfigError(f"jpeg needs 1 or 3 channels, got {x.shape[1]}; drop jpeg from --defense")
        pixels = (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()
        out = [self.compress(p.numpy()) for p in pixels]
        y = torch.from_numpy(np.stack(out)).to(x.device).permute(0, 3, 1, 2).to(x.dtype) / 255
        return y + 0 * x

    def compress(self, image: np.ndarray) -> np.ndarray:
        """One uint8 image [H, W, C] through a JPEG encode/decode; same shape."""
        pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=self.quality)
        decoded = np.asarray(Image.open(buf))
        return decoded.reshape(image.shape)


@register_defense("median")
class Median(Defense):
    """``k`` x ``k`` median filter (reflect padding), k odd.

    Counted as differentiable: torch routes the gradient to each window's median pixel, the exact
    gradient almost everywhere (as for max-pooling). BPDA's identity gradient is a much weaker attack
    here (``benchmarks/adaptive_eval.py``, PGD-20 at 4/255 on a SmallCNN trained through median:3:
    robust accuracy 0.94 with BPDA vs 0.70 with the true gradient): it would overestimate robustness."""

    arg, arg_type, help = "k", int, "k x k median filter (k, 3)"

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        _check(isinstance(k, int) and k >= 1 and k % 2 == 1, f"median k must be an odd integer >= 1, got {k}",
               "median:3")
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        p = self.k // 2
        padded = F.pad(x, (p, p, p, p), mode="reflect") if p else x
        patches = F.unfold(padded, self.k).view(n, c, self.k * self.k, h, w)
        return patches.median(dim=2).values


@register_defense("bits")
class BitDepth(Defense):
    """Bit-depth reduction to ``b`` bits per channel (Xu et al., feature squeezing, NDSS 2018)."""

    differentiable, arg, arg_type, help = False, "b", int, "bit-depth reduction (bits, 5)"

    def __init__(self, b: int = 5) -> None:
        super().__init__()
        _check(isinstance(b, int) and 1 <= b <= 8, f"bits b must be an integer in [1, 8], got {b}", "bits:5")
        self.b = b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = 2**self.b - 1
        return torch.round(x.clamp(0, 1) * levels) / levels


@register_defense("resize_pad")
class ResizePad(Defense):
    """Random resize and pad (Xie et al., ICLR 2018): each image is downscaled (bilinear, antialiased)
    to a random fraction in [r, 1) of its side and placed at a random position on a 0.5-grey canvas
    of the original size. Differentiable but random: adaptive evaluation uses EOT."""

    random, arg, help = True, "r", "random downscale to [r, 1) and random padding (r, 0.9)"

    def __init__(self, r: float = 0.9, generator: torch.Generator | None = None) -> None:
        super().__init__()
        _check(0 < r < 1, f"resize_pad r must be in (0, 1), got {r}", "resize_pad:0.9")
        self.r = float(r)
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        u = _uniform((n, 3), self.generator, torch.device("cpu"))
        scale = self.r + (1 - self.r) * u[:, 0]
        sizes = [(max(1, min(h - 1, math.floor(s * h))), max(1, min(w - 1, math.floor(s * w))))
                 for s in scale.tolist()]
        out = torch.full_like(x, 0.5)
        # Images sharing a size are resized together: a few interpolate calls per batch, not one per image.
        for size in set(sizes):
            idx = [i for i, s in enumerate(sizes) if s == size]
            small = F.interpolate(x[idx], size=size, mode="bilinear", antialias=True, align_corners=False)
            for j, i in enumerate(idx):
                top = int(u[i, 1] * (h - size[0] + 1))
                left = int(u[i, 2] * (w - size[1] + 1))
                out[i, :, top:top + size[0], left:left + size[1]] = small[j]
        return out.clamp(0, 1)


@register_defense("noise")
class Noise(Defense):
    """Additive Gaussian noise N(0, sigma²) in pixel units, clamped to [0, 1] (random noise defense)."""

    random, arg, help = True, "sigma", "additive Gaussian noise (sigma, 0.03)"

    def __init__(self, sigma: float = 0.03, generator: torch.Generator | None = None) -> None:
        super().__init__()
        _check(sigma >= 0, f"noise sigma must be >= 0 (pixel units), got {sigma}", "noise:0.03")
        self.sigma = float(sigma)
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.generator is None:
            noise = torch.randn_like(x)
        else:
            noise = torch.randn(x.shape, generator=self.generator, device=self.generator.device).to(x)
        return (x + self.sigma * noise).clamp(0, 1)


def build_defense(spec: str, seed: int | None = None) -> Defense:
    """A defense from ``"name"`` or ``"name:value"`` (``"jpeg:75"``); ``seed`` seeds a random one."""
    name, _, text = spec.strip().partition(":")
    cls = DEFENSES.lookup(name)
    kwargs: dict[str, object] = {}
    if text:
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"defense {spec!r}: {text!r} is not a number; write e.g. {name}:"
                              f"{inspect.signature(cls).parameters[cls.arg].default}") from None
        if cls.arg_type is int:
            _check(value.is_integer(), f"defense {spec!r}: {cls.arg} must be an integer",
                   f"{name}:{int(value)}")
            value = int(value)
        kwargs[cls.arg] = value
    if cls.random and seed is not None:
        kwargs["generator"] = torch.Generator().manual_seed(seed)
    return cls(**kwargs)


def parse_defenses(specs: str, seed: int | None = None) -> list[Defense]:
    """Defenses from a comma-separated chain, applied left to right (``"jpeg:75,median:3"``)."""
    parts = [s for s in specs.split(",") if s.strip()]
    return [build_defense(s, None if seed is None else seed + i) for i, s in enumerate(parts)]


def defense_help() -> str:
    """``bits (bit-depth reduction (bits, 5)), jpeg (...), ...`` for the CLI's help text."""
    return ", ".join(f"{n} ({DEFENSES[n].help})" for n in sorted(DEFENSES))


def bpda(defense: Defense, x: torch.Tensor) -> torch.Tensor:
    """The defense's output with an identity gradient (BPDA straight-through, Athalye et al. 2018)."""
    with torch.no_grad():
        y = defense(x)
    return x + (y - x).detach()


class DefendedModel(nn.Module):
    """``model(defenses(x))``. ``adaptive=True`` attacks the non-differentiable defenses with BPDA;
    ``adaptive=False`` uses their plain forward (zero or useless gradient: the non-adaptive evaluation
    that overestimates robustness). ``randomized`` is True when any defense is random (attack it
    through ``EOTModel``)."""

    def __init__(self, model: nn.Module, defenses: Sequence[Defense] | str, adaptive: bool = True) -> None:
        super().__init__()
        chain = parse_defenses(defenses) if isinstance(defenses, str) else list(defenses)
        self.model = model
        self.defenses = nn.ModuleList(chain)
        self.adaptive = adaptive

    @property
    def randomized(self) -> bool:
        return any(d.random for d in self.defenses)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for d in self.defenses:
            x = bpda(d, x) if self.adaptive and not d.differentiable else d(x)
        return self.model(x)

    def describe(self) -> str:
        """``jpeg:75,median:3 (adaptive: BPDA through jpeg, median)``."""
        chain = ",".join(d.spec for d in self.defenses) or "none"
        if not self.adaptive:
            how = "non-adaptive"
        else:
            masked = [d.name for d in self.defenses if not d.differentiable]
            how = "adaptive" + (f": BPDA through {', '.join(masked)}" if masked else "")
        random = [d.name for d in self.defenses if d.random]
        return f"{chain} ({how}{'; random: ' + ', '.join(random) if random else ''})"


class EnsembleModel(nn.Module):
    """The average of the members' softmax probabilities, returned as log-probabilities [N, C]: valid
    logits for the attacks, and ``softmax`` of them is the averaged probability."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if not models:
            raise ConfigError("an ensemble needs at least one model; pass one or more")
        self.models = nn.ModuleList(models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = torch.stack([torch.log_softmax(m(x).float(), 1) for m in self.models])
        return torch.logsumexp(logp, 0) - math.log(len(self.models))


__all__ = ["DEFENSES", "BitDepth", "DefendedModel", "Defense", "EnsembleModel", "JPEG", "Median", "Noise",
           "ResizePad", "bpda", "build_defense", "defense_help", "parse_defenses", "register_defense"]
