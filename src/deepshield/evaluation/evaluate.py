"""``deepshield evaluate``: a checkpoint and a dataset in; results.json, report.md/.html and plots out."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from deepshield.config import EvalConfig, TrainConfig
from deepshield.data.datasets import build_eval_dataset
from deepshield.evaluation.checks import sanity_checks
from deepshield.evaluation.plots import plot_gallery
from deepshield.evaluation.report import write_json, write_report
from deepshield.evaluation.robust import SweepSpec, eps_label, sweep
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


def spec_from_config(cfg: EvalConfig) -> SweepSpec:
    return SweepSpec(attacks=tuple(cfg.attacks), eps=tuple(cfg.eps), norm=cfg.norm, steps=cfg.steps,
                     restarts=cfg.restarts, seed=cfg.seed, square_queries=cfg.square_queries,
                     early_stop=cfg.early_stop, sanity_n=cfg.sanity_n, gallery=cfg.gallery)


def default_out(cfg: EvalConfig) -> Path:
    """Next to the checkpoint: ``eval/`` for the test set, ``eval_<catalog folder>`` for other catalogs."""
    if cfg.out:
        return Path(cfg.out)
    run_dir = Path("runs") / cfg.checkpoint if cfg.checkpoint in BUNDLED else Path(cfg.checkpoint).parent
    if cfg.dataset.startswith("catalog:"):
        catalog = Path(cfg.dataset.split(":")[1])
        return run_dir / f"eval_{catalog.parent.name or catalog.stem}"
    return run_dir / "eval"


def save_gallery(results: dict, path: Path, title: str = "") -> None:
    """Render the sweep's gallery arrays to ``path`` and record the file name in the results."""
    arrays = results.pop("_gallery_arrays", None)
    if arrays is not None and results.get("gallery"):
        plot_gallery(arrays["clean"], arrays["adv"], results["gallery"], path, title=title)
        results["gallery"]["file"] = path.name


def evaluate(cfg: EvalConfig) -> dict:
    """Clean + robust evaluation of one checkpoint, with sanity checks; writes results.json, report.md,
    report.html and PNGs under ``cfg.out`` (default: next to the checkpoint). Returns the results
    (``results["_dir"]`` is the output folder)."""
    start = time.perf_counter()
    device = select_device(cfg.device)
    model, train_cfg = load_model(cfg.checkpoint, device)
    data = build_eval_dataset(cfg.dataset, image_size=train_cfg.image_size, n=cfg.n_test, seed=cfg.seed,
                              max_videos=cfg.max_videos)
    if len(data) == 0:
        raise ValueError(f"dataset {cfg.dataset!r} is empty; check the catalog path and split")
    spec = spec_from_config(cfg)
    results = sweep(model, data, spec, device, batch_size=cfg.batch_size, progress=cfg.progress)
    if cfg.sanity:
        if cfg.progress:
            print(f"sanity checks on {min(len(data), cfg.sanity_n)} images ...", flush=True)
        results["checks"] = sanity_checks(model, data, spec, results, device, batch_size=cfg.batch_size)
    run = cfg.checkpoint if cfg.checkpoint in BUNDLED else Path(cfg.checkpoint).resolve().parent.name
    results.update(run=run, checkpoint=str(cfg.checkpoint), dataset=cfg.dataset, model=train_cfg.backbone,
                   device=str(device), train_config=train_cfg.to_dict(), seconds=time.perf_counter() - start,
                   created=time.strftime("%Y-%m-%dT%H:%M:%S"))
    out = default_out(cfg)
    out.mkdir(parents=True, exist_ok=True)
    if results.get("gallery"):
        g = results["gallery"]
        title = f"{run}: {g['attack']} at ε = {eps_label(g['eps'], cfg.norm)}"
        save_gallery(results, out / "gallery.png", title=title)
    write_json(results, out / "results.json")
    results["_dir"] = out
    write_report({run: results}, out, title=f"deepshield robustness report: {run} on {cfg.dataset}")
    return results
