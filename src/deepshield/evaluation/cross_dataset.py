"""Cross-dataset evaluation: one checkpoint scored on several datasets, each marked in-domain (the data it
was trained on) or cross-domain (e.g. a DFDC detector on FaceForensics++).

``deepshield evaluate --dataset A B C`` runs the robust sweep on A and clean metrics (frame, video and per
method) on B and C; ``--cross-sweep`` attacks B and C too (no re-encoding, transfer, corruption or sanity
rows: those stay with A).

    >>> domain_of("catalog:faces/catalog.csv:test", trained_on="catalog:faces/catalog.csv")
    'in-domain'
    >>> entry = evaluate_dataset(model, "catalog:ffpp/catalog.csv", cfg, train_cfg, device)
    >>> entry.domain, entry.sweep.clean.auc, entry.sweep.clean.video["mean"].auc
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from deepshield.config import EvalConfig, SweepSpec, TrainConfig
from deepshield.contracts.rows import Metrics
from deepshield.data.datasets import build_eval_dataset, parse_catalog_arg, parse_spec
from deepshield.errors import ConfigError, DataError
from deepshield.evaluation.metrics import detection_metrics, sample_methods
from deepshield.evaluation.results import DatasetEval, Samples, SweepResult
from deepshield.evaluation.robust import sweep
from deepshield.progress import progress as progress_bar
from deepshield.runtime import eval_mode, fake_probs
from deepshield.training.loops import split_batch

IN_DOMAIN, CROSS_DOMAIN, UNKNOWN = "in-domain", "cross-domain", "unknown"


def _source(spec: str) -> tuple[str, Path | None, str | None]:
    """(scheme, resolved catalog path or None, split or None) of a dataset spec."""
    scheme, arg = parse_spec(spec)
    if scheme != "catalog":
        return scheme, None, None
    path, split = parse_catalog_arg(arg)
    return scheme, Path(path).expanduser().resolve(), split


def domain_of(dataset: str, trained_on: str | None) -> str:
    """``in-domain`` when ``dataset`` is the catalog file (any split) or generator the checkpoint was
    trained on, ``cross-domain`` otherwise; ``unknown`` when the training dataset is not recorded, or is a
    catalog that does not exist from the current folder (its relative path cannot be compared)."""
    if not trained_on:
        return UNKNOWN
    try:
        scheme, path, _ = _source(dataset)
        train_scheme, train_path, _ = _source(trained_on)
    except ConfigError:
        return UNKNOWN
    if train_path is not None and not train_path.is_file():
        return UNKNOWN
    return IN_DOMAIN if (scheme, path) == (train_scheme, train_path) else CROSS_DOMAIN


def check_datasets(datasets: tuple[str, ...]) -> None:
    """ConfigError when a dataset is given twice (the same catalog file and split)."""
    seen: dict[tuple, str] = {}
    for spec in datasets:
        key = _source(spec)
        if key in seen:
            raise ConfigError(f"--dataset {spec!r} is the same dataset as {seen[key]!r}; give each once")
        seen[key] = spec


def includes_training_rows(dataset: str, trained_on: str | None) -> bool:
    """An in-domain catalog evaluated without a held-out split (none, or ``train``) scores training faces."""
    return domain_of(dataset, trained_on) == IN_DOMAIN and _source(dataset)[2] in (None, "train")


def clean_pass(model: nn.Module, data: Dataset, spec: SweepSpec, device: torch.device,
               batch_size: int = 128, progress: bool = False) -> SweepResult:
    """Clean metrics only (frame, video and per method, as the sweep's ``clean``) and per-sample scores;
    no attack rows. ``spec`` is recorded as the settings the data was selected with."""
    loader = DataLoader(data, batch_size=batch_size, shuffle=False)
    probs, labels, vids, has_vids = [], [], [], True
    start = time.perf_counter()
    with eval_mode(model):
        for batch in progress_bar(loader, desc="clean eval", leave=False, enabled=progress, unit="batch"):
            x, y, v = split_batch(batch)
            probs.append(fake_probs(model, x.to(device)).cpu().numpy())
            labels.append(np.asarray(y))
            if v is None:
                has_vids = False
            else:
                vids.extend(str(i) for i in v)
    label_arr = np.concatenate(labels).astype(int) if labels else np.zeros(0, dtype=int)
    prob_arr = np.concatenate(probs) if probs else np.zeros(0)
    video_ids = vids if has_vids else None
    methods = sample_methods(label_arr, video_ids, getattr(data, "video_methods", None))
    samples = Samples(labels=label_arr.tolist(), video_ids=video_ids, methods=methods,
                      scores={"clean": prob_arr.tolist()})
    metrics = Metrics.from_json(detection_metrics(label_arr, prob_arr, video_ids, methods))
    return SweepResult(clean=metrics, robust=[], worst_case=[], spec=spec, n=int(len(label_arr)),
                       seconds=time.perf_counter() - start, samples=samples)


def evaluate_dataset(model: nn.Module, dataset: str, cfg: EvalConfig, train_cfg: TrainConfig,
                     device: torch.device, attack_model: nn.Module | None = None) -> DatasetEval:
    """Score ``model`` on one more dataset: clean metrics, plus the attack sweep with ``cfg.cross_sweep``
    (``attack_model``: what the attacks differentiate, as in the main sweep)."""
    data = build_eval_dataset(dataset, image_size=train_cfg.image_size, n=cfg.n_test, seed=cfg.sweep.seed,
                              max_videos=cfg.max_videos)
    if len(data) == 0:
        raise DataError(f"dataset {dataset!r} is empty; check the catalog path and split")
    if cfg.cross_sweep:
        result, _ = sweep(model, data, cfg.sweep, device, batch_size=cfg.batch_size, progress=cfg.progress,
                          attack_model=attack_model)
    else:
        result = clean_pass(model, data, cfg.sweep, device, batch_size=cfg.batch_size, progress=cfg.progress)
    return DatasetEval(dataset=dataset, domain=domain_of(dataset, train_cfg.dataset), sweep=result)


def evaluate_cross(model: nn.Module, cfg: EvalConfig, train_cfg: TrainConfig, device: torch.device,
                   log: Callable[[str], None], attack_model: nn.Module | None = None) -> list[DatasetEval]:
    """:func:`evaluate_dataset` on each of ``cfg.cross_dataset``, in order, logging one line per dataset."""
    out = []
    for dataset in cfg.cross_dataset:
        entry = evaluate_dataset(model, dataset, cfg, train_cfg, device, attack_model=attack_model)
        c = entry.sweep.clean
        video = (c.video or {}).get("mean")
        log(f"{dataset} ({entry.domain}): {entry.sweep.n} faces, AUC {c.auc:.3f}"
            + (f", video AUC {video.auc:.3f}" if video else ""))
        out.append(entry)
    return out


def plan_line(cfg: EvalConfig, trained_on: str | None) -> str:
    """The log line saying which dataset is attacked and which get clean metrics only."""
    first = f"robust sweep on {cfg.dataset} ({domain_of(cfg.dataset, trained_on)})"
    rest = ", ".join(f"{d} ({domain_of(d, trained_on)})" for d in cfg.cross_dataset)
    if cfg.cross_sweep:
        return f"{first} and on {rest} (--cross-sweep; sanity checks, re-encoding, transfer and " \
               f"corruption rows on the first only)"
    return f"{first}; clean metrics only on {rest}; --cross-sweep attacks them too"


__all__ = ["CROSS_DOMAIN", "IN_DOMAIN", "UNKNOWN", "check_datasets", "clean_pass", "domain_of",
           "evaluate_cross", "evaluate_dataset", "includes_training_rows", "plan_line"]
