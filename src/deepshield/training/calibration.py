"""The operating threshold a training run records: video scores of a checkpoint on the validation set,
calibrated with ``TrainConfig.threshold_rule`` (:mod:`deepshield.contracts.threshold`) and written into
the checkpoint's config (``config["threshold"]``), which predict, serve and export read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from deepshield.contracts.aggregate import aggregate_videos
from deepshield.contracts.threshold import Threshold, calibrate
from deepshield.models.loading import load_checkpoint
from deepshield.training.checkpoint import atomic_save
from deepshield.training.distributed import DistInfo, gather_arrays
from deepshield.training.loops import predict


def dataset_of(video_id: str, fallback: str) -> str:
    """``"dfdc/abc.mp4"`` -> ``"dfdc"`` (catalog video ids are ``<dataset>/<video>``); ``fallback`` for an
    id without one (synthetic images)."""
    head, sep, _ = str(video_id).partition("/")
    return head if sep and head else fallback


@dataclass(frozen=True)
class VideoScores:
    """One score per video: p(fake) aggregated over its frames, its label (1 = fake) and dataset name;
    ``videos``: False when the items had no video ids (each image is then its own "video")."""

    scores: np.ndarray
    labels: np.ndarray
    datasets: np.ndarray
    videos: bool


def video_scores(model: torch.nn.Module, loader: DataLoader, device: torch.device, fallback: str,
                 how: str = "mean", info: DistInfo | None = None, progress: bool = False) -> VideoScores:
    """Score ``loader``'s items with ``model`` in full precision (as predict does) and aggregate them per
    video with ``how`` (:data:`~deepshield.contracts.aggregate.AGGREGATIONS`). Items without video ids
    (synthetic) are one video each, of dataset ``fallback``. Under DDP (``info``) each rank scores its
    shard and every rank gets all the videos."""
    info = info or DistInfo()
    indices = np.array(list(loader.sampler) if info.enabled else range(len(loader.dataset)))
    scored = predict(model, loader, device, progress=progress, desc="scoring videos")
    has_ids = scored.video_ids is not None
    ids = np.array([str(v) for v in scored.video_ids] if has_ids else [f"{fallback}-{i}" for i in indices],
                   dtype=object)
    probs, labels, ids = gather_arrays(indices, scored.probs, scored.labels, ids, info=info)
    vlabels, vscores, vids = aggregate_videos(labels, probs, list(ids), how)
    names = np.array([dataset_of(v, fallback) for v in vids], dtype=object)
    return VideoScores(vscores, vlabels, names, has_ids)


def validation_threshold(model: torch.nn.Module, loader: DataLoader, device: torch.device, info: DistInfo,
                         rule: str, fallback: str, how: str = "mean") -> Threshold:
    """Calibrate ``rule`` on the video scores of ``model`` over the validation ``loader`` (see
    :func:`video_scores`; all ranks get the same threshold). ConfigError when the videos lack a class."""
    v = video_scores(model, loader, device, fallback, how, info)
    what = "validation videos" if v.videos else "validation images"
    return calibrate(v.scores, v.labels, v.datasets, rule, what=what)


def record_threshold(path: str | Path, threshold: Threshold, ckpt: dict | None = None) -> Path:
    """Rewrite the checkpoint at ``path`` (atomically) with ``threshold`` in its config (``ckpt``: its
    contents when already loaded)."""
    ckpt = load_checkpoint(path) if ckpt is None else ckpt
    ckpt["config"] = {**(ckpt.get("config") or {}), "threshold": threshold.to_json()}
    return atomic_save(ckpt, path)


__all__ = ["VideoScores", "dataset_of", "record_threshold", "validation_threshold", "video_scores"]
