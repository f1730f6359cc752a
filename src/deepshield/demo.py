"""``deepshield demo``: synthetic data -> standard and PGD-trained SmallCNN -> robust evaluation -> report."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from deepshield.config import DemoConfig, SweepSpec, TrainConfig
from deepshield.data.datasets import build_eval_dataset
from deepshield.evaluation.checks import format_checks, sanity_checks
from deepshield.evaluation.evaluate import save_gallery
from deepshield.evaluation.formatting import eps_label
from deepshield.evaluation.report import write_json, write_report
from deepshield.evaluation.results import EvalResult
from deepshield.evaluation.robust import sweep
from deepshield.evaluation.tables import summary_table
from deepshield.models.loading import load_model
from deepshield.runtime import select_device
from deepshield.training.trainer import train

DEMO_EPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)


def run_demo(cfg: DemoConfig | None = None, image_size: int = 64) -> dict:
    """Train a standard and a PGD-AT SmallCNN on synthetic data, evaluate both, write metrics.json,
    report.md and robust_accuracy.png under ``out``; returns the metrics."""
    cfg = cfg or DemoConfig()
    out, n_train, n_test, epochs, seed = Path(cfg.out), cfg.n_train, cfg.n_test, cfg.epochs, cfg.seed
    progress = cfg.progress
    start = time.perf_counter()
    base = TrainConfig(dataset="synthetic", backbone="small_cnn", image_size=image_size, n_train=n_train,
                       n_val=300, epochs=epochs, seed=seed, progress=progress)
    runs = {"standard": replace(base, adv="none", out=str(out / "standard")),
            "pgd-at": replace(base, adv="pgd", eps=4 / 255, steps=7, out=str(out / "pgd_at"))}
    device = select_device("auto")
    test = build_eval_dataset("synthetic", image_size=image_size, n=n_test, seed=seed)
    # Square only runs inside the sanity checks here; a smaller budget keeps the demo to minutes on a CPU.
    spec = SweepSpec(attacks=("fgsm", "pgd"), eps=DEMO_EPS, norm="linf", steps=10, seed=seed,
                     square_queries=100, sanity_n=128)
    results = {}
    for name, cfg in runs.items():
        print(f"== training {name} ({cfg.adv}) ==", flush=True)
        trained = train(cfg)
        model, _ = load_model(trained.best_path, device)
        print(f"== evaluating {name} ==", flush=True)
        swept, images = sweep(model, test, spec, device, progress=progress)
        if swept.gallery:
            g = swept.gallery
            save_gallery(swept, images, out / f"gallery_{name}.png",
                         title=f"{name}: {g.attack} at ε = {eps_label(g.eps, spec.norm)}")
        res = EvalResult(sweep=swept, checks=sanity_checks(model, test, spec, swept, device), run=name,
                         checkpoint=str(trained.best_path), dataset="synthetic", model="small_cnn",
                         device=str(device), seconds=swept.seconds, out=out)
        print(format_checks(res.checks), flush=True)
        results[name] = res
    metrics = {"runs": {name: res.to_json() for name, res in results.items()},
               "seconds": time.perf_counter() - start,
               "settings": {"n_train": n_train, "n_test": n_test, "epochs": epochs, "image_size": image_size}}
    write_json(metrics, out / "metrics.json")
    report = write_report(results, out, title="deepshield demo: standard vs PGD adversarial training")
    print(summary_table(results))
    failed = sum(len(r.failed_checks) for r in results.values())
    print(f"\nsanity checks: {'all passed' if not failed else f'{failed} FAILED'}; report: {report}; "
          f"{metrics['seconds']:.0f} s")
    return metrics
