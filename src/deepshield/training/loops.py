"""The inner loops: one training epoch, and prediction (clean or under attack) over a loader."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deepshield.attacks import Attack
from deepshield.progress import progress as progress_bar
from deepshield.runtime import probs_of
from deepshield.training.objectives import Objective


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def split_batch(batch: tuple | list) -> tuple[torch.Tensor, torch.Tensor, list | None]:
    """(x, y) or (x, y, video_id) -> x, y, video ids (None when the dataset has none)."""
    return batch[0], batch[1], (list(batch[2]) if len(batch) > 2 else None)


@dataclass
class EpochStats:
    loss: float
    acc: float
    images: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.images / max(self.seconds, 1e-9)


def train_epoch(
    model: nn.Module,
    loader: Iterable,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    scaler: torch.amp.GradScaler | None = None,
    on_step: Callable[[float], None] | None = None,
    progress: bool = True,
    desc: str = "train",
) -> EpochStats:
    """One pass over ``loader`` minimizing ``objective``; returns mean loss, accuracy and throughput."""
    model.train()
    total_loss, correct, seen, start = 0.0, 0, 0, time.perf_counter()
    # Off a terminal the epoch's metrics line is the summary; the bar adds only once-a-minute lines.
    bar = progress_bar(loader, desc=desc, leave=False, enabled=progress, unit="batch", summary=False)
    for batch in bar:
        x, y, _ = split_batch(batch)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast():
            out = objective(model, x, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(out.loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            out.loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        loss = out.loss.item()
        total_loss += loss * len(y)
        correct += (out.logits.argmax(1) == y).sum().item()
        seen += len(y)
        if on_step is not None:
            on_step(loss)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}")
    return EpochStats(total_loss / max(seen, 1), correct / max(seen, 1), seen, time.perf_counter() - start)


@dataclass
class Predictions:
    """Fake probabilities, labels and (optional) video ids of one pass over a loader."""

    probs: np.ndarray
    labels: np.ndarray
    video_ids: list | None

    @property
    def acc(self) -> float:
        if not len(self.labels):
            return float("nan")
        return float(((self.probs >= 0.5).astype(int) == self.labels).mean())


def predict(
    model: nn.Module,
    loader: Iterable,
    device: torch.device,
    attack: Attack | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    progress: bool = False,
    desc: str = "eval",
) -> Predictions:
    """P(fake) for every sample, on clean inputs or on ``attack(model, x, y)``; model left in eval mode."""
    model.eval()
    probs, labels, vids = [], [], []
    has_vids = True
    for batch in progress_bar(loader, desc=desc, leave=False, enabled=progress, unit="batch"):
        x, y, v = split_batch(batch)
        x, y = x.to(device), y.to(device)
        if attack is not None:
            x = attack(model, x, y)
        with torch.no_grad(), autocast():
            p = probs_of(model(x))
        probs.append(p.cpu().numpy())
        labels.append(y.cpu().numpy())
        if v is None:
            has_vids = False
        else:
            vids.extend(v)
    def cat(a: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(a) if a else np.zeros(0)

    return Predictions(cat(probs), cat(labels).astype(int), vids if has_vids else None)
