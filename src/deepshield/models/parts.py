"""A model's classifier and its stages (for backbone-vs-head learning rates and progressive unfreezing).

    >>> parts = model_parts(model)        # parameter names of the head and of each stage, bottom to top

How a network splits into stages is a registry keyed by network class: a family is supported by one
function, registered next to it (a class may be named by its dotted path so that registering imports
nothing)::

    @register_stages("torchvision.models.mobilenetv2.MobileNetV2")
    def _mobilenetv2_stages(net: nn.Module) -> list[list[str]]:
        ...

The most specific class of the network's MRO wins; ``nn.Module``'s splitter is the default (timm's
``group_matcher`` when the network has one, else its top-level children).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from deepshield.models.normalize import Backbone

StageSplitter = Callable[[nn.Module], list[list[str]]]

# network class (or its "module.QualName" path) -> parameter names of each stage, bottom to top
STAGE_SPLITTERS: dict[type | str, StageSplitter] = {}


@dataclass
class ModelParts:
    """Parameter names of a model's classifier and of its stages, bottom (input side) to top."""

    head: list[str]
    stages: list[list[str]]


def register_stages(*classes: type | str) -> Callable[[StageSplitter], StageSplitter]:
    """Decorator: split networks of ``classes`` (and their subclasses) into stages with this function."""

    def register(split: StageSplitter) -> StageSplitter:
        for cls in classes:
            STAGE_SPLITTERS[cls] = split
        return split

    return register


def stage_splitter(net: nn.Module) -> StageSplitter:
    """The registered splitter of the most specific class of ``net``."""
    for cls in type(net).__mro__:
        for key in (cls, f"{cls.__module__}.{cls.__qualname__}"):
            if key in STAGE_SPLITTERS:
                return STAGE_SPLITTERS[key]
    raise LookupError(f"no stage splitter for {type(net).__name__}")  # nn.Module's is always registered


def unwrap(model: nn.Module) -> tuple[nn.Module, str]:
    """The network holding the weights and its state-dict prefix in ``model`` (a Backbone's ``net.``)."""
    return (model.net, "net.") if isinstance(model, Backbone) else (model, "")


def head_module(net: nn.Module) -> nn.Module | None:
    """The classifier of ``net``: timm's ``get_classifier()``, a head/classifier/fc child, else the last
    Linear."""
    if hasattr(net, "get_classifier"):
        return net.get_classifier()
    for attr in ("head", "classifier", "fc"):
        if isinstance(getattr(net, attr, None), nn.Module):
            return getattr(net, attr)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def head_names(model: nn.Module) -> list[str]:
    """State-dict keys (parameters and buffers) of the classifier, as named in ``model``."""
    net, prefix = unwrap(model)
    head = head_module(net)
    if head is None:
        return []
    owner = next(n for n, m in net.named_modules() if m is head)
    keys = [f"{owner}.{k}" if owner else k for k in head.state_dict()]
    return [prefix + k for k in keys]


def _timm_stages(net: nn.Module) -> list[list[str]]:
    from timm.models import group_parameters

    groups = group_parameters(net, net.group_matcher(coarse=True))
    return [list(names) for _, names in sorted(groups.items())]


def _children_stages(net: nn.Module) -> list[list[str]]:
    return [[f"{c}.{n}" for n, _ in m.named_parameters()] for c, m in net.named_children()]


@register_stages(nn.Module)
def _default_stages(net: nn.Module) -> list[list[str]]:
    """timm's ``group_matcher(coarse=True)`` (stem, blocks..., final conv), else the top-level children."""
    return _timm_stages(net) if hasattr(net, "group_matcher") else _children_stages(net)


def model_parts(model: nn.Module) -> ModelParts:
    """The classifier's parameter names and the other parameters grouped into stages, bottom to top.

    Stages come from the splitter registered for the network's class (see the module docstring).
    Every parameter is in exactly one place.
    """
    net, prefix = unwrap(model)
    head = {k.removeprefix(prefix) for k in head_names(model)}
    all_names = [n for n, _ in net.named_parameters()]
    stages = [[n for n in s if n not in head] for s in stage_splitter(net)(net)]
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


__all__ = ["STAGE_SPLITTERS", "ModelParts", "StageSplitter", "head_module", "head_names", "model_parts",
           "register_stages", "stage_splitter", "unwrap"]
