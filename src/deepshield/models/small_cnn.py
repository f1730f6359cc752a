"""SmallCNN (model ``small_cnn``): a compact 4-conv detector for synthetic data, tests and CPU smoke runs."""

from __future__ import annotations

import torch
from torch import nn

from deepshield.models.normalize import Normalize
from deepshield.models.parts import register_stages
from deepshield.models.pretrained import PretrainedError, load_pretrained
from deepshield.models.registry import register_model


class SmallCNN(nn.Module):
    """Four 3x3 conv blocks (BatchNorm + ReLU, stride-2 pooling) and a linear head.

    Input: x in [0, 1], shape [N, 3, H, W] (any H, W >= 16). Output: logits [N, num_classes].
    About 25 k parameters at the default width 16.
    """

    def __init__(self, num_classes: int = 2, width: int = 16) -> None:
        super().__init__()
        self.normalize = Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        chans = [3, width, width, 2 * width, 2 * width]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(chans[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(self.normalize(x))).flatten(1))


@register_model("small_cnn")
def build_small_cnn(num_classes: int = 2, width: int = 16, pretrained: str | None = None,
                    **_: object) -> SmallCNN:
    """A :class:`SmallCNN`; ``pretrained`` is None or a state-dict file saved from a small_cnn run."""
    model = SmallCNN(num_classes=num_classes, width=width)
    if pretrained == "timm":
        raise PretrainedError("small_cnn has no timm weights; "
                              "pass a state-dict file saved from a small_cnn run")
    if pretrained is not None:
        load_pretrained(model, pretrained)
    return model


@register_stages(SmallCNN)
def _small_cnn_stages(net: nn.Module) -> list[list[str]]:
    """One stage per conv block (conv, BatchNorm, ReLU, pool)."""
    stages: list[list[str]] = []
    for i, layer in enumerate(net.features):
        if isinstance(layer, nn.Conv2d):
            stages.append([])
        stages[-1] += [f"features.{i}.{n}" for n, _ in layer.named_parameters()]
    return stages
