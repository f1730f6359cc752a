"""``deepshield evaluate``: a checkpoint and a dataset in; results.json, report.md/.html and plots out."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from deepshield.config import EvalConfig, TrainConfig
from deepshield.data.datasets import build_eval_dataset
from deepshield.errors import DataError
from deepshield.evaluation.checks import sanity_checks
from deepshield.evaluation.formatting import eps_label
from deepshield.evaluation.plots import plot_gallery
from deepshield.evaluation.report import write_json, write_report
from deepshield.evaluation.results import EvalResult, GalleryImages, SweepResult
from deepshield.evaluation.robust import sweep
from deepshield.models import build_model
from deepshield.models.zoo import BUNDLED, resolve_checkpoint
from deepshield.training.checkpoint import load_checkpoint
from deepshield.training.loops import select_device


def load_model(path: str | Path, device: torch.device) -> tuple[torch.nn.Module, TrainConfig]:
    """Rebuild the model a checkpoint was trained as, with its weights, in eval mode (never downloads)."""
    model, cfg, _ = load_model_and_config(path, device)
    return model, cfg


def load_model_and_config(path: str | Path,
                          device: torch.device) -> tuple[torch.nn.Module, TrainConfig, dict]:
    """:func:`load_model` plus the checkpoint's raw config dict (with extras such as ``preprocess``)."""
    ckpt = load_checkpoint(resolve_checkpoint(path), map_location=device)
    raw = dict(ckpt.get("config") or {})
    cfg = TrainConfig.from_dict(raw)
    model = build_model(cfg.backbone, num_classes=2, image_size=cfg.image_size, pretrained=None).to(device)
    model.load_state_dict(ckpt["model"])
    return model.eval(), cfg, raw


def default_out(cfg: EvalConfig) -> Path:
    """Next to the checkpoint: ``eval/`` for the test set, ``eval_<catalog folder>`` for other catalogs."""
    if cfg.out:
        return Path(cfg.out)
    run_dir = Path("runs") / cfg.checkpoint if cfg.checkpoint in BUNDLED else Path(cfg.checkpoint).parent
    if cfg.dataset.startswith("catalog:"):
        catalog = Path(cfg.dataset.split(":")[1])
        return run_dir / f"eval_{catalog.parent.name or catalog.stem}"
    return run_dir / "eval"


def save_gallery(result: SweepResult, images: GalleryImages | None, path: Path, title: str = "") -> None:
    """Render the sweep's gallery images to ``path`` and record the file name in its gallery metadata."""
    if images is not None and result.gallery:
        plot_gallery(images.clean, images.adv, result.gallery, path, title=title)
        result.gallery["file"] = path.name


def evaluate(cfg: EvalConfig) -> EvalResult:
    """Clean + robust evaluation of one checkpoint, with sanity checks; writes results.json, report.md,
    report.html and PNGs under ``cfg.out`` (default: next to the checkpoint; ``result.out``)."""
    start = time.perf_counter()
    device = select_device(cfg.device)
    model, train_cfg = load_model(cfg.checkpoint, device)
    spec = cfg.sweep
    data = build_eval_dataset(cfg.dataset, image_size=train_cfg.image_size, n=cfg.n_test, seed=spec.seed,
                              max_videos=cfg.max_videos)
    if len(data) == 0:
        raise DataError(f"dataset {cfg.dataset!r} is empty; check the catalog path and split")
    swept, images = sweep(model, data, spec, device, batch_size=cfg.batch_size, progress=cfg.progress)
    checks = []
    if cfg.sanity:
        if cfg.progress:
            print(f"sanity checks on {min(len(data), spec.sanity_n)} images ...", flush=True)
        log = (lambda line: print(line, flush=True)) if cfg.progress else None
        checks = sanity_checks(model, data, spec, swept, device, batch_size=cfg.batch_size, log=log)
    run = cfg.checkpoint if cfg.checkpoint in BUNDLED else Path(cfg.checkpoint).resolve().parent.name
    out = default_out(cfg)
    out.mkdir(parents=True, exist_ok=True)
    if swept.gallery:
        g = swept.gallery
        title = f"{run}: {g['attack']} at ε = {eps_label(g['eps'], spec.norm)}"
        save_gallery(swept, images, out / "gallery.png", title=title)
    result = EvalResult(sweep=swept, checks=checks, run=run, checkpoint=str(cfg.checkpoint),
                        dataset=cfg.dataset, model=train_cfg.backbone, device=str(device),
                        train_config=train_cfg.to_dict(),
                        seconds=time.perf_counter() - start, created=time.strftime("%Y-%m-%dT%H:%M:%S"),
                        out=out)
    write_json(result.to_json(), out / "results.json")
    write_report({run: result}, out, title=f"deepshield robustness report: {run} on {cfg.dataset}")
    return result
