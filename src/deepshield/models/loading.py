"""Checkpoints in, models out: the one place every command loads a trained detector from.

    >>> model, cfg = load_model("default", torch.device("cpu"))       # bundled, or a run's best.pt
    >>> model, cfg, raw = load_model_and_config("runs/x/best.pt", device)
    >>> raw["preprocess"]                                               # crop settings (CropSettings)

Files are read with ``torch.load(weights_only=True)``; anything that is not a deepshield checkpoint is a
:class:`CheckpointError` naming the file and what to pass instead. Nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepshield.config import TrainConfig
from deepshield.errors import DataError
from deepshield.models import build_model
from deepshield.models.zoo import BUNDLED, resolve_checkpoint

FORMAT = "deepshield-checkpoint-v1"


class CheckpointError(DataError):
    """A file that is missing or is not a deepshield checkpoint."""


class Probabilities(nn.Module):
    """``softmax(model(pixels))``: pixels in [0, 1], [N, 3, S, S] -> probabilities [N, 2] (real, fake);
    what ``deepshield export`` writes."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(pixels).float(), dim=1)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with ``weights_only=True``; anything that is not our checkpoint raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; pass the best.pt or last.pt of a training run")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for foreign or corrupt files
        raise CheckpointError(f"{path} is not a readable deepshield checkpoint ({type(e).__name__}); "
                              "pass a best.pt or last.pt written by 'deepshield train'") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a deepshield checkpoint; pass a best.pt or last.pt written by "
                              "'deepshield train'")
    return ckpt


def load_model_and_config(path: str | Path,
                          device: torch.device) -> tuple[torch.nn.Module, TrainConfig, dict]:
    """The model a checkpoint (a path, or a bundled name such as ``default``) was trained as, with its
    weights, in eval mode; its TrainConfig; and its raw config dict (with extras such as ``preprocess``)."""
    ckpt = load_checkpoint(resolve_checkpoint(path), map_location=device)
    raw = dict(ckpt.get("config") or {})
    cfg = TrainConfig.from_dict(raw)
    model = build_model(cfg.backbone, num_classes=2, image_size=cfg.image_size, pretrained=None,
                        act=cfg.act).to(device)
    model.load_state_dict(ckpt["model"])
    return model.eval(), cfg, raw


def load_model(path: str | Path, device: torch.device) -> tuple[torch.nn.Module, TrainConfig]:
    """:func:`load_model_and_config` without the raw config."""
    model, cfg, _ = load_model_and_config(path, device)
    return model, cfg


__all__ = ["BUNDLED", "FORMAT", "CheckpointError", "Probabilities", "load_checkpoint", "load_model",
           "load_model_and_config", "resolve_checkpoint"]
