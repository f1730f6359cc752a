"""Models by name: ``build_model(name, num_classes=2, **kw)``; every model takes x in [0, 1].

Each model file registers its factories with :func:`register_model` (``models/registry.py``):
``small_cnn`` (small_cnn.py), the timm backbones ``resnet50``, ``mobilenetv3_large_100``,
``efficientnet_b0``, ``efficientnet_b4``, ``xception`` (timm's ``legacy_xception``),
``tf_efficientnet_lite0``, and torchvision's ``mobilenetv2`` (backbones.py). Any other timm model name
(``timm.list_models()``) is passed straight through to timm. Pretrained files: pretrained.py; head
and stages (a registry of stage splitters): parts.py.

Importing the package is cheap (no torch): its names load ``build.py``, and with it every model file and
torch, on first use. ``deepshield.models.zoo`` (bundled checkpoints by name) and ``predict`` with ONNX
Runtime stay torch-free.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deepshield.models.build import (
        ACTIVATIONS,
        MODELS,
        STAGE_SPLITTERS,
        Backbone,
        PretrainedError,
        SmallCNN,
        build_model,
        count_parameters,
        imagenet_weights,
        load_pretrained,
        model_parts,
        register_model,
        swap_activation,
    )


def __getattr__(name: str) -> Any:
    """``deepshield.models.build_model`` etc.: loaded (with every model file) on first use."""
    if name not in __all__:
        raise AttributeError(f"module 'deepshield.models' has no attribute {name!r}")
    value = getattr(importlib.import_module("deepshield.models.build"), name)
    globals()[name] = value
    return value


__all__ = ["ACTIVATIONS", "MODELS", "STAGE_SPLITTERS", "Backbone", "PretrainedError", "SmallCNN",
           "build_model", "count_parameters", "imagenet_weights", "load_pretrained", "model_parts",
           "register_model", "swap_activation"]
