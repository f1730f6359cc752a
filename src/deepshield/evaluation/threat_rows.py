"""Threat-model rows of an evaluation beyond the white-box sweep: transfer, re-encoding, corruptions.

- **Re-encoding** (``channels``): the sweep also scores each clean and adversarial batch after a real
  JPEG or H.264 round trip (``jpeg:75``, ``h264:23``; see ``threats.reencode``). An attack that dies in
  re-encoding is not a threat to a platform that re-encodes; ``success`` is the share of attacked faces
  still misclassified after it.
- **Transfer** (:func:`transfer_rows`): adversarial examples crafted on a surrogate checkpoint and scored
  on the evaluated one, the black-box threat of an attacker without the model.
- **Natural corruptions** (:func:`corruption_rows`): accuracy/AUC when a clip is simply re-uploaded
  (JPEG 30–90, blur, noise, downscale; ``threats.corruptions``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from deepshield.attacks import ATTACKS, BLACK_BOX
from deepshield.config import SweepSpec
from deepshield.contracts.rows import CorruptionRow, Metrics, SweepRow
from deepshield.errors import ConfigError
from deepshield.evaluation.formatting import row_key
from deepshield.evaluation.metrics import detection_metrics, sample_methods
from deepshield.evaluation.robust import (
    attack_correct,
    eval_mode,
    fake_probs,
    make_attack,
    measured_row,
    robust_mask,
)
from deepshield.training.loops import split_batch

Channel = Callable[[torch.Tensor], torch.Tensor]


def build_channels(specs: tuple[str, ...] | list[str]) -> dict[str, Channel]:
    """``("jpeg:75", "h264:23")`` -> {name: real round trip}; ConfigError naming a bad spec."""
    from deepshield.threats.reencode import h264_roundtrip, jpeg_roundtrip

    kinds: dict[str, tuple[Callable[[torch.Tensor, int], torch.Tensor], range]] = {
        "jpeg": (jpeg_roundtrip, range(1, 101)), "h264": (h264_roundtrip, range(0, 52))}
    out: dict[str, Channel] = {}
    for spec in specs:
        kind, _, value = spec.partition(":")
        if kind not in kinds or not value.isdigit() or int(value) not in kinds[kind][1]:
            raise ConfigError(f"--reencode {spec!r}: write jpeg:QUALITY (1-100) or h264:CRF (0-51), "
                              "e.g. jpeg:75,h264:23")
        fn, level = kinds[kind][0], int(value)
        out[spec] = lambda x, fn=fn, level=level: fn(x, level)
    return out


class Resized(nn.Module):
    """A model that first resizes its input to ``size`` (a surrogate trained at another resolution)."""

    def __init__(self, model: nn.Module, size: int) -> None:
        super().__init__()
        self.model, self.size = model, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True,
                              align_corners=False)
        return self.model(x)


def transfer_rows(model: nn.Module, surrogate: nn.Module, data: Dataset, spec: SweepSpec,
                  device: torch.device, surrogate_name: str, batch_size: int = 128) -> list[SweepRow]:
    """Per gradient attack of ``spec`` and ε: crafted on ``surrogate``, scored on ``model``. Only faces
    the evaluated model gets right are attacked; ``success`` is the share of those it then gets wrong."""
    names = [a for a in spec.attacks if ATTACKS[a].kind != BLACK_BOX]
    keys = [(a, e) for a in names for e in sorted(set(spec.eps))]
    attacks = {k: make_attack(k[0], k[1], spec) for k in keys}
    scores: dict = {k: [] for k in keys}
    labels, vids, correct = [], [], []
    with eval_mode(model), eval_mode(surrogate):
        for batch in DataLoader(data, batch_size=batch_size, shuffle=False):
            x, y, v = split_batch(batch)
            x, y = x.to(device), y.to(device)
            p_clean = fake_probs(model, x)
            correct.append(((p_clean >= 0.5).long() == y).cpu().numpy())
            for k in keys:
                _, p = attack_correct(model, x, y, attacks[k], p_clean, attack_model=surrogate)
                scores[k].append(p.cpu().numpy())
            labels.append(y.cpu().numpy())
            vids = None if v is None or vids is None else [*vids, *map(str, v)]
    lab = np.concatenate(labels).astype(int) if labels else np.zeros(0, dtype=int)
    ok = np.concatenate(correct) if correct else np.zeros(0, dtype=bool)
    methods = sample_methods(lab, vids, getattr(data, "video_methods", None))
    rows = []
    for (attack, eps), parts in scores.items():
        probs = np.concatenate(parts)
        success = float((~robust_mask(lab, probs))[ok].mean()) if ok.any() else float("nan")
        rows.append(measured_row(attack, eps, spec.norm, f"transfer:{row_key(attack, eps, spec.norm)}", lab,
                                 probs, vids, methods, transfer_from=surrogate_name, success=success))
    return rows


def corruption_rows(model: nn.Module, data: Dataset, device: torch.device, names: list[str] | None = None,
                    batch_size: int = 128, seed: int = 0) -> list[CorruptionRow]:
    """Clean metrics of ``model`` on ``data`` under each natural corruption (all registered by default)."""
    from deepshield.threats.corruptions import CORRUPTIONS, build_corruption

    names = list(CORRUPTIONS) if names is None else names
    fns = {n: build_corruption(n) for n in names}
    gen = torch.Generator().manual_seed(seed)
    probs: dict[str, list[np.ndarray]] = {n: [] for n in names}
    labels, vids = [], []
    with eval_mode(model):
        for batch in DataLoader(data, batch_size=batch_size, shuffle=False):
            x, y, v = split_batch(batch)
            x = x.to(device)
            for n, fn in fns.items():
                probs[n].append(fake_probs(model, fn(x, gen)).cpu().numpy())
            labels.append(y.numpy())
            vids = None if v is None or vids is None else [*vids, *map(str, v)]
    lab = np.concatenate(labels).astype(int) if labels else np.zeros(0, dtype=int)
    methods = sample_methods(lab, vids, getattr(data, "video_methods", None))
    return [CorruptionRow(n, Metrics.from_json(detection_metrics(lab, np.concatenate(p), vids, methods)))
            for n, p in probs.items()]


__all__ = ["Resized", "build_channels", "corruption_rows", "transfer_rows"]
