"""Mixed precision for a run: which autocast context and whether a GradScaler is used."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from deepshield.config import TrainConfig


@dataclass
class Precision:
    autocast: Callable[[], contextlib.AbstractContextManager]
    scaler: torch.amp.GradScaler | None
    name: str


def build_precision(cfg: TrainConfig, device: torch.device) -> Precision:
    """fp16 autocast + GradScaler on CUDA (unless ``--no-amp``); fp32 on CPU."""
    if device.type == "cuda" and cfg.amp is not False:
        return Precision(lambda: torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda"), "fp16")
    return Precision(contextlib.nullcontext, None, "fp32")
