"""The model registry: each model file registers its factories with ``@register_model``.

    @register_model("tiny_vit")
    def build_tiny_vit(num_classes: int = 2, pretrained: str | None = None, **kw) -> nn.Module:
        ...

A factory takes ``num_classes`` and keywords (``image_size``, ``pretrained``...) and returns a model
that maps pixels in [0, 1] to logits. :func:`deepshield.models.build_model` looks names up here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

from deepshield.registry import Registry

ModelFactory = Callable[..., nn.Module]
F = TypeVar("F", bound=ModelFactory)

MODELS: Registry[ModelFactory] = Registry("model")


def register_model(name: str) -> Callable[[F], F]:
    """Decorator adding a model factory to :data:`MODELS` under ``name``."""
    return MODELS.register(name)  # type: ignore[return-value]


__all__ = ["MODELS", "ModelFactory", "register_model"]
