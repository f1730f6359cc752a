"""Attack base: pixel-space threat models with the model's state left exactly as it was.

Every attack is a configured object called as ``attack(model, x, y) -> x_adv`` with x in [0, 1].
The base class guarantees, for every subclass:

- the model's (and each submodule's) train/eval mode is restored, and the attack runs in eval mode
  by default so BatchNorm statistics are not updated;
- parameters and their ``.grad`` are untouched (gradients are taken with ``torch.autograd.grad``
  with respect to the input only);
- it works inside a caller's ``torch.no_grad()`` or ``torch.inference_mode()``;
- the result is detached, inside [0, 1] and inside the ε-ball of the chosen norm; ε = 0 returns x.

``attack(model, x, y, init=x_start)`` warm-starts an attack that supports it (``warm_start``) from a
point of the ball (projected onto it first) instead of its usual start; others ignore ``init``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from deepshield.errors import ConfigError
from deepshield.runtime import kept_modes

if TYPE_CHECKING:
    from deepshield.config import SweepSpec

NORMS = ("linf", "l2")
SINGLE_STEP, ITERATIVE, BLACK_BOX = "single-step", "iterative", "black-box"
KINDS = (SINGLE_STEP, ITERATIVE, BLACK_BOX)
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy_sum(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy, so each sample's input gradient does not shrink with the batch size."""
    return nn.functional.cross_entropy(logits.float(), y, reduction="sum")


def flat_norm(t: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample norm of ``t`` ([N, ...] -> [N])."""
    flat = t.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(p=2, dim=1)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Project ``x_adv`` onto the ε-ball around ``x`` and the [0, 1] box."""
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        scale = (eps / flat_norm(delta, "l2").clamp_min(1e-12)).clamp(max=1.0)
        delta = delta * scale.view(-1, *([1] * (x.dim() - 1)))
    # Clamping to [0, 1] only moves coordinates towards x, so it never leaves the ball.
    return (x + delta).clamp(0.0, 1.0)


def random_start(x: torch.Tensor, eps: float, norm: str, generator: torch.Generator | None) -> torch.Tensor:
    """A uniformly random point of the ε-ball around ``x`` (L2: random direction, uniform radius)."""
    if norm == "linf":
        delta = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1
        delta = delta * eps
    else:
        delta = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        delta = delta / flat_norm(delta, "l2").clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
        radius = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype) * eps
        delta = delta * radius.view(-1, *([1] * (x.dim() - 1)))
    return project(x + delta, x, eps, norm)


RunFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, bool], tuple[torch.Tensor, torch.Tensor]]


def with_restarts(x: torch.Tensor, y: torch.Tensor, restarts: int,
                  start: Callable[[torch.Tensor, int], torch.Tensor], run: RunFn,
                  init: torch.Tensor | None = None) -> torch.Tensor:
    """Restarts of ``run(x, y, start_point, last) -> (points, fooled)``, each on the samples that earlier
    restarts did not fool: the first from ``init`` when given, the others from ``start(x, restart)``. A
    sample keeps the point of the restart that fooled it, else the last restart's point. ``last`` tells
    ``run`` that no restart follows (so it may skip the check for ``fooled``). ``start`` should draw each
    restart from its own random stream, so a sample's start does not depend on which others are in the
    batch (robust evaluation relies on it: a subset attacked alone gets the same points)."""
    best = x.clone()
    done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for restart in range(restarts):
        idx = (~done).nonzero().squeeze(1)
        if len(idx) == 0:
            break
        begin = init[idx].clone() if init is not None and restart == 0 else start(x[idx], restart)
        points, fooled = run(x[idx], y[idx], begin, restart == restarts - 1)
        best[idx] = points
        done[idx] = fooled
    return best


class Attack:
    """Base class. Subclasses implement ``_perturb(model, x, y) -> x_adv`` and may assume grad is on
    and the model is in the mode the attack asked for.

    Class attributes describe the attack to the registry (``deepshield.attacks.registry``): ``kind``
    (single-step, iterative white-box, black-box), ``rank`` (strength within the kind; larger is
    listed first), ``reference`` (the one the sanity checks run for its kind), ``help`` (CLI text);
    ``eval_kwargs`` is how robust evaluation configures it; ``warm_start``: whether ``_perturb`` takes
    ``init`` (a start point inside the ball). ``name`` is set on registration.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ITERATIVE
    rank: ClassVar[int] = 0
    reference: ClassVar[bool] = False
    help: ClassVar[str] = ""
    warm_start: ClassVar[bool] = False

    @classmethod
    def eval_kwargs(cls, eps: float, spec: SweepSpec) -> dict[str, Any]:
        """Hyper-parameters for robust evaluation at ``eps`` under ``spec`` (beyond eps, norm, seed)."""
        return {}

    def __init__(self, eps: float, norm: str = "linf", eval_mode: bool = True,
                 seed: int | None = None) -> None:
        if not (eps >= 0):
            raise ConfigError(f"eps must be >= 0 (pixel units in [0, 1], e.g. 8/255), got {eps}")
        if norm not in NORMS:
            raise ConfigError(f"unknown norm {norm!r}; choose from {', '.join(NORMS)}")
        self.eps = float(eps)
        self.norm = norm
        self.eval_mode = eval_mode
        self.seed = seed

    def generator(self, device: torch.device, stream: int = 0) -> torch.Generator | None:
        """A fresh generator seeded with ``self.seed`` (None: use the global RNG); ``stream`` k > 0 gives
        the k-th of independent others (e.g. one per restart)."""
        if self.seed is None:
            return None
        return torch.Generator(device=device).manual_seed(self.seed + 1_000_003 * stream)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 init: torch.Tensor | None = None) -> torch.Tensor:
        with torch.inference_mode(False):
            x = x.detach().clone()
            y = y.detach().clone()
            start = {}
            if init is not None and self.warm_start:
                start["init"] = project(init.detach().to(dtype=x.dtype), x, self.eps, self.norm)
        if self.eps == 0:
            return x
        with kept_modes(model):
            if self.eval_mode:
                model.eval()
            with torch.inference_mode(False), torch.enable_grad():
                x_adv = self._perturb(model, x, y, **start)
        with torch.inference_mode(False):
            return project(x_adv.detach(), x, self.eps, self.norm)

    def _perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"
