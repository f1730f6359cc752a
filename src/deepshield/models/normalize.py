"""Pixel-space models: normalization as a layer, and :class:`Backbone` = ``net(normalize(x))``.

Models take pixels in [0, 1] and normalize inside, so attacks and datasets never see mean/std.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """(x - mean) / std per channel; buffers, so they follow .to(device) and live in the state dict."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Backbone(nn.Module):
    """``net(normalize(x))``: x in [0, 1], shape [N, 3, H, W] -> logits [N, num_classes]."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float], name: str) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net
        self.arch = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))
