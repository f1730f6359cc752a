"""The training run: data, model, objective, optimizer, checkpoints, logging, resume.

Read top to bottom: build everything, maybe resume, then for each epoch build the objective at the
epoch's ε, train one epoch, validate, log, checkpoint.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader, Dataset, RandomSampler

from deepshield.attacks import PGD
from deepshield.config import TrainConfig
from deepshield.data.datasets import build_datasets
from deepshield.models import build_model, count_parameters
from deepshield.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from deepshield.training.logging import RunLogger
from deepshield.training.loops import predict, seed_everything, select_device, train_epoch
from deepshield.training.objectives import build_objective
from deepshield.training.optim import build_optimizer, build_unfreeze_schedule
from deepshield.training.precision import build_precision


@dataclass
class TrainResult:
    out: Path
    metrics: dict[str, float]
    best_path: Path
    last_path: Path


def smoke_config(cfg: TrainConfig) -> TrainConfig:
    """A seconds-long version of ``cfg`` (tiny data, one epoch, few steps)."""
    from dataclasses import replace

    return replace(cfg, epochs=1, n_train=256, n_val=128, image_size=min(cfg.image_size, 32),
                   steps=min(cfg.steps, 2), val_attack_steps=2)


def eps_at(cfg: TrainConfig, epoch: int) -> float:
    """Linear ε warm-up over the first ``adv_warmup_epochs`` epochs (epoch counted from 0)."""
    if cfg.adv_warmup_epochs <= 0:
        return cfg.eps
    return cfg.eps * min(1.0, (epoch + 1) / cfg.adv_warmup_epochs)


def make_loader(ds: Dataset, cfg: TrainConfig, epoch: int | None) -> DataLoader:
    """Training loader (epoch given: a shuffle seeded by seed and epoch, so resume replays it) or eval."""
    sampler = None
    if epoch is not None:
        sampler = RandomSampler(ds, generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))
    return DataLoader(ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                      drop_last=epoch is not None and len(ds) > cfg.batch_size,
                      pin_memory=torch.cuda.is_available(), persistent_workers=False)


def cosine_with_warmup(optimizer: torch.optim.Optimizer, total: int, warmup: int):
    """Per-step LR: linear warm-up then cosine decay to zero."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def validate(model, loader, device, cfg: TrainConfig, eps: float) -> dict[str, float]:
    """Clean accuracy/AUC and, when training adversarially, PGD accuracy at the current ε."""
    clean = predict(model, loader, device)
    metrics = {"val_acc": clean.acc, "val_auc": _auc(clean.labels, clean.probs)}
    if cfg.adv != "none":
        attack = PGD(eps=eps, alpha=eps / 4, steps=cfg.val_attack_steps, seed=cfg.seed)
        metrics["val_pgd_acc"] = predict(model, loader, device, attack=attack).acc
    return metrics


def _auc(labels, probs) -> float:
    return float(roc_auc_score(labels, probs)) if len(set(labels.tolist())) == 2 else float("nan")


def train(cfg: TrainConfig) -> TrainResult:
    """Run ``deepshield train``; writes config.json, metrics.jsonl, last.pt and best.pt under ``cfg.out``."""
    if cfg.smoke:
        cfg = smoke_config(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    device = select_device(cfg.device)
    train_ds, val_ds = build_datasets(cfg)
    model = build_model(cfg.backbone, num_classes=2, image_size=cfg.image_size,
                        pretrained=cfg.pretrained).to(device)
    optimizer = build_optimizer(model, cfg)
    unfreeze = build_unfreeze_schedule(model, cfg)
    precision = build_precision(cfg, device)
    steps_per_epoch = len(make_loader(train_ds, cfg, 0))
    scheduler = cosine_with_warmup(optimizer, cfg.epochs * steps_per_epoch, warmup=steps_per_epoch // 2)
    best_metric = cfg.best_metric or ("val_pgd_acc" if cfg.adv != "none" else "val_auc")
    start_epoch, best, metrics = 0, -math.inf, {}
    last_path, best_path = out / "last.pt", out / "best.pt"
    if cfg.resume and last_path.exists():
        ckpt = load_checkpoint(last_path, map_location=device)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if precision.scaler is not None and "scaler" in ckpt:
            precision.scaler.load_state_dict(ckpt["scaler"])
        start_epoch, best, metrics = ckpt["epoch"] + 1, ckpt["best"], ckpt["metrics"]
        set_rng_state(ckpt["rng"])
    tmp = out / ".config.json.tmp"
    tmp.write_text(json.dumps(cfg.to_dict(), indent=2))
    os.replace(tmp, out / "config.json")
    val_loader = make_loader(val_ds, cfg, None)
    with RunLogger(out, tensorboard=cfg.tensorboard, resume=start_epoch > 0) as log:
        log.info(f"{cfg.backbone}: {count_parameters(model):,} trainable parameters; "
                 f"{len(train_ds)} train / {len(val_ds)} val images; objective {cfg.adv}; device {device}")
        for epoch in range(start_epoch, cfg.epochs):
            eps = eps_at(cfg, epoch)
            objective = build_objective(cfg.adv, eps=eps, alpha=cfg.alpha if cfg.alpha else eps / 4,
                                        steps=cfg.steps, beta=cfg.trades_beta)
            unfreeze(epoch)
            stats = train_epoch(model, make_loader(train_ds, cfg, epoch), objective, optimizer, device,
                                scheduler=scheduler, autocast=precision.autocast, scaler=precision.scaler,
                                progress=cfg.progress, desc=f"epoch {epoch + 1}/{cfg.epochs}")
            metrics = {"epoch": epoch + 1, "train_loss": stats.loss, "train_acc": stats.acc, "eps": eps,
                       "lr": optimizer.param_groups[0]["lr"], "images_per_s": stats.images_per_s,
                       **validate(model, val_loader, device, cfg, cfg.eps)}
            log.log(metrics, step=epoch + 1)
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "epoch": epoch, "metrics": metrics,
                     "config": cfg.to_dict(), "rng": rng_state()}
            if precision.scaler is not None:
                state["scaler"] = precision.scaler.state_dict()
            if metrics[best_metric] >= best or not best_path.exists():
                best = metrics[best_metric]
                save_checkpoint(best_path, **state, best=best)
            save_checkpoint(last_path, **state, best=best)
    return TrainResult(out, metrics, best_path, last_path)
