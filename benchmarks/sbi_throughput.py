r"""Throughput of training with self-blended pseudo-fakes (SBI) vs plain loading of the catalog's crops.

Same number of items either way, from the memory-mapped crop cache (warmed first), same augmentation:

- ``plain``: N real and N fake crops of the catalog (what a standard run loads);
- ``sbi``: the same N reals, each also turned into a pseudo-fake in the DataLoader workers
  (:class:`deepshield.data.pseudo_fakes.PseudoFakeDataset`, ratio 1).

Two measures, each the median of ``--repeats`` alternating passes (so background load hits both alike):
images/s of the loader alone, and images/s of training (the loader feeding EfficientNet-Lite0 steps at
the same size). Prints a table, the ratios sbi / plain and the machine line; asserts nothing. The target
is a training ratio >= 0.7.

    python benchmarks/sbi_throughput.py [--catalog runs/results/faces/catalog.csv] [--n 256] \
        [--image-size 128] [--workers 2] [--augment platform] [--train-batches 6] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from machine import machine_line
from torch.utils.data import DataLoader

from deepshield.data.catalog import read_catalog
from deepshield.data.datasets import FaceCatalogDataset
from deepshield.data.landmarks import cached_landmarks
from deepshield.data.pseudo_fakes import PseudoFakeDataset
from deepshield.data.transforms import build_augment
from deepshield.models import build_model

ROOT = Path(__file__).resolve().parents[1]


def _loader(ds, workers: int, batch: int) -> DataLoader:
    return DataLoader(ds, batch_size=batch, shuffle=False, num_workers=workers,
                      persistent_workers=False, drop_last=True)


def _images_per_s(ds, workers: int, batch: int, step=None, batches: int | None = None) -> float:
    loader = _loader(ds, workers, batch)
    start, n = time.perf_counter(), 0
    for i, (x, y, _) in enumerate(loader):
        if step is not None:
            step(x, y)
        n += len(x)
        if batches is not None and i + 1 >= batches:
            break
    return n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--catalog", default=str(ROOT / "runs/results/faces/catalog.csv"))
    p.add_argument("--sidecar", default=str(ROOT / "runs/results/sbi-cache/landmarks.npz"),
                   help="landmarks cache to reuse (missing crops are detected with MTCNN)")
    p.add_argument("--n", type=int, default=256, help="real crops (and as many fakes for plain)")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--augment", default="platform")
    p.add_argument("--train-batches", type=int, default=6)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    catalog = Path(args.catalog)
    if not catalog.is_file():
        raise SystemExit(f"{catalog}: not found; build it with `make results` (its preprocess stage) or pass "
                         "--catalog")
    rows = [r for r in read_catalog(catalog) if r.split == "train"]
    reals = [r for r in rows if r.label == 0][: args.n]
    fakes = [r for r in rows if r.label == 1][: args.n]
    size, tmp = args.image_size, tempfile.mkdtemp(prefix="sbi_bench_")
    common = dict(image_size=size, frames_per_video=None, cache_dir=tmp,
                  transform=build_augment(args.augment, size))
    plain = FaceCatalogDataset(catalog, rows=reals + fakes, **common)
    base = FaceCatalogDataset(catalog, rows=reals, **common)
    points = cached_landmarks([base.paths[i] for i in range(len(reals))], args.sidecar, show_progress=False)
    sbi = PseudoFakeDataset(base, points, ratio=1.0)
    for ds in (plain, base):  # warm the cache: both variants then read decoded crops
        for i in range(len(ds.rows)):
            ds.load_uint8(i)
        ds.set_epoch(0)
    sbi.set_epoch(0)

    model = build_model("tf_efficientnet_lite0", num_classes=2, image_size=size)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(x, y) -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y).backward()
        opt.step()

    results: dict[str, dict[str, list[float]]] = {k: {"loader": [], "train": []} for k in ("plain", "sbi")}
    for _ in range(args.repeats):
        for name, ds in (("plain", plain), ("sbi", sbi)):
            results[name]["loader"].append(_images_per_s(ds, args.workers, args.batch_size))
            results[name]["train"].append(_images_per_s(ds, args.workers, args.batch_size, step,
                                                        args.train_batches))
            print(f"  pass {name}: loader {results[name]['loader'][-1]:.1f} img/s, "
                  f"train {results[name]['train'][-1]:.1f} img/s", flush=True)
    med = {k: {m: statistics.median(v) for m, v in r.items()} for k, r in results.items()}
    print(f"{len(sbi)} items per pass ({len(reals)} reals), {size} px, augment {args.augment}, "
          f"{args.workers} workers, batch {args.batch_size}; median of {args.repeats} alternating passes")
    print(f"{'':8} {'loader img/s':>13} {'train img/s':>12}")
    for k in ("plain", "sbi"):
        print(f"{k:8} {med[k]['loader']:13.1f} {med[k]['train']:12.1f}")
    print(f"ratio sbi/plain: loader {med['sbi']['loader'] / med['plain']['loader']:.2f}, "
          f"training {med['sbi']['train'] / med['plain']['train']:.2f} (target >= 0.70)")
    skipped = int((~np.isfinite(points).all(axis=(1, 2))).sum())
    print(f"{skipped} of {len(reals)} reals without landmarks (not blended)")
    print(f"machine: {machine_line()}")


if __name__ == "__main__":
    main()
