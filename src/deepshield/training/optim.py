"""Optimizer and fine-tuning schedule for a training config."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from deepshield.config import TrainConfig


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over all parameters with the config's learning rate and weight decay."""
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_unfreeze_schedule(model: nn.Module, cfg: TrainConfig) -> Callable[[int], None]:
    """A callable run at the start of each epoch (0-based) that sets which parameters train."""
    return lambda epoch: None
