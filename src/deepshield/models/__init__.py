"""Model registry: ``build_model(name, num_classes=2, **kw)``; every model takes x in [0, 1].

Registered: ``small_cnn``, the timm backbones ``resnet50``, ``mobilenetv3_large_100``,
``efficientnet_b0``, ``efficientnet_b4``, ``xception`` (timm's ``legacy_xception``),
``tf_efficientnet_lite0``, and torchvision's ``mobilenetv2``. Any other timm model name
(``timm.list_models()``) is passed straight through to timm.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from deepshield.models.backbones import (
    TIMM_BACKBONES,
    Backbone,
    LoadReport,
    ModelParts,
    PretrainedError,
    build_backbone,
    build_mobilenetv2,
    imagenet_weights,
    is_timm_model,
    load_pretrained,
    model_parts,
)
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
def _small_cnn(num_classes: int = 2, width: int = 16, pretrained: str | None = None,
               **_: object) -> nn.Module:
    model = SmallCNN(num_classes=num_classes, width=width)
    if pretrained == "timm":
        raise PretrainedError("small_cnn has no timm weights; "
                              "pass a state-dict file saved from a small_cnn run")
    if pretrained is not None:
        load_pretrained(model, pretrained)
    return model


for _name in TIMM_BACKBONES:
    register_model(_name)(partial(build_backbone, _name))
register_model("mobilenetv2")(build_mobilenetv2)


def build_model(name: str, num_classes: int = 2, **kwargs: object) -> nn.Module:
    """Build a registered model or any timm model by name; unknown names raise ValueError listing the choices.

    Common keywords: ``image_size`` (pixels), ``pretrained`` (None, a state-dict path, "imagenet" for
    the offline ImageNet weights of tf_efficientnet_lite0 and mobilenetv2, or "timm").
    """
    if kwargs.get("pretrained") == "imagenet":
        kwargs["pretrained"] = imagenet_weights(name)
    if name in MODELS:
        model = MODELS[name](num_classes=num_classes, **kwargs)
    elif is_timm_model(name):
        model = build_backbone(name, num_classes=num_classes, **kwargs)
    else:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)} or any timm model name "
                         "(timm.list_models())")
    # channels_last runs conv nets several times faster on CPU (oneDNN) and with AMP on CUDA.
    return model.to(memory_format=torch.channels_last)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = ["MODELS", "Backbone", "LoadReport", "ModelParts", "Normalize", "PretrainedError", "SmallCNN",
           "build_model", "count_parameters",
           "imagenet_weights", "load_pretrained", "model_parts", "register_model"]
