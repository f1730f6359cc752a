"""SmallCNN: a compact 4-conv detector for synthetic data, tests and CPU smoke runs."""

from __future__ import annotations

import torch
from torch import nn

from deepshield.models.normalize import Normalize


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
