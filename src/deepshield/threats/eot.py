"""Expectation over transformation (EOT, Athalye et al., ICML 2018) and the check that calls for it.

A randomized model (random noise, random resize-and-pad) gives a different gradient on every call;
one-sample gradients make an attack look weak and the defense look robust. ``EOTModel(model, n)``
returns the mean of n stochastic passes' log-softmax, so an attack on it follows the expected
gradient. ``is_randomized`` finds out whether a model needs it; ``EOTAttack`` does both per batch:

    >>> attack = EOTAttack(PGD(eps=4/255, steps=20), n=8)     # EOT only when the model is random
    >>> x_adv, p = attack_correct(defended, x, y, attack)     # scored on one pass of the real model
    >>> attack.randomized                                     # did the check fire on the last batch?
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from deepshield.errors import ConfigError
from deepshield.runtime import eval_mode


class EOTModel(nn.Module):
    """Mean over ``n`` stochastic forward passes of ``model``'s log-softmax ([N, C]; valid logits)."""

    def __init__(self, model: nn.Module, n: int = 8) -> None:
        super().__init__()
        if n < 1:
            raise ConfigError(f"EOT needs n >= 1 samples, got {n}; use e.g. 8")
        self.model = model
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = torch.log_softmax(self.model(x).float(), 1)
        for _ in range(self.n - 1):
            total = total + torch.log_softmax(self.model(x).float(), 1)
        return total / self.n


def _generators(model: nn.Module) -> list[torch.Generator]:
    gens = [getattr(m, "generator", None) for m in model.modules()]
    return [g for g in gens if isinstance(g, torch.Generator)]


def is_randomized(model: nn.Module, x: torch.Tensor, tries: int = 2, atol: float = 1e-6) -> bool:
    """Whether ``tries`` (>= 2) eval-mode passes on the same ``x`` give outputs differing beyond ``atol``.

    The model's modes, the global (CPU and CUDA) RNG state and the state of any ``generator`` its
    modules hold are restored, so checking does not change later results."""
    if tries < 2:
        raise ConfigError(f"is_randomized needs tries >= 2 passes to compare, got {tries}")
    gens = _generators(model)
    gen_states = [g.get_state() for g in gens]
    cpu_state = torch.get_rng_state()
    cuda = x.is_cuda and torch.cuda.is_available()
    cuda_state = torch.cuda.get_rng_state(x.device) if cuda else None
    try:
        with eval_mode(model), torch.no_grad():
            first = model(x).float()
            return any(not torch.allclose(model(x).float(), first, rtol=0, atol=atol)
                       for _ in range(tries - 1))
    finally:
        for g, state in zip(gens, gen_states, strict=True):
            g.set_state(state)
        torch.set_rng_state(cpu_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state(cuda_state, x.device)


class EOTAttack:
    """Wraps an attack: on each call, checks the model with :func:`is_randomized` on the batch and, if
    it is random, attacks ``EOTModel(model, n)`` instead (``always=True`` skips the check).
    ``randomized`` records the last check. Other attributes (``eps``, ``name``...) are the attack's."""

    def __init__(self, attack: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor], n: int = 8,
                 always: bool = False) -> None:
        if n < 1:
            raise ConfigError(f"EOT needs n >= 1 samples, got {n}; use e.g. 8")
        self.attack = attack
        self.n = n
        self.always = always
        self.randomized: bool | None = None

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, **kw: Any) -> torch.Tensor:
        self.randomized = self.always or is_randomized(model, x)
        return self.attack(EOTModel(model, self.n) if self.randomized else model, x, y, **kw)

    def __getattr__(self, name: str) -> Any:
        if name == "attack":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.attack, name)


__all__ = ["EOTAttack", "EOTModel", "is_randomized"]
