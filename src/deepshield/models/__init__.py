"""Model registry: ``build_model(name, num_classes=2, **kw)``; every model takes x in [0, 1]."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from deepshield.models.normalize import Normalize
from deepshield.models.small_cnn import SmallCNN

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a model factory to the registry under ``name``."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS[name] = factory
        return factory

    return wrap


@register_model("small_cnn")
def _small_cnn(num_classes: int = 2, width: int = 16, **_: object) -> nn.Module:
    return SmallCNN(num_classes=num_classes, width=width)


def build_model(name: str, num_classes: int = 2, **kwargs: object) -> nn.Module:
    """Build a registered model by name; unknown names raise ValueError listing the choices."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    model = MODELS[name](num_classes=num_classes, **kwargs)
    # channels_last runs conv nets several times faster on CPU (oneDNN) and with AMP on CUDA.
    return model.to(memory_format=torch.channels_last)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = ["MODELS", "Normalize", "SmallCNN", "build_model", "count_parameters", "register_model"]
