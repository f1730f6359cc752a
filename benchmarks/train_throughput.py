r"""Training throughput: our trainer's defaults vs a plain fp32 NCHW loop, and cached vs decoded crops.

1. Models (same model, batch and in-memory data for every variant): images/s of a training step
   (forward, backward, AdamW) for
   - ``plain``: fp32, NCHW weights and inputs, a hand-written PyTorch loop;
   - ``default``: what ``deepshield train`` does by default: ``build_model`` (channels_last) and
     ``build_precision(amp=None)`` (auto: bf16 only on CPUs with native bf16), run by the trainer's
     ``train_epoch``;
   The variants' steps are interleaved and the median step time is kept, so load from other
   processes hits all of them alike. A separate, smaller check times forced bf16 autocast against fp32
   (both through the trainer), which is what auto precision decides on.
2. Data: images/s reading a catalog's crops through ``FaceCatalogDataset`` (no augmentation, and with
   the training augmentation) decoding PNG or JPEG files every epoch vs reading the memory-mapped
   cache filled in the first epoch. The crops are cut from ../shared/data/dev by ``deepshield
   preprocess`` unless ``--catalog`` is given.

Prints tables; asserts nothing.

    python benchmarks/train_throughput.py [--models resnet50,efficientnet_b0] [--image-size 224] \
        [--batch-size 16] [--steps 3] [--bf16-size 64] [--catalog faces/catalog.csv] [--epochs 5] \
        [--skip-models] [--skip-data]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from deepshield.config import TrainConfig
from deepshield.data.catalog import read_catalog, write_catalog
from deepshield.data.datasets import FaceCatalogDataset
from deepshield.data.transforms import build_train_transform
from deepshield.models import build_model
from deepshield.training.loops import train_epoch
from deepshield.training.objectives import build_objective
from deepshield.training.precision import build_precision, cpu_has_native_bf16

DEV_FFPP = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev" / "ffpp"


def _plain_step(model, opt, x, y) -> None:
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    opt.step()


def _interleaved(variants: dict, steps: int, warmup: int) -> dict[str, float]:
    """Median seconds per step of each variant; steps interleaved so background load hits all alike."""
    for step in variants.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(steps):
        for label, step in variants.items():
            t = time.perf_counter()
            step()
            times[label].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def _trainer_step(name: str, prec, x, y):
    model = build_model(name)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    objective = build_objective("none")
    return lambda: train_epoch(model, [(x, y)], objective, opt, torch.device("cpu"), autocast=prec.autocast,
                               scaler=prec.scaler, progress=False)


def _plain_step_fn(name: str, x, y):
    model = build_model(name).to(memory_format=torch.contiguous_format).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    return lambda: _plain_step(model, opt, x, y)


def bench_models(names: list[str], size: int, batch: int, steps: int, warmup: int) -> None:
    torch.manual_seed(0)
    x, y = torch.rand(batch, 3, size, size), torch.arange(batch) % 2
    auto = build_precision(TrainConfig(amp=None), torch.device("cpu"))
    print(f"\n## Training step, {size} px, batch {batch}, {torch.get_num_threads()} threads, "
          f"CPU native bf16: {cpu_has_native_bf16()}; auto precision here: {auto.name}")
    print(f"{'model':<18}{'variant':<36}{'img/s':>8}{'s/step':>9}{'vs plain':>10}")
    for name in names:
        label = f"trainer default ({auto.name}, channels_last)"
        variants = {"plain fp32 NCHW": _plain_step_fn(name, x, y), label: _trainer_step(name, auto, x, y)}
        med = _interleaved(variants, steps, warmup)
        base = med["plain fp32 NCHW"]
        for variant, sec in med.items():
            print(f"{name:<18}{variant:<36}{batch / sec:>8.1f}{sec:>9.2f}{base / sec:>9.2f}x", flush=True)


def bench_bf16(name: str, size: int, batch: int, steps: int, warmup: int) -> None:
    """Forced bf16 autocast vs fp32, both channels_last through the trainer (small: bf16 may crawl)."""
    torch.manual_seed(0)
    x, y = torch.rand(batch, 3, size, size), torch.arange(batch) % 2
    cpu = torch.device("cpu")
    fp32, bf16 = build_precision(TrainConfig(amp=False), cpu), build_precision(TrainConfig(amp=True), cpu)
    med = _interleaved({"fp32": _trainer_step(name, fp32, x, y), "bf16": _trainer_step(name, bf16, x, y)},
                       steps, warmup)
    print(f"\n## bf16 check ({name}, {size} px, batch {batch}, channels_last, trainer step): "
          f"fp32 {batch / med['fp32']:.1f} img/s, bf16 {batch / med['bf16']:.1f} img/s, "
          f"bf16/fp32 speed {med['fp32'] / med['bf16']:.2f}x", flush=True)


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
    ap.add_argument("--models", default="resnet50,efficientnet_b0")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per variant (after warm-up)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--bf16-size", type=int, default=64,
                    help="image size of the forced-bf16 check (0: skip; bf16 is emulated on CPUs without it)")
    ap.add_argument("--bf16-batch", type=int, default=4)
    ap.add_argument("--catalog", type=Path, default=None, help="a catalog.csv (default: cut from dev data)")
    ap.add_argument("--frames", type=int, default=4, help="crops per dev video when cutting them")
    ap.add_argument("--epochs", type=int, default=5, help="timed epochs over the crops")
    ap.add_argument("--skip-models", action="store_true")
    ap.add_argument("--skip-data", action="store_true")
    args = ap.parse_args()
    if not args.skip_models:
        models = [m for m in args.models.split(",") if m]
        bench_models(models, args.image_size, args.batch_size, args.steps, args.warmup)
        if args.bf16_size:
            bench_bf16(models[-1], args.bf16_size, args.bf16_batch, args.steps, args.warmup)
    if not args.skip_data:
        with tempfile.TemporaryDirectory() as tmp:
            catalog = args.catalog or make_catalog(Path(tmp) / "faces", args.image_size, args.frames)
            bench_data(catalog, args.image_size, args.epochs, Path(tmp) / "cache")


if __name__ == "__main__":
    main()
