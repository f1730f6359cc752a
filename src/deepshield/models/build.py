"""``build_model``: a registered model or any timm model by name; importing this module imports every
model file, so each has registered its factories (``deepshield.models`` loads it on first use)."""

from __future__ import annotations

import torch
from torch import nn

from deepshield.errors import ConfigError, unknown_name
from deepshield.models.activations import ACTIVATIONS, swap_activation

# Importing the model files registers their models.
from deepshield.models.backbones import Backbone, build_backbone, is_timm_model
from deepshield.models.parts import STAGE_SPLITTERS, model_parts
from deepshield.models.pretrained import PretrainedError, imagenet_weights, load_pretrained
from deepshield.models.registry import MODELS, register_model
from deepshield.models.small_cnn import SmallCNN


def build_model(name: str, num_classes: int = 2, act: str | None = None, **kwargs: object) -> nn.Module:
    """Build a registered model or any timm model by name; unknown names raise ConfigError listing choices.

    Common keywords: ``image_size`` (pixels), ``pretrained`` (None, a state-dict path, "imagenet" for
    the offline ImageNet weights of tf_efficientnet_lite0 and mobilenetv2, or "timm"). ``act``: swap
    the ReLU/ReLU6 activations for a smooth one after loading the weights (:mod:`.activations`).
    """
    if act is not None:
        ACTIVATIONS.lookup(act)  # an unknown name fails before any weights load
    if kwargs.get("pretrained") == "imagenet":
        kwargs["pretrained"] = imagenet_weights(name)
    if name in MODELS:
        model = MODELS[name](num_classes=num_classes, **kwargs)
    elif is_timm_model(name):
        model = build_backbone(name, num_classes=num_classes, **kwargs)
    else:
        unknown = unknown_name("model", name, MODELS)
        raise ConfigError(f"{unknown} or any timm model name (timm.list_models())")
    if act is not None:
        swap_activation(model, act)
    # channels_last runs conv nets several times faster on CPU (oneDNN) and with AMP on CUDA.
    return model.to(memory_format=torch.channels_last)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = ["ACTIVATIONS", "MODELS", "STAGE_SPLITTERS", "Backbone", "PretrainedError", "SmallCNN",
           "build_model", "count_parameters", "imagenet_weights", "load_pretrained", "model_parts",
           "register_model", "swap_activation"]
