"""APGD-CE: Auto-PGD with the cross-entropy loss (Croce & Hein, ICML 2020, arXiv:2003.01690).

PGD with momentum 0.75 and no step size to tune: the step starts at 2ε and halves at checkpoints (after
22% of the steps, then at gaps shrinking by 3% to no less than 6%) when the loss stalled (at most 75% of
the steps since the last checkpoint raised it, or the best loss did not move while the step did not
change); the search then resumes from the best point found. Restarts attack only the samples earlier
restarts did not fool. Distance: L∞ or L2, pixel units, x in [0, 1] of shape [N, C, H, W], labels [N].
Defaults: 100 steps, 1 restart, uniform random start. (APGD-DLR needs at least three classes; a
real/fake detector has two.)

Our own torch implementation rather than ART's, for robust evaluation: one forward-backward per step
(ART adds a loss-only forward per step), a fooling iterate is kept whenever it appears (ART keeps only
the last iterate), ``early_stop`` drops fooled samples from the batch, and ``init`` starts from a given
point (the robust sweep warm-starts from the point found at a smaller ε or by PGD). For unfooled samples
the result is the highest-loss point found.

    >>> x_adv = APGD(eps=4/255, steps=50)(model, x, y)
    >>> x_adv = APGD(eps=8/255, steps=10, early_stop=True)(model, x, y, init=x_adv_at_4)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from deepshield.attacks.base import ITERATIVE, Attack, flat_norm, project, random_start, with_restarts
from deepshield.attacks.registry import register_attack
from deepshield.errors import ConfigError

if TYPE_CHECKING:
    from deepshield.config import SweepSpec

MOMENTUM, RHO = 0.75, 0.75


def checkpoint_gaps(steps: int) -> tuple[int, int, int]:
    """(first gap, shrink per checkpoint, smallest gap) in steps, as in the authors' AutoAttack code."""
    return max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)


@register_attack("apgd")
class APGD(Attack):
    """APGD-CE; see the module docstring."""

    kind, rank, help, warm_start = ITERATIVE, 2, "APGD-CE, iterative", True

    @classmethod
    def eval_kwargs(cls, eps: float, spec: SweepSpec) -> dict[str, Any]:
        # The sweep's strongest white-box attack gets a second restart, run only on the faces the first left
        # unfooled (about a tenth on a robust model): with one random start per attack the worst case matched
        # a loop of independent library attacks only on average (benchmarks/sweep_vs_libraries.py).
        return {"steps": spec.steps, "restarts": max(spec.restarts, 2), "early_stop": spec.early_stop}

    def __init__(self, eps: float = 8 / 255, norm: str = "linf", steps: int = 100, restarts: int = 1,
                 early_stop: bool = False, eval_mode: bool = True, seed: int | None = None) -> None:
        super().__init__(eps, norm=norm, eval_mode=eval_mode, seed=seed)
        if steps < 1 or restarts < 1:
            raise ConfigError(f"steps and restarts must be >= 1, got steps={steps}, restarts={restarts}")
        self.steps, self.restarts, self.early_stop = steps, restarts, early_stop

    def _perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 init: torch.Tensor | None = None) -> torch.Tensor:
        def start(x0: torch.Tensor, restart: int) -> torch.Tensor:
            return random_start(x0, self.eps, self.norm, self.generator(x.device, stream=restart))

        return with_restarts(x, y, self.restarts, start,
                             lambda x0, y0, begin, _last: self._run(model, x0, y0, begin), init)

    def _loss_grad(self, model: nn.Module, x: torch.Tensor,
                   y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-sample loss, its input gradient and whether the model is fooled, from one forward-backward."""
        x = x.detach().requires_grad_(True)
        logits = model(x)
        loss = nn.functional.cross_entropy(logits.float(), y, reduction="none")
        (grad,) = torch.autograd.grad(loss.sum(), x)
        return loss.detach(), grad.detach(), logits.detach().argmax(1) != y

    def _direction(self, grad: torch.Tensor) -> torch.Tensor:
        if self.norm == "linf":
            return grad.sign()
        return grad / flat_norm(grad, "l2").clamp_min(1e-12).view(-1, *([1] * (grad.dim() - 1)))

    def _run(self, model: nn.Module, x0: torch.Tensor, y: torch.Tensor,
             start: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One APGD run from ``start``. Returns (points, fooled): the fooling point where one was found,
        else the highest-loss one."""
        n, shape = len(x0), (-1, *([1] * (x0.dim() - 1)))
        x = project(start, x0, self.eps, self.norm)
        loss, grad, wrong = self._loss_grad(model, x, y)
        fooled, x_fool = wrong.clone(), x.clone()
        x_best, loss_best, grad_best, wrong_best = x.clone(), loss.clone(), grad.clone(), wrong.clone()
        x_prev, loss_prev = x.clone(), loss.clone()
        step = torch.full((n,), 2 * self.eps, device=x.device, dtype=x.dtype)
        ups = torch.zeros(n, device=x.device)
        reduced = torch.ones(n, dtype=torch.bool, device=x.device)
        best_at_check = loss_best.clone()
        gap, shrink, least = checkpoint_gaps(self.steps)
        since = 0
        active = (~fooled).nonzero().squeeze(1) if self.early_stop else torch.arange(n, device=x.device)
        for i in range(self.steps):
            if len(active) == 0:
                break
            a, xa = active, x[active]
            z = project(xa + step[a].view(shape) * self._direction(grad[a]), x0[a], self.eps, self.norm)
            mom = MOMENTUM if i > 0 else 1.0
            new = project(xa + mom * (z - xa) + (1 - mom) * (xa - x_prev[a]), x0[a], self.eps, self.norm)
            x_prev[a], x[a] = xa, new
            loss_new, grad[a], wrong = self._loss_grad(model, new, y[a])
            x_fool[a[wrong]] = new[wrong]
            fooled[a[wrong]] = True
            better = loss_new > loss_best[a]
            up = a[better]
            x_best[up], loss_best[up], grad_best[up], wrong_best[up] = (new[better], loss_new[better],
                                                                        grad[up], wrong[better])
            ups[a] += (loss_new > loss_prev[a]).float()
            loss_prev[a] = loss_new
            since += 1
            if since == gap:  # checkpoint: halve the step where the loss stalled, resume from the best
                stalled = (ups <= RHO * gap) | (~reduced & (best_at_check >= loss_best))
                reduced, best_at_check = stalled, loss_best.clone()
                ups.zero_()
                step[stalled] /= 2
                x[stalled], grad[stalled] = x_best[stalled], grad_best[stalled]
                gap, since = max(gap - shrink, least), 0
            if self.early_stop:
                active = a[~wrong]
        # A fooled sample returns its fooling point (the highest-loss one when that also fools).
        use_best = ~fooled if self.early_stop else ~fooled | wrong_best
        out = torch.where(use_best.view(shape), x_best, x_fool)
        return out, fooled


__all__ = ["APGD", "checkpoint_gaps"]
