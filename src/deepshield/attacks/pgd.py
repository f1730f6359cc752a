"""PGD: projected gradient descent in L∞ or L2 (Madry et al., ICLR 2018, arXiv:1706.06083).

Distance: L∞ (signed-gradient steps) or L2 (normalized-gradient steps), pixel units, x in [0, 1],
shapes [N, C, H, W] and labels [N]. Defaults: 10 steps, α = ε/4, uniform random start, 1 restart.

``early_stop=True`` (robust evaluation) keeps, per sample, the first iterate that fools the model and
stops attacking that sample; it returns the final iterate for samples never fooled. With
``early_stop=False`` (adversarial training) it returns the final iterate for every sample.
Restarts attack only the samples that earlier restarts did not fool. ``init`` (a point of the ball)
replaces the first restart's start: the robust sweep warm-starts a larger ε from a smaller ε's point.

    >>> attack = PGD(eps=8/255, alpha=2/255, steps=10)
    >>> x_adv = attack(model, x, y)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from deepshield.attacks.base import (
    ITERATIVE,
    Attack,
    LossFn,
    cross_entropy_sum,
    flat_norm,
    project,
    random_start,
    with_restarts,
)
from deepshield.attacks.registry import register_attack
from deepshield.config import default_alpha
from deepshield.errors import ConfigError

if TYPE_CHECKING:
    from deepshield.config import SweepSpec


@register_attack("pgd")
class PGD(Attack):
    """Projected gradient descent; see the module docstring."""

    kind, rank, reference, help, warm_start = ITERATIVE, 1, True, "iterative", True

    @classmethod
    def eval_kwargs(cls, eps: float, spec: SweepSpec) -> dict[str, Any]:
        # α = 2.5 ε / steps (Madry et al.): enough to cross the ball and back within the step budget.
        return {"steps": spec.steps, "alpha": 2.5 * eps / spec.steps if eps > 0 else None,
                "restarts": spec.restarts, "early_stop": spec.early_stop}

    def __init__(
        self,
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int = 10,
        norm: str = "linf",
        random_start: bool = True,
        restarts: int = 1,
        targeted: bool = False,
        early_stop: bool = False,
        loss_fn: LossFn | None = None,
        eval_mode: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__(eps, norm=norm, eval_mode=eval_mode, seed=seed)
        if steps < 1 or restarts < 1:
            raise ConfigError(f"steps and restarts must be >= 1, got steps={steps}, restarts={restarts}")
        self.alpha = float(alpha) if alpha is not None else default_alpha(self.eps)
        if self.alpha <= 0 and self.eps > 0:
            raise ConfigError(f"alpha must be > 0, got {self.alpha}")
        self.steps = steps
        self.random_start = random_start
        self.restarts = restarts
        self.targeted = targeted
        self.early_stop = early_stop
        self.loss_fn = loss_fn

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.loss_fn is not None:
            return self.loss_fn(logits, y)
        target = 1 - y if self.targeted and logits.shape[1] == 2 else y
        loss = cross_entropy_sum(logits, target)
        return -loss if self.targeted else loss

    def _fooled(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.loss_fn is not None or y.dim() != 1:
            return torch.zeros(len(logits), dtype=torch.bool, device=logits.device)
        pred = logits.argmax(1)
        return pred != y if not self.targeted else pred == (1 - y)

    def _step(self, x_adv: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        if self.norm == "linf":
            return x_adv + self.alpha * grad.sign()
        g_norm = flat_norm(grad, "l2").clamp_min(1e-12).view(-1, *([1] * (grad.dim() - 1)))
        return x_adv + self.alpha * grad / g_norm

    def _perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 init: torch.Tensor | None = None) -> torch.Tensor:
        def start(x0: torch.Tensor, restart: int) -> torch.Tensor:
            if not self.random_start:
                return x0.clone()
            return random_start(x0, self.eps, self.norm, self.generator(x.device, stream=restart))

        return with_restarts(x, y, self.restarts, start,
                             lambda x0, y0, begin, last: self._run(model, x0, y0, begin, last), init)

    def _run(self, model: nn.Module, x0: torch.Tensor, y0: torch.Tensor, x_adv: torch.Tensor,
             last: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """One PGD run from ``x_adv``: (points, fooled). With early stop a fooled sample keeps the iterate
        that fooled it and leaves the batch; every other sample ends at its last iterate."""
        fooled_at = torch.zeros(len(x0), dtype=torch.bool, device=x0.device)
        active = torch.arange(len(x0), device=x0.device)
        for _step in range(self.steps):
            xa = x_adv[active].requires_grad_(True)
            logits = model(xa)
            keep = torch.ones(len(active), dtype=torch.bool, device=x0.device)
            if self.early_stop:
                hit = self._fooled(logits.detach(), y0[active])
                fooled_at[active[hit]] = True
                keep = ~hit
                if not keep.any():
                    active = active[keep]
                    break
            (grad,) = torch.autograd.grad(self._loss(logits[keep], y0[active[keep]]), xa)
            active = active[keep]
            stepped = self._step(xa.detach()[keep], grad[keep])
            x_adv[active] = project(stepped, x0[active], self.eps, self.norm)
        if self.early_stop and len(active):
            with torch.no_grad():
                fooled_at[active] = self._fooled(model(x_adv[active]), y0[active])
        elif not self.early_stop and not last:
            with torch.no_grad():
                fooled_at = self._fooled(model(x_adv), y0)
        return x_adv, fooled_at
