"""``deepshield evaluate``: a checkpoint and a dataset in; results.json, report.md and plots out."""

from __future__ import annotations

from pathlib import Path

import torch

from deepshield.config import EvalConfig, TrainConfig
from deepshield.data.datasets import build_eval_dataset
from deepshield.evaluation.report import write_json, write_report
from deepshield.evaluation.robust import SweepSpec, sanity_checks, sweep
from deepshield.models import build_model
from deepshield.training.checkpoint import load_checkpoint
from deepshield.training.loops import select_device


def load_model(path: str | Path, device: torch.device) -> tuple[torch.nn.Module, TrainConfig]:
    """Rebuild the model a checkpoint was trained as, with its weights, in eval mode."""
    ckpt = load_checkpoint(path, map_location=device)
    cfg = TrainConfig.from_dict(ckpt["config"])
    model = build_model(cfg.backbone, num_classes=2, image_size=cfg.image_size).to(device)
    model.load_state_dict(ckpt["model"])
    return model.eval(), cfg


def evaluate(cfg: EvalConfig) -> dict:
    """Clean + robust evaluation of one checkpoint, with sanity checks; writes under ``cfg.out``."""
    device = select_device(cfg.device)
    model, train_cfg = load_model(cfg.checkpoint, device)
    data = build_eval_dataset(cfg.dataset, image_size=train_cfg.image_size, n=cfg.n_test, seed=cfg.seed)
    spec = SweepSpec(attacks=tuple(cfg.attacks), eps=tuple(cfg.eps), norm=cfg.norm, steps=cfg.steps,
                     restarts=cfg.restarts, seed=cfg.seed)
    results = sweep(model, data, spec, device, batch_size=cfg.batch_size, progress=cfg.progress)
    if cfg.sanity:
        results["checks"] = sanity_checks(model, data, spec, results, device, batch_size=cfg.batch_size)
    results["checkpoint"] = str(cfg.checkpoint)
    results["train_config"] = train_cfg.to_dict()
    out = Path(cfg.out) if cfg.out else Path(cfg.checkpoint).parent / "eval"
    write_json(results, out / "results.json")
    write_report({Path(cfg.checkpoint).parent.name: results}, out)
    return results
