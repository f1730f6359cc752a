"""``deepshield calibrate``: choose a checkpoint's operating threshold on datasets and write a copy of the
checkpoint that records it (``config["threshold"]``), which predict, serve and export then use.

    >>> result = calibrate_checkpoint(CalibrateConfig(checkpoint="default", rule="fpr5", out="cal.pt",
    ...                                               dataset=("catalog:faces/catalog.csv:val",)))
    >>> print(result.summary())      # the threshold line, FPR/TPR per dataset at it, the file written

Frames are scored in full precision and aggregated per video (``aggregate``, as predict does); a video's
dataset is the part of its id before the first "/" (catalog ids are ``<dataset>/<video>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from deepshield.config import CalibrateConfig
from deepshield.contracts.aggregate import AGGREGATIONS
from deepshield.contracts.threshold import THRESHOLD_RULES, Threshold, calibrate, rates_at
from deepshield.data.datasets import build_eval_dataset
from deepshield.models.loading import load_checkpoint, load_model_and_config, resolve_checkpoint
from deepshield.runtime import select_device
from deepshield.training.calibration import VideoScores, video_scores
from deepshield.training.checkpoint import atomic_save

SPLIT_WORDS = {"train": "training", "val": "validation", "test": "test"}


@dataclass(frozen=True)
class CalibrationResult:
    """The threshold chosen, the checkpoint written, and per dataset (name, reals, fakes, FPR, TPR) at it."""

    threshold: Threshold
    out: Path
    rows: list[tuple[str, int, int, float, float]]

    def summary(self) -> str:
        lines = [f"threshold {self.threshold.describe()}",
                 f"  {'dataset':<12} {'reals':>6} {'fakes':>6} {'FPR':>6} {'TPR':>6}"]
        for name, n_real, n_fake, fpr, tpr in self.rows:
            lines.append(f"  {name:<12} {n_real:>6} {n_fake:>6} {fpr:>6.3f} {tpr:>6.3f}")
        lines.append(f"wrote {self.out}: predict and serve judge with this threshold (--threshold overrides)")
        return "\n".join(lines)


def _what(specs: tuple[str, ...], videos: bool) -> str:
    """"validation videos" when every spec names the same split, else "videos" ("images": synthetic)."""
    splits = {spec.rpartition(":")[2] for spec in specs}
    noun = "videos" if videos else "images"
    if len(splits) == 1 and (split := splits.pop()) in SPLIT_WORDS:
        return f"{SPLIT_WORDS[split]} {noun}"
    return noun


def rates_by_dataset(v: VideoScores, threshold: float) -> list[tuple[str, int, int, float, float]]:
    """(dataset, reals, fakes, FPR, TPR) at ``threshold`` for each dataset, then ``all`` (of several)."""
    names = sorted(set(v.datasets.tolist()))
    rows = []
    for name in names + (["all"] if len(names) > 1 else []):
        keep = np.ones(len(v.scores), bool) if name == "all" else v.datasets == name
        fpr, tpr = rates_at(v.scores[keep], v.labels[keep], threshold)
        rows.append((name, int((v.labels[keep] == 0).sum()), int((v.labels[keep] == 1).sum()), fpr, tpr))
    return rows


def calibrate_checkpoint(cfg: CalibrateConfig) -> CalibrationResult:
    """Score ``cfg.dataset`` with the checkpoint, calibrate ``cfg.rule`` and write the copy (atomically)."""
    THRESHOLD_RULES.lookup(cfg.rule)
    AGGREGATIONS.lookup(cfg.aggregate)  # unknown names fail before any model loads
    device = select_device(cfg.device)
    ckpt = load_checkpoint(resolve_checkpoint(cfg.checkpoint))
    model, train_cfg, _ = load_model_and_config(cfg.checkpoint, device)
    parts = []
    for spec in cfg.dataset:
        ds = build_eval_dataset(spec, train_cfg.image_size, frames_per_video=cfg.frames)
        loader = DataLoader(ds, batch_size=cfg.batch_size)
        parts.append(video_scores(model, loader, device, fallback=spec.partition(":")[0], how=cfg.aggregate,
                                  progress=cfg.progress))
    joined = (np.concatenate([getattr(p, k) for p in parts]) for k in ("scores", "labels", "datasets"))
    v = VideoScores(*joined, videos=all(p.videos for p in parts))
    threshold = calibrate(v.scores, v.labels, v.datasets, cfg.rule, what=_what(cfg.dataset, v.videos))
    ckpt["config"] = {**(ckpt.get("config") or {}), "threshold": threshold.to_json()}
    out = atomic_save(ckpt, cfg.out)
    return CalibrationResult(threshold, out, rates_by_dataset(v, threshold.value))


__all__ = ["CalibrationResult", "calibrate_checkpoint", "rates_by_dataset"]
