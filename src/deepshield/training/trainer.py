"""The training run: data, model, objective, optimizer, checkpoints, logging, resume, DDP.

Read top to bottom: build everything, maybe resume, then for each epoch build the objective at the
epoch's ε, train one epoch, validate, log, checkpoint; at the end, calibrate the operating threshold of
best.pt and last.pt on the validation videos (``training.calibration``). Precision (AMP), DDP and the
objective are injected; the loop does not branch on them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from deepshield.attacks import build_eval_attack
from deepshield.config import SweepSpec, TrainConfig
from deepshield.contracts.threshold import THRESHOLD_RULES, Threshold
from deepshield.data.datasets import build_datasets, catalog_preprocess_settings
from deepshield.errors import ConfigError
from deepshield.io import write_text_atomic
from deepshield.models import build_model, count_parameters
from deepshield.models.loading import load_checkpoint
from deepshield.runtime import select_device
from deepshield.training.calibration import record_threshold, validation_threshold
from deepshield.training.checkpoint import rng_state, save_checkpoint, set_rng_state
from deepshield.training.distributed import (
    DistInfo,
    all_reduce_mean,
    cleanup,
    device_for,
    gather_arrays,
    init_distributed,
)
from deepshield.training.logging import RunLogger
from deepshield.training.loops import predict, seed_everything, train_epoch
from deepshield.training.objectives import OBJECTIVES, build_objective, check_settings
from deepshield.training.optim import build_optimizer, build_unfreeze_schedule
from deepshield.training.precision import Precision, build_precision, compile_model, recorded_precision


@dataclass
class TrainResult:
    out: Path
    metrics: dict[str, float]
    best_path: Path
    last_path: Path


def smoke_config(cfg: TrainConfig) -> TrainConfig:
    """A seconds-long version of ``cfg`` (tiny data, one epoch, few steps)."""
    return replace(cfg, epochs=1, n_train=256, n_val=128, image_size=min(cfg.image_size, 32),
                   steps=min(cfg.steps, 2), val_attack_steps=2)


def eps_at(cfg: TrainConfig, epoch: int) -> float:
    """Linear ε warm-up over the first ``adv_warmup_epochs`` epochs (epoch counted from 0)."""
    if cfg.adv_warmup_epochs <= 0:
        return cfg.eps
    return cfg.eps * min(1.0, (epoch + 1) / cfg.adv_warmup_epochs)


def make_loader(ds: Dataset, cfg: TrainConfig, epoch: int | None, info: DistInfo | None = None) -> DataLoader:
    """Training loader (epoch given: a shuffle seeded by seed and epoch, so resume replays it) or eval.

    Under DDP each rank gets its shard, reshuffled per epoch with the same seed on every rank, and the
    per-rank batch is ``batch_size / world_size`` so the global batch matches a single process.
    """
    info = info or DistInfo()
    batch = max(1, cfg.batch_size // info.world_size)
    train = epoch is not None
    if info.enabled:
        sampler = DistributedSampler(ds, num_replicas=info.world_size, rank=info.rank, shuffle=train,
                                     seed=cfg.seed, drop_last=False)
        sampler.set_epoch(epoch or 0)
    elif train:
        sampler = RandomSampler(ds, generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))
    else:
        sampler = None
    if train and hasattr(ds, "set_epoch"):
        ds.set_epoch(epoch)
    return DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=cfg.workers,
                      drop_last=train and len(ds) > cfg.batch_size,
                      pin_memory=torch.cuda.is_available() and cfg.device != "cpu")


def cosine_with_warmup(optimizer: torch.optim.Optimizer, total: int, warmup: int):
    """Per-step LR: linear warm-up then cosine decay to zero."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _auc(labels: np.ndarray, probs: np.ndarray) -> float:
    return float(roc_auc_score(labels, probs)) if len(np.unique(labels)) == 2 else float("nan")


def validate(model, ds: Dataset, cfg: TrainConfig, device, info: DistInfo, autocast) -> dict[str, float]:
    """Clean accuracy/AUC and, for an adversarial objective, accuracy under the attack that validates it
    (``val_pgd_acc``; PGD for every built-in objective) at the target ε (all ranks)."""
    loader = make_loader(ds, cfg, None, info)
    indices = np.array(list(loader.sampler) if info.enabled else range(len(ds)))
    clean = predict(model, loader, device, autocast=autocast)
    probs, labels = gather_arrays(indices, clean.probs, clean.labels, info=info)
    metrics = {"val_acc": float(((probs >= 0.5) == labels).mean()), "val_auc": _auc(labels, probs)}
    validate_with = OBJECTIVES.lookup(cfg.adv).validate_with
    if validate_with is not None:
        # Evaluation's configuration of the attack (PGD: α = 2.5ε/steps), attacking every sample.
        spec = SweepSpec(steps=cfg.val_attack_steps, seed=cfg.seed, early_stop=False)
        attack = build_eval_attack(validate_with, cfg.eps, spec)
        adv = predict(model, loader, device, attack=attack, autocast=autocast)
        (adv_probs,) = gather_arrays(indices, adv.probs, info=info)
        metrics["val_pgd_acc"] = float(((adv_probs >= 0.5) == labels).mean())
        # A constant classifier scores 0.5 under PGD: rank checkpoints by clean and robust accuracy together.
        metrics["val_robust_score"] = (metrics["val_acc"] + metrics["val_pgd_acc"]) / 2
    return metrics


def overfitting_warning(history: list[dict[str, float]]) -> str | None:
    """Catastrophic overfitting (Wong et al. 2020): PGD accuracy collapses while clean accuracy holds."""
    pgd = [m["val_pgd_acc"] for m in history if "val_pgd_acc" in m]
    if len(pgd) < 2:
        return None
    peak, now = max(pgd[:-1]), pgd[-1]
    if now < 0.5 * peak and peak - now > 0.2:
        return (f"WARNING: catastrophic overfitting: validation PGD accuracy fell from {peak:.3f} to "
                f"{now:.3f} (clean {history[-1]['val_acc']:.3f}); lower --eps or --alpha, use --adv pgd, "
                "or keep best.pt")
    return None


@dataclass
class _Run:
    """Everything one training run holds; built by :func:`_build`, advanced one epoch at a time."""

    cfg: TrainConfig
    out: Path
    info: DistInfo
    device: torch.device
    train_ds: Dataset
    val_ds: Dataset
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    precision: Precision
    unfreeze: Callable[[int], bool]
    best_metric: str
    adversarial: bool
    run_config: dict = field(default_factory=dict)
    start_epoch: int = 0
    best: float = -math.inf
    metrics: dict[str, float] = field(default_factory=dict)

    def wrap(self) -> torch.nn.Module:
        """The training forward (DDP, compile); validation uses ``model`` itself."""
        m = DistributedDataParallel(self.model) if self.info.enabled else self.model
        return compile_model(m, self.cfg.compile)


def _build(cfg: TrainConfig) -> _Run:
    """Data, model, precision, optimizer and schedule of a run (nothing written yet)."""
    out = Path(cfg.out)
    info = init_distributed(select_device(cfg.device))
    device = device_for(info, select_device(cfg.device))
    seed_everything(cfg.seed + info.rank)  # per-rank attack random starts differ, as they should
    train_ds, val_ds = build_datasets(cfg)
    model = build_model(cfg.backbone, num_classes=2, image_size=cfg.image_size,
                        pretrained=cfg.pretrained, act=cfg.act).to(device)
    steps_per_epoch = len(make_loader(train_ds, cfg, 0, info))
    # Precision and layout by measurement (cached per machine); under DDP by rule, so ranks agree.
    precision = build_precision(cfg, device, None if info.enabled else model, cfg.epochs * steps_per_epoch,
                                recorded=recorded_precision(out) if cfg.resume else None)
    precision.apply_layout(model)  # before the optimizer holds the parameters
    optimizer = build_optimizer(model, cfg)
    adversarial = OBJECTIVES.lookup(cfg.adv).adversarial
    return _Run(cfg, out, info, device, train_ds, val_ds, model, optimizer,
                cosine_with_warmup(optimizer, cfg.epochs * steps_per_epoch, warmup=steps_per_epoch // 2),
                precision, build_unfreeze_schedule(model, cfg),
                cfg.best_metric or ("val_robust_score" if adversarial else "val_auc"), adversarial)


def _resume(run: _Run) -> None:
    """Restore model, optimizer, schedule, scaler, RNG and best score from ``last.pt``, if asked and there."""
    last_path = run.out / "last.pt"
    if not (run.cfg.resume and last_path.exists()):
        return
    ckpt = load_checkpoint(last_path, map_location=run.device)
    run.model.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    if run.precision.scaler is not None and "scaler" in ckpt:
        run.precision.scaler.load_state_dict(ckpt["scaler"])
    run.start_epoch, run.best, run.metrics = ckpt["epoch"] + 1, ckpt["best"], ckpt["metrics"]
    set_rng_state(ckpt["rng"][run.info.rank] if isinstance(ckpt["rng"], list) else ckpt["rng"])
    if patience_stop(history_of(run.out, []), run.best_metric, run.cfg.patience) is not None:
        run.start_epoch = run.cfg.epochs  # it stopped early before: a rerun has nothing to do


def _log_start(run: _Run, log: RunLogger) -> None:
    """The run's first log lines: model, data, precision, pretrained weights, crop settings, notes."""
    cfg, info = run.cfg, run.info
    log.info(f"{cfg.backbone}: {count_parameters(run.model):,} trainable parameters; "
             f"{len(run.train_ds)} train / {len(run.val_ds)} val images; objective {cfg.adv}; "
             f"{run.precision.name} on {run.device}" + (f"; DDP x{info.world_size}" if info.enabled else ""))
    log.info(run.precision.message + ("; torch.compile on" if cfg.compile else ""))
    if getattr(run.model, "pretrained_report", None) is not None:
        log.info(run.model.pretrained_report.summary())
    crop = run.run_config["preprocess"]
    shown = ", ".join(f"{k}={v}" for k, v in crop.items()) if crop else (
        "none recorded (synthetic data, or a catalog without preprocess.json): predict will use its defaults")
    log.info(f"crop settings for predict: {shown}")
    for note in getattr(run.train_ds, "notes", ()):  # e.g. pseudo-fakes: faces without landmarks
        log.info(note)
    if info.is_main and hasattr(run.train_ds, "save_examples"):
        log.info(f"pseudo-fake examples: {run.train_ds.save_examples(run.out / 'pseudo_fakes.png')}")


def _epoch(run: _Run, net: torch.nn.Module, epoch: int) -> dict[str, float]:
    """Train one epoch at the epoch's ε, then validate: the epoch's metrics line."""
    cfg, info = run.cfg, run.info
    eps = eps_at(cfg, epoch)
    objective = build_objective(cfg.adv, **cfg.objective_settings(eps))
    loader = make_loader(run.train_ds, cfg, epoch, info)
    stats = train_epoch(net, loader, objective, run.optimizer, run.device,
                        scheduler=run.scheduler, autocast=run.precision.autocast, scaler=run.precision.scaler,
                        progress=cfg.progress and info.is_main, desc=f"epoch {epoch + 1}/{cfg.epochs}")
    train_stats = all_reduce_mean({"train_loss": stats.loss, "train_acc": stats.acc,
                                   "images_per_s": stats.images_per_s}, stats.images, info)
    train_stats["images_per_s"] *= info.world_size
    adv_eps = {"eps": eps} if run.adversarial else {}  # the ε of this epoch
    return {"epoch": epoch + 1, **train_stats, **adv_eps, "lr": run.optimizer.param_groups[0]["lr"],
            **validate(run.model, run.val_ds, cfg, run.device, info, run.precision.autocast)}


def train(cfg: TrainConfig) -> TrainResult:
    """Run ``deepshield train``; writes config.json, metrics.jsonl, last.pt and best.pt under ``cfg.out``
    (the checkpoints' config holding the calibrated ``threshold``)."""
    check_settings(cfg.adv, **cfg.objective_settings())  # a misplaced flag fails before any work
    THRESHOLD_RULES.lookup(cfg.threshold_rule)           # so does an unknown threshold rule (a recipe's)
    run = _build(smoke_config(cfg) if cfg.smoke else cfg)
    cfg, out = run.cfg, run.out
    _resume(run)
    run.run_config = {**run_config_dict(cfg), "precision": run.precision.to_dict()}
    if run.info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "config.json", json.dumps(run.run_config, indent=2))
    run.unfreeze(run.start_epoch)  # before DDP wraps the model: DDP syncs the parameters training then
    net = run.wrap()
    history: list[dict[str, float]] = []
    try:
        with RunLogger(out, tensorboard=cfg.tensorboard, resume_epoch=run.start_epoch,
                       enabled=run.info.is_main) as log:
            _log_start(run, log)
            for epoch in range(run.start_epoch, cfg.epochs):
                if run.unfreeze(epoch):
                    net = run.wrap()
                run.metrics = _epoch(run, net, epoch)
                # Log first: a kill before the checkpoint is redone on resume and its line dropped.
                log.log(run.metrics, step=epoch + 1)
                history.append(run.metrics)
                if (warning := overfitting_warning(history)) is not None:
                    log.info(warning)
                run.best = _checkpoint(run.model, run.optimizer, run.scheduler, run.precision, run.run_config,
                                       epoch, run.metrics, run.best, run.best_metric, out, run.info)
                stop = patience_stop(history_of(out, history), run.best_metric, cfg.patience)
                if stop is not None:
                    log.info(stop)
                    break
            _record_threshold(run, log)
    finally:
        cleanup(run.info)
    return TrainResult(out, run.metrics, out / "best.pt", out / "last.pt")


def _record_threshold(run: _Run, log: RunLogger) -> None:
    """Calibrate the operating threshold (``cfg.threshold_rule``) of best.pt and last.pt on the validation
    videos and rewrite them with it in their config (rank 0 writes; every rank scores its shard)."""
    if run.info.enabled:
        torch.distributed.barrier()  # rank 0 has finished writing the checkpoints
    loader = make_loader(run.val_ds, run.cfg, None, run.info)
    fallback = run.cfg.dataset.partition(":")[0]  # the dataset name of ids without one ("synthetic")
    by_epoch: dict[int, Threshold] = {}
    files: dict[int, list[str]] = {}
    for path in (p for p in (run.out / "best.pt", run.out / "last.pt") if p.exists()):
        ckpt = load_checkpoint(path)
        epoch = ckpt["epoch"]
        if epoch not in by_epoch:  # best.pt and last.pt often hold the same epoch: scored once
            run.model.load_state_dict(ckpt["model"])
            try:
                by_epoch[epoch] = validation_threshold(run.model, loader, run.device, run.info,
                                                       run.cfg.threshold_rule, fallback)
            except ConfigError as e:
                log.info(f"no operating threshold recorded: {e}; predict will judge at 0.5")
                return
        if run.info.is_main:
            record_threshold(path, by_epoch[epoch], ckpt)
        files.setdefault(epoch, []).append(path.name)
    for epoch, names in files.items():
        log.info(f"operating threshold of {' and '.join(names)} (epoch {epoch + 1}): "
                 f"{by_epoch[epoch].describe()}")


def history_of(out: Path, history: list[dict[str, float]]) -> list[dict[str, float]]:
    """Every epoch's metrics so far: metrics.jsonl (a resumed run's earlier epochs too) or ``history``."""
    path = out / "metrics.jsonl"
    if not path.exists():
        return history
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_epoch = {int(r["epoch"]): r for r in rows if "epoch" in r}
    return [by_epoch[e] for e in sorted(by_epoch)] or history


def patience_stop(history: list[dict[str, float]], metric: str, patience: int | None) -> str | None:
    """Early stopping (Rice et al. 2020): a message when ``metric`` has not improved on its best for
    ``patience`` epochs, else None."""
    values = [m[metric] for m in history if metric in m]
    if not patience or len(values) <= patience:
        return None
    best_at = max(range(len(values)), key=lambda i: (values[i], -i))
    if len(values) - 1 - best_at < patience:
        return None
    return (f"early stop: {metric} has not improved on {values[best_at]:.4f} (epoch {best_at + 1}) for "
            f"{patience} epoch(s); best.pt holds that epoch")


def run_config_dict(cfg: TrainConfig) -> dict:
    """The run's config as saved in config.json and checkpoints: the settings plus the crop settings of
    the training catalog (``preprocess``), which ``deepshield predict`` reads."""
    crop = catalog_preprocess_settings(cfg.dataset)
    return {**cfg.to_dict(), "preprocess": crop.to_json() if crop else None}


def _checkpoint(model, optimizer, scheduler, precision, cfg: dict, epoch, metrics, best, best_metric, out,
                info) -> float:
    """Save last.pt (and best.pt when the metric improves) on rank 0; RNG states of every rank."""
    rng = rng_state()
    if info.enabled:
        states: list = [None] * info.world_size
        torch.distributed.all_gather_object(states, rng)
        rng = states
    improved = metrics[best_metric] >= best or math.isnan(best)
    best = metrics[best_metric] if improved else best
    if info.is_main:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "epoch": epoch, "metrics": metrics,
                 "config": cfg, "rng": rng, "best": best, "best_metric": best_metric}
        if precision.scaler is not None:
            state["scaler"] = precision.scaler.state_dict()
        if improved or not (out / "best.pt").exists():
            save_checkpoint(out / "best.pt", **state)
        save_checkpoint(out / "last.pt", **state)
    return best
