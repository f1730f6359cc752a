r"""Training throughput: our trainer (its measured precision and layout) vs a plain fp32 loop; crops.

1. Models (same model, batch and in-memory data for every variant): images/s of a training step
   (forward, backward, AdamW) for
   - ``plain``: fp32, NCHW weights and inputs, a hand-written PyTorch loop (``torch.optim.AdamW``);
   - ``trainer``: what ``deepshield train`` does: ``build_model``, ``build_precision`` with the run's
     model (precision and layout by measurement: the probe's line is printed, with what it cost; a
     fresh probe in a temporary cache unless ``--use-cache``), ``build_optimizer``, run by ``train_epoch``;
   - ``trainer+compile`` (``--compile``): the same under ``torch.compile``; its first step (the
     compilation) is reported apart, with the number of steps it takes to pay for itself.
   Steps are interleaved (one of each variant per round) and the median step time is kept, so load
   from other processes hits all variants alike; wall and CPU seconds (all threads of this process,
   less disturbed by other jobs) are both reported, with the load average before and after.
2. Data: images/s reading a catalog's crops through ``FaceCatalogDataset`` (no augmentation, and with
   the training augmentation) decoding PNG or JPEG files every epoch vs reading the memory-mapped
   cache filled in the first epoch. The crops are cut from ../shared/data/dev by ``deepshield
   preprocess`` unless ``--catalog`` is given.

Prints tables and the machine line; asserts nothing.

    python benchmarks/train_throughput.py --skip-data        # EfficientNet-Lite0, 128 px, batch 64
    python benchmarks/train_throughput.py --skip-data --models resnet50 --image-size 224 --batch-size 32
    python benchmarks/train_throughput.py --skip-models --catalog faces/catalog.csv
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from machine import machine_line  # noqa: E402
from PIL import Image  # noqa: E402

from deepshield.config import TrainConfig  # noqa: E402
from deepshield.data.catalog import read_catalog, write_catalog  # noqa: E402
from deepshield.data.datasets import FaceCatalogDataset  # noqa: E402
from deepshield.data.transforms import build_train_transform  # noqa: E402
from deepshield.models import build_model  # noqa: E402
from deepshield.training.loops import train_epoch  # noqa: E402
from deepshield.training.objectives import build_objective  # noqa: E402
from deepshield.training.optim import build_optimizer  # noqa: E402
from deepshield.training.precision import build_precision, compile_model, cpu_has_native_bf16  # noqa: E402

DEV_FFPP = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev" / "ffpp"
PLAIN = "plain fp32 NCHW"


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def _interleaved(variants: dict[str, Callable[[], None]], steps: int,
                 warmup: int) -> dict[str, tuple[float, float, list[float]]]:
    """Per variant: (median wall s, median CPU s, all wall s) per step; one step of each per round."""
    for step in variants.values():
        for _ in range(warmup):
            step()
    wall: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(steps):
        for label, step in variants.items():
            t, c = time.perf_counter(), time.process_time()
            step()
            wall[label].append(time.perf_counter() - t)
            cpu[label].append(time.process_time() - c)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k]), wall[k]) for k in variants}


def _plain(name: str, size: int, x, y, threads: int) -> Callable[[], None]:
    torch.manual_seed(0)
    model = build_model(name, image_size=size).to(memory_format=torch.contiguous_format).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step() -> None:
        torch.set_num_threads(threads)  # threads are per process: each variant sets its own
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def _trainer(name: str, cfg: TrainConfig, x, y, compile_: bool = False):
    """The trainer's step for ``name`` (precision and layout as ``deepshield train`` chooses them)."""
    torch.manual_seed(0)
    model = build_model(name, image_size=cfg.image_size)
    prec = build_precision(cfg, torch.device("cpu"), model, total_steps=10**6)
    prec.apply_layout(model)
    opt = build_optimizer(model, cfg)
    net = compile_model(model, compile_)
    objective = build_objective("none")

    def step() -> None:
        torch.set_num_threads(prec.threads)
        train_epoch(net, [(x, y)], objective, opt, torch.device("cpu"), autocast=prec.autocast,
                    progress=False)

    return step, prec


def bench_models(names: list[str], size: int, batch: int, steps: int, warmup: int, compile_: bool) -> None:
    torch.manual_seed(0)
    x, y = torch.rand(batch, 3, size, size), torch.arange(batch) % 2
    default = torch.get_num_threads()
    print(f"\n## Training step, {size} px, batch {batch}, torch default {default} threads, "
          f"CPU native bf16: {cpu_has_native_bf16()}; load average {_load()}", flush=True)
    for name in names:
        cfg = TrainConfig(backbone=name, image_size=size, batch_size=batch, lr=1e-3)
        torch.set_num_threads(default)
        t = time.perf_counter()
        trainer_step, prec = _trainer(name, cfg, x, y)
        print(f"{name}: {prec.message} [{time.perf_counter() - t:.1f} s to build and probe]", flush=True)
        label = f"trainer ({prec.name}, {prec.layout}, {prec.threads} thr)"
        variants = {f"{PLAIN}, {default} thr": _plain(name, size, x, y, default)}
        if prec.threads != default:  # the same threads as the trainer: what precision and layout bring
            variants[f"{PLAIN}, {prec.threads} thr"] = _plain(name, size, x, y, prec.threads)
        variants[label] = trainer_step
        if compile_:
            step, _ = _trainer(name, cfg, x, y, compile_=True)
            t = time.perf_counter()
            step()
            print(f"{name}: torch.compile: first step (compiling) {time.perf_counter() - t:.0f} s",
                  flush=True)
            variants[label + " + compile"] = step
        med = _interleaved(variants, steps, warmup)
        wall0, cpu0, _ = next(iter(med.values()))
        print(f"{'model':<22}{'variant':<44}{'img/s':>8}{'s/step':>8}{'vs plain':>10}{'CPU s':>8}"
              f"{'vs plain':>10}  wall s per round")
        for variant, (wall, cpu, rounds) in med.items():
            print(f"{name:<22}{variant:<44}{batch / wall:>8.1f}{wall:>8.2f}{wall0 / wall:>9.2f}x{cpu:>8.2f}"
                  f"{cpu0 / cpu:>9.2f}x  " + " ".join(f"{r:.2f}" for r in rounds), flush=True)
        same = med[f"{PLAIN}, {prec.threads} thr"]
        print(f"{name}: trainer vs plain fp32 NCHW at the same {prec.threads} thread(s): "
              f"{same[0] / med[label][0]:.2f}x wall, {same[1] / med[label][1]:.2f}x CPU "
              "(precision and layout alone)", flush=True)
    torch.set_num_threads(default)
    print(f"load average after: {_load()}")


def make_catalog(out: Path, size: int, frames: int) -> Path:
    from deepshield.data.preprocess import PreprocessConfig, run_preprocess

    print(f"\ncutting {frames} face crops of {size} px per dev video (deepshield preprocess) ...", flush=True)
    t = time.perf_counter()
    run_preprocess(PreprocessConfig(root=DEV_FFPP, layout="ffpp", out=out, frames_per_video=frames, size=size,
                                    max_side=320), progress=False)
    print(f"done in {time.perf_counter() - t:.0f} s")
    return out / "catalog.csv"


def jpeg_copy(catalog: Path, quality: int = 95) -> Path:
    """The same crops re-saved as JPEG, with their own catalog beside the PNG one."""
    rows = read_catalog(catalog)
    new = []
    for r in rows:
        path = str(Path(r.path).with_suffix(".jpg"))
        Image.open(catalog.parent / r.path).convert("RGB").save(catalog.parent / path, quality=quality)
        new.append(replace(r, path=path))
    out = catalog.with_name("catalog_jpeg.csv")
    write_catalog(out, new)
    return out


def _epoch_rate(ds: FaceCatalogDataset, epoch: int) -> float:
    ds.set_epoch(epoch)
    t = time.perf_counter()
    for i in range(len(ds)):
        ds[i]
    return len(ds) / (time.perf_counter() - t)


def bench_data(catalog: Path, size: int, epochs: int, cache_root: Path) -> None:
    print(f"\n## Data pipeline: {catalog} at {size} px, median of {epochs} epochs, one process")
    print(f"{'crops':<7}{'augment':<9}{'decode img/s':>14}{'cache img/s':>13}{'cache vs decode':>17}")
    for label, cat in (("png", catalog), ("jpeg", jpeg_copy(catalog))):
        for augment in (False, True):
            transform = build_train_transform(size) if augment else None
            decode = FaceCatalogDataset(cat, image_size=size, transform=transform)
            cached = FaceCatalogDataset(cat, image_size=size, transform=transform,
                                        cache_dir=cache_root / f"{label}{augment}")
            _epoch_rate(cached, 0)  # the first epoch decodes and fills the cache
            rates = {"decode": [], "cache": []}
            for e in range(1, epochs + 1):  # interleaved epochs
                rates["decode"].append(_epoch_rate(decode, e))
                rates["cache"].append(_epoch_rate(cached, e))
            assert cached.cache.complete
            d, c = statistics.median(rates["decode"]), statistics.median(rates["cache"])
            print(f"{label:<7}{'train' if augment else 'none':<9}{d:>14.0f}{c:>13.0f}{c / d:>16.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tf_efficientnet_lite0",
                    help="comma-separated (default: the bundled model's EfficientNet-Lite0)")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5, help="timed rounds (one step of each variant per round)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="also time the trainer under torch.compile")
    ap.add_argument("--use-cache", action="store_true",
                    help="use this machine's precision cache (default: probe afresh in a temporary one)")
    ap.add_argument("--catalog", type=Path, default=None, help="a catalog.csv (default: cut from dev data)")
    ap.add_argument("--frames", type=int, default=4, help="crops per dev video when cutting them")
    ap.add_argument("--epochs", type=int, default=5, help="timed epochs over the crops")
    ap.add_argument("--skip-models", action="store_true")
    ap.add_argument("--skip-data", action="store_true")
    args = ap.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.use_cache:
            os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "xdg")
        if not args.skip_models:
            models = [m for m in args.models.split(",") if m]
            bench_models(models, args.image_size, args.batch_size, args.steps, args.warmup, args.compile)
        if not args.skip_data:
            catalog = args.catalog or make_catalog(Path(tmp) / "faces", args.image_size, args.frames)
            bench_data(catalog, args.image_size, args.epochs, Path(tmp) / "cache")
    print(f"\n{machine_line()}; {time.perf_counter() - start:.0f} s in all (timings are noisy on a shared "
          "machine: compare the ratios, and the CPU-time ones when the load average is high)")


if __name__ == "__main__":
    main()
