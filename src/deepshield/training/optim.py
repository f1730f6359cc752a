"""Optimizer and fine-tuning schedule for a training config.

Fine-tuning a pretrained backbone (``cfg.pretrained`` set) uses two parameter groups: the classifier
at ``cfg.lr`` and the backbone at ``cfg.lr * cfg.backbone_lr_scale``, so ImageNet features are
adjusted gently while the fresh head learns fast. Trained from scratch, both groups use ``cfg.lr``
(there is nothing to preserve). With ``cfg.freeze_epochs > 0`` only the head trains for that many
epochs; then stages unfreeze from the top, one more every ``cfg.unfreeze_every`` epochs
(0: all at once). Head and stages come from :func:`deepshield.models.model_parts`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from deepshield.config import TrainConfig
from deepshield.models import model_parts


def backbone_lr(cfg: TrainConfig) -> float:
    """The backbone's learning rate: scaled down when fine-tuning pretrained weights."""
    return cfg.lr * cfg.backbone_lr_scale if cfg.pretrained else cfg.lr


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """``[{"name": "head", ...}, {"name": "backbone", ...}]`` with their learning rates; empty groups dropped.

    All parameters are included, frozen or not, so the optimizer trains them once they unfreeze.
    """
    params = dict(model.named_parameters())
    head = set(model_parts(model).head)
    groups = [{"name": "head", "lr": cfg.lr, "params": [p for n, p in params.items() if n in head]},
              {"name": "backbone", "lr": backbone_lr(cfg),
               "params": [p for n, p in params.items() if n not in head]}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW: a head group at ``cfg.lr``, a backbone group at :func:`backbone_lr`; one weight decay."""
    return torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)


def stages_unfrozen(epoch: int, n_stages: int, freeze_epochs: int, unfreeze_every: int) -> int:
    """How many stages (counted from the top) train at ``epoch`` (0-based); the head always trains."""
    if freeze_epochs <= 0:
        return n_stages
    if epoch < freeze_epochs:
        return 0
    if unfreeze_every <= 0:
        return n_stages
    return min(n_stages, 1 + (epoch - freeze_epochs) // unfreeze_every)


def build_unfreeze_schedule(model: nn.Module, cfg: TrainConfig) -> Callable[[int], bool]:
    """A callable run at the start of each epoch (0-based) that sets ``requires_grad`` per parameter.

    Pure in the epoch, so a resumed run gets the same state. Returns whether any parameter changed,
    e.g. to rebuild a DistributedDataParallel wrapper (it only syncs what required grad when built).
    """
    parts = model_parts(model)
    params = dict(model.named_parameters())

    def apply(epoch: int) -> bool:
        k = stages_unfrozen(epoch, len(parts.stages), cfg.freeze_epochs, cfg.unfreeze_every)
        before = [p.requires_grad for p in params.values()]
        for name in parts.head:
            params[name].requires_grad_(True)
        for i, stage in enumerate(parts.stages):
            trainable = i >= len(parts.stages) - k
            for name in stage:
                params[name].requires_grad_(trainable)
        return before != [p.requires_grad for p in params.values()]

    return apply
