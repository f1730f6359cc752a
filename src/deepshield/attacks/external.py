"""Library-backed attacks (ART, adversarial-robustness-toolbox 1.20) behind our attack interface.

- ``Square``: the Square attack (Andriushchenko et al., ECCV 2020, arXiv:1912.00049): random search
  over square-shaped updates that only queries the model's logits. It never sees a gradient, so it
  is the reference for gradient masking: if it beats the gradient attacks, the gradients are lying.
- ``ARTAPGD``: ART's Auto-PGD (APGD-CE, Croce & Hein, ICML 2020, arXiv:2003.01690), not registered:
  ``apgd`` is our own (``deepshield.attacks.apgd``: early stop, warm start, one forward-backward per
  step); this one is the reference the tests and benchmarks compare it with.

Distance: L∞ or L2, pixel units, x in [0, 1] of shape [N, C, H, W], labels [N]. ART runs on numpy
copies; these wrappers keep the invariants of :class:`~deepshield.attacks.base.Attack` (model modes
restored, parameters' ``requires_grad`` and ``.grad`` untouched, result detached inside the ε-ball and
[0, 1]) even though ART switches the model to eval and calls ``backward``/``zero_grad`` on it. ART
draws from numpy's global RNG: with ``seed`` set, that state is seeded for the call and restored after.

    >>> x_adv = Square(eps=4/255, queries=1000, seed=0)(model, x, y)
    >>> x_adv = ARTAPGD(eps=4/255, steps=50)(model, x, y)
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from deepshield.attacks.base import BLACK_BOX, ITERATIVE, Attack
from deepshield.attacks.registry import register_attack
from deepshield.errors import ConfigError

if TYPE_CHECKING:
    from deepshield.config import SweepSpec

_ART_NORMS = {"linf": np.inf, "l2": 2}


@contextlib.contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """Parameters stop requiring grad (ART's backward then never reaches them); their ``.grad`` and
    ``requires_grad`` are restored afterwards, whatever ART's ``zero_grad`` did."""
    saved = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    try:
        for p, _, _ in saved:
            p.requires_grad_(False)
        yield
    finally:
        for p, requires_grad, grad in saved:
            p.grad = grad
            p.requires_grad_(requires_grad)


@contextlib.contextmanager
def seeded_global_rng(seed: int | None) -> Iterator[None]:
    """Seed numpy's and Python's global RNGs for the block and put their states back after (None: no-op)."""
    if seed is None:
        yield
        return
    np_state, py_state = np.random.get_state(), random.getstate()
    np.random.seed(seed)
    random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


class ARTAttack(Attack):
    """Base of ART-backed attacks: wraps the model in ``PyTorchClassifier`` (clip values (0, 1)) for one
    call; subclasses build the ART attack in ``_art_attack(classifier, batch_size)``. ``chunk``: samples
    per ART call (None: the whole batch)."""

    chunk: int | None = None

    def _perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from art.estimators.classification.pytorch import PyTorchClassifier  # slow import: only when used

        with torch.no_grad():
            n_classes = int(model(x[:1]).shape[1])
        device_ctx = torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()
        with device_ctx, frozen_parameters(model), seeded_global_rng(self.seed):
            classifier = PyTorchClassifier(
                model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]), nb_classes=n_classes,
                clip_values=(0.0, 1.0), device_type="gpu" if x.is_cuda else "cpu",
            )
            x_np, y_np = x.detach().float().cpu().numpy(), y.detach().cpu().numpy()
            size = self.chunk or len(x)
            parts = []
            # ART's L2 Square divides by zero on all-zero windows (the NaN candidates are rejected).
            with np.errstate(divide="ignore", invalid="ignore"):
                for i in range(0, len(x_np), size):
                    attack = self._art_attack(classifier, min(size, len(x_np) - i))
                    parts.append(attack.generate(x_np[i:i + size], y=y_np[i:i + size]))
            x_adv = np.concatenate(parts)
        x_adv = torch.from_numpy(np.ascontiguousarray(x_adv)).to(device=x.device, dtype=x.dtype)
        return torch.where(torch.isfinite(x_adv), x_adv, x)

    def _art_attack(self, classifier, batch_size: int):
        raise NotImplementedError


class ARTAPGD(ARTAttack):
    """APGD-CE from ART (not registered; see the module docstring). ``steps`` iterations per restart,
    ``restarts`` random starts (each only on the samples still unfooled); initial step 2ε, as in
    AutoAttack. Every sample runs every step, and only the last iterate is kept. Defaults: 100 steps,
    1 restart."""

    kind = ITERATIVE

    def __init__(self, eps: float = 8 / 255, norm: str = "linf", steps: int = 100, restarts: int = 1,
                 eval_mode: bool = True, seed: int | None = None) -> None:
        super().__init__(eps, norm=norm, eval_mode=eval_mode, seed=seed)
        if steps < 1 or restarts < 1:
            raise ConfigError(f"steps and restarts must be >= 1, got steps={steps}, restarts={restarts}")
        self.steps, self.restarts = steps, restarts

    def _art_attack(self, classifier, batch_size: int):
        from art.attacks.evasion.auto_projected_gradient_descent import AutoProjectedGradientDescent

        return AutoProjectedGradientDescent(
            classifier, norm=_ART_NORMS[self.norm], eps=self.eps, eps_step=2 * self.eps, max_iter=self.steps,
            targeted=False, nb_random_init=self.restarts, batch_size=batch_size, loss_type="cross_entropy",
            verbose=False,
        )


@register_attack("square")
class Square(ARTAttack):
    """Square attack from ART (black-box, score-based). ``queries``: iterations, about one model query
    per iteration per still-unfooled sample (fooled samples stop); ``p_init``: initial fraction of
    pixels per square (0.8 as in AutoAttack). Defaults: 1000 queries, 1 restart.

    ART re-scores its whole batch at every iteration and stops only when every sample is fooled, and
    draws one square per iteration for the whole batch; so it is called on ``chunk`` samples at a time
    (one hard face no longer keeps a whole batch of fooled ones querying, and squares vary more)."""

    kind, rank, reference, help = BLACK_BOX, 0, True, "black-box"
    chunk = 8

    @classmethod
    def eval_kwargs(cls, eps: float, spec: SweepSpec) -> dict[str, Any]:
        return {"queries": spec.square_queries, "restarts": spec.restarts}

    def __init__(self, eps: float = 8 / 255, norm: str = "linf", queries: int = 1000, restarts: int = 1,
                 p_init: float = 0.8, eval_mode: bool = True, seed: int | None = None) -> None:
        super().__init__(eps, norm=norm, eval_mode=eval_mode, seed=seed)
        if queries < 1 or restarts < 1:
            raise ConfigError(f"queries and restarts must be >= 1, got queries={queries}, "
                              f"restarts={restarts}")
        if not 0 < p_init <= 1:
            raise ConfigError(f"p_init must be in (0, 1], got {p_init}")
        self.queries, self.restarts, self.p_init = queries, restarts, p_init

    def _art_attack(self, classifier, batch_size: int):
        from art.attacks.evasion.square_attack import SquareAttack

        return SquareAttack(
            classifier, norm=_ART_NORMS[self.norm], max_iter=self.queries, eps=self.eps, p_init=self.p_init,
            nb_restarts=self.restarts, batch_size=batch_size, verbose=False,
        )


__all__ = ["ARTAPGD", "ARTAttack", "Square", "frozen_parameters", "seeded_global_rng"]
