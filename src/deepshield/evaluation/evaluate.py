"""``deepshield evaluate``: a checkpoint and a dataset in; results.json, report.md/.html and plots out."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from deepshield.config import EvalConfig
from deepshield.data.datasets import build_eval_dataset
from deepshield.errors import DataError
from deepshield.evaluation.adaptive import threat_setup, with_ensemble
from deepshield.evaluation.checks import sanity_checks
from deepshield.evaluation.cross_dataset import (
    check_datasets,
    domain_of,
    evaluate_cross,
    includes_training_rows,
    plan_line,
)
from deepshield.evaluation.formatting import eps_label
from deepshield.evaluation.plots import plot_gallery
from deepshield.evaluation.report import write_json, write_report
from deepshield.evaluation.results import EvalResult, GalleryImages, SweepResult
from deepshield.evaluation.robust import sweep
from deepshield.evaluation.threat_rows import Resized, build_channels, corruption_rows, transfer_rows
from deepshield.models.loading import BUNDLED, load_model
from deepshield.runtime import select_device


def default_out(cfg: EvalConfig) -> Path:
    """Next to the checkpoint: ``eval/`` for the test set, ``eval_<catalog folder>`` for other catalogs."""
    if cfg.out:
        return Path(cfg.out)
    run_dir = Path("runs") / cfg.checkpoint if cfg.checkpoint in BUNDLED else Path(cfg.checkpoint).parent
    if cfg.dataset.startswith("catalog:"):
        catalog = Path(cfg.dataset.split(":")[1])
        return run_dir / f"eval_{catalog.parent.name or catalog.stem}"
    return run_dir / "eval"


def save_gallery(result: SweepResult, images: GalleryImages | None, path: Path, title: str = "",
                 model: torch.nn.Module | None = None) -> None:
    """Render the sweep's gallery images to ``path`` and record the file name in its gallery metadata;
    with ``model``, each face's Grad-CAM map too (``deepshield.explain``)."""
    if images is not None and result.gallery:
        from deepshield.explain import gallery_heatmaps

        heat_clean, heat_adv = (None, None) if model is None else gallery_heatmaps(model, images.clean,
                                                                                    images.adv)
        plot_gallery(images.clean, images.adv, result.gallery, path, title=title, heat_clean=heat_clean,
                     heat_adv=heat_adv)
        result.gallery = result.gallery.with_file(path.name)


def evaluate(cfg: EvalConfig) -> EvalResult:
    """Clean + robust evaluation of one checkpoint, with sanity checks; writes results.json, report.md,
    report.html and PNGs under ``cfg.out`` (default: next to the checkpoint; ``result.out``). With
    ``cfg.cross_dataset``, those datasets are scored too (clean, or swept with ``cfg.cross_sweep``)."""
    start = time.perf_counter()
    check_datasets((cfg.dataset, *cfg.cross_dataset))
    device = select_device(cfg.device)
    model, train_cfg = load_model(cfg.checkpoint, device)
    model = with_ensemble(model, cfg.ensemble, train_cfg.image_size, device)
    spec = cfg.sweep
    data = build_eval_dataset(cfg.dataset, image_size=train_cfg.image_size, n=cfg.n_test, seed=spec.seed,
                              max_videos=cfg.max_videos)
    if len(data) == 0:
        raise DataError(f"dataset {cfg.dataset!r} is empty; check the catalog path and split")
    log = (lambda line: print(line, flush=True)) if cfg.progress else (lambda line: None)
    for name in (cfg.dataset, *cfg.cross_dataset):
        if includes_training_rows(name, train_cfg.dataset):
            log(f"warning: {name} is the training catalog without a held-out split (add :test); "
                "its metrics include faces the checkpoint was trained on")
    if cfg.cross_dataset:
        log(plan_line(cfg, train_cfg.dataset))
    setup = threat_setup(model, cfg, _first_images(data, cfg.batch_size, device))
    swept, images = sweep(setup.scored, data, spec, device, batch_size=cfg.batch_size, progress=cfg.progress,
                          attack_model=setup.attacked, channels=build_channels(cfg.reencode))
    if cfg.surrogate:
        log(f"transfer: crafting on {cfg.surrogate} ...")
        surrogate, surrogate_cfg = load_model(cfg.surrogate, device)
        swept.transfer = transfer_rows(setup.scored, Resized(surrogate, surrogate_cfg.image_size), data, spec,
                                       device, surrogate_name=str(cfg.surrogate), batch_size=cfg.batch_size)
    if cfg.corruptions:
        log("natural corruptions ...")
        swept.corruptions = corruption_rows(setup.scored, data, device, batch_size=cfg.batch_size,
                                            seed=spec.seed)
    checks = list(setup.checks)
    if cfg.sanity:
        log(f"sanity checks on {min(len(data), spec.sanity_n)} images ...")
        checks += sanity_checks(setup.scored, data, spec, swept, device, batch_size=cfg.batch_size,
                                log=log if cfg.progress else None, attack_model=setup.attacked)
    cross = evaluate_cross(setup.scored, cfg, train_cfg, device, log, attack_model=setup.attacked)
    run = cfg.checkpoint if cfg.checkpoint in BUNDLED else Path(cfg.checkpoint).resolve().parent.name
    out = default_out(cfg)
    out.mkdir(parents=True, exist_ok=True)
    if swept.gallery:
        g = swept.gallery
        title = f"{run}: {g.attack} at ε = {eps_label(g.eps, spec.norm)}"
        save_gallery(swept, images, out / "gallery.png", title=title, model=setup.scored)
    result = EvalResult(sweep=swept, checks=checks, run=run, checkpoint=str(cfg.checkpoint),
                        dataset=cfg.dataset, model=train_cfg.backbone, device=str(device),
                        train_config=train_cfg.to_dict(), threat=setup.describe(),
                        seconds=time.perf_counter() - start, created=time.strftime("%Y-%m-%dT%H:%M:%S"),
                        out=out, domain=domain_of(cfg.dataset, train_cfg.dataset), cross=cross)
    write_json(result.to_json(), out / "results.json")
    on = cfg.dataset + (f" and {len(cross)} more dataset(s)" if cross else "")
    write_report({run: result}, out, title=f"deepshield robustness report: {run} on {on}")
    return result


def _first_images(data, batch_size: int, device: torch.device) -> torch.Tensor:
    """Up to ``batch_size`` images of ``data`` (for the randomness check)."""
    from torch.utils.data import DataLoader

    from deepshield.training.loops import split_batch

    x, _, _ = split_batch(next(iter(DataLoader(data, batch_size=min(batch_size, 32), shuffle=False))))
    return x.to(device)
