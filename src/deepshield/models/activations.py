"""Swap a network's piecewise-linear activations for smooth ones (Xie et al. 2020, "Smooth adversarial
training"): ReLU's gradient jumps, which makes the inner maximization of adversarial training harder
and its gradients poorer; a smooth activation of a pretrained model, fine-tuned, keeps the weights.

    >>> swap_activation(model, "silu")   # every nn.ReLU / nn.ReLU6 becomes nn.SiLU; returns the count

A model with no ReLU/ReLU6 module is a ConfigError (the swap would silently do nothing).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from deepshield.errors import ConfigError
from deepshield.registry import Registry

ACTIVATIONS: Registry[Callable[[], nn.Module]] = Registry("activation")
ACTIVATIONS.add("silu", lambda: nn.SiLU(inplace=True))
ACTIVATIONS.add("softplus", lambda: nn.Softplus())
ACTIVATIONS.add("gelu", lambda: nn.GELU())
SWAPPED = (nn.ReLU, nn.ReLU6)  # the non-smooth activations a swap replaces


def swap_activation(model: nn.Module, name: str) -> int:
    """Replace every ReLU/ReLU6 module of ``model`` (in place) by activation ``name``; the count."""
    make = ACTIVATIONS.lookup(name)
    targets = [(parent, child_name) for parent in model.modules()
               for child_name, child in parent.named_children() if type(child) in SWAPPED]
    if not targets:
        raise ConfigError(f"--act {name}: {type(model).__name__} has no ReLU/ReLU6 module to swap "
                          "(it already uses another activation, or applies it functionally)")
    for parent, child_name in targets:
        setattr(parent, child_name, make())
    return len(targets)


__all__ = ["ACTIVATIONS", "swap_activation"]
