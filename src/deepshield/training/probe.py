"""Measure which precision and memory layout train a model fastest here; cached once per machine.

A *candidate* is a precision (``fp32``, ``bf16``, ``fp16``) and a layout (``channels_last`` or
``contiguous``, i.e. NCHW), named ``"bf16/channels_last"``. :func:`probe` runs, on deep copies of the
model (the run's model is never touched), on one random batch of ``min(batch_size, PROBE_BATCH)``
images at the run's size:

1. **Numerical check** against fp32 (train mode, dropout and drop-path off so that every candidate
   sees the same network): loss and gradients finite, loss within ``LOSS_TOL`` of fp32's (relative,
   at least ``LOSS_TOL`` absolute), gradient cosine similarity to fp32's at least ``GRAD_COS``.
2. **Timing**: ``warmup`` then ``steps`` forward+backward steps (train mode, no optimizer step: the
   optimizer costs the same in every candidate), interleaved across candidates so background load
   hits them all alike; the fastest step's wall-clock and CPU seconds are kept.

:func:`pick` chooses the fastest safe candidate, but keeps the device's prior choice (``preferred``)
unless another is faster by more than ``MARGIN``: on a shared machine small differences are noise.
Results are cached in ``$XDG_CACHE_HOME/deepshield/precision.json`` (default ``~/.cache``) keyed by
CPU model and flags (or GPU name), torch version, threads, device, model, image size and batch size,
so a machine probes a model and size once.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from deepshield.io import write_json_atomic

PROBE_BATCH = 16      # the probe's batch: per-image cost and the ranking barely change above it
LOSS_TOL = 0.05       # relative (and absolute for losses below 1) loss difference to fp32
GRAD_COS = 0.5        # least cosine similarity of all gradients to fp32's (bf16 autocast: 0.82 measured)
MARGIN = 0.10         # another candidate must beat the preferred one by this fraction of its step time
LAYOUTS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_fp16", "amx_tile")


@dataclass
class Measured:
    """One candidate's probe result: seconds per step (fastest wall, fastest CPU) and the fp32 check."""

    seconds: float
    cpu_seconds: float
    loss_diff: float          # |loss - fp32 loss|
    grad_cos: float           # cosine similarity of all parameter gradients to fp32's
    finite: bool
    safe: bool


@dataclass
class ProbeResult:
    """What :func:`probe` measured (``candidates``) and the probe's own cost, as stored in the cache."""

    key: dict
    candidates: dict[str, Measured] = field(default_factory=dict)
    batch: int = 0
    probe_seconds: float = 0.0
    cached: bool = False

    def to_dict(self) -> dict:
        return {"key": self.key, "batch": self.batch, "probe_seconds": round(self.probe_seconds, 2),
                "candidates": {k: asdict(v) for k, v in self.candidates.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> ProbeResult:
        return cls(d["key"], {k: Measured(**v) for k, v in d["candidates"].items()}, d.get("batch", 0),
                   d.get("probe_seconds", 0.0), cached=True)


def split(candidate: str) -> tuple[str, str]:
    """``"bf16/channels_last"`` -> ``("bf16", "channels_last")``."""
    precision, _, layout = candidate.partition("/")
    return precision, layout


def autocast_for(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager]:
    """A no-argument autocast context factory for ``precision`` on ``device`` (fp32: a null context)."""
    if precision == "fp32":
        return contextlib.nullcontext
    return partial(torch.autocast, device.type, dtype=DTYPES[precision])


@lru_cache(maxsize=1)
def cpu_description() -> tuple[str, tuple[str, ...]]:
    """CPU model name and its precision-relevant flags (from /proc/cpuinfo; platform fallback)."""
    name, flags = platform.processor() or platform.machine(), ()
    with contextlib.suppress(OSError):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        name = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), name)
        have = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
        flags = tuple(f for f in CPU_FLAGS if f in have)
    return name, flags


def probe_key(model_name: str, image_size: int, batch_size: int, device: torch.device) -> dict:
    """What a probe result depends on: hardware, torch, threads, device, model, image and batch size."""
    if device.type == "cuda":
        hardware: dict = {"gpu": torch.cuda.get_device_name(device)}
    else:
        cpu, flags = cpu_description()
        hardware = {"cpu": cpu, "flags": list(flags)}
    # str(): a TorchVersion inside a checkpoint would not load with weights_only=True
    return {**hardware, "torch": str(torch.__version__), "threads": torch.get_num_threads(),
            "device": device.type, "model": model_name, "image_size": image_size, "batch_size": batch_size}


def cache_path() -> Path:
    """``$XDG_CACHE_HOME/deepshield/precision.json`` (``~/.cache`` when XDG_CACHE_HOME is unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "deepshield" / "precision.json"


def _digest(key: dict) -> str:
    return hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # missing or torn by hand: probe again
        return {}
    return data if isinstance(data, dict) else {}


def load_cached(key: dict, path: Path | None = None) -> ProbeResult | None:
    entry = _read_cache(path or cache_path()).get(_digest(key))
    try:
        return ProbeResult.from_dict(entry) if entry else None
    except (KeyError, TypeError):  # an entry of an older format
        return None


def store(result: ProbeResult, path: Path | None = None) -> None:
    """Merge ``result`` into the cache file (atomic write; a cache that cannot be written is skipped)."""
    path = path or cache_path()
    data = _read_cache(path)
    data[_digest(result.key)] = result.to_dict()
    with contextlib.suppress(OSError):
        write_json_atomic(path, data)


def _no_dropout(model: nn.Module) -> None:
    """Train mode with dropout and drop-path off: every candidate then computes the same function."""
    model.train()
    for m in model.modules():
        if "Drop" in type(m).__name__:  # nn.Dropout*, timm's DropPath / DropBlock2d
            m.eval()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step(model: nn.Module, autocast, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    with autocast():
        loss = F.cross_entropy(model(x).float(), y)
    loss.backward()
    return loss.detach()


def _grads(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.detach().float().flatten() for p in model.parameters() if p.grad is not None])


def _check(model: nn.Module, autocast, x, y, ref: tuple[float, torch.Tensor] | None):
    """(loss, gradient vector, loss_diff, grad_cos, finite) of one step against ``ref`` (fp32)."""
    _no_dropout(model)
    loss = float(_step(model, autocast, x, y))
    grads = _grads(model)
    finite = bool(torch.isfinite(torch.tensor(loss)) and torch.isfinite(grads).all())
    if ref is None:
        return loss, grads, 0.0, 1.0, finite
    ref_loss, ref_grads = ref
    cos = float(F.cosine_similarity(grads, ref_grads, dim=0)) if finite else float("nan")
    return loss, grads, abs(loss - ref_loss), cos, finite


def _is_safe(loss_diff: float, grad_cos: float, finite: bool, ref_loss: float) -> bool:
    return finite and loss_diff <= LOSS_TOL * max(1.0, abs(ref_loss)) and grad_cos >= GRAD_COS


def _batch(image_size: int, batch_size: int, device: torch.device, seed: int):
    batch = max(2, min(batch_size, PROBE_BATCH))
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, image_size, image_size, generator=gen).to(device)
    return x, (torch.arange(batch) % 2).to(device)


def interleaved(steps_by_name: dict[str, Callable[[], object]], device: torch.device, steps: int,
                warmup: int) -> dict[str, tuple[float, float]]:
    """(fastest wall s, fastest CPU s) per step of each callable, one of each per round after ``warmup``.

    The fastest, not the median: other jobs only ever add time, so the minimum of a few steps is the
    steadiest estimate of what a step costs on a shared machine.
    """
    wall: dict[str, list[float]] = {k: [] for k in steps_by_name}
    cpu: dict[str, list[float]] = {k: [] for k in steps_by_name}
    for i in range(warmup + steps):
        for name, step in steps_by_name.items():
            _sync(device)
            t, ct = time.perf_counter(), time.process_time()
            step()
            _sync(device)
            if i >= warmup:
                wall[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - ct)
    return {k: (min(wall[k]), min(cpu[k])) for k in steps_by_name}


def probe(model: nn.Module, candidates: Sequence[str], key: dict, device: torch.device, image_size: int,
          batch_size: int, steps: int = 2, warmup: int = 1, seed: int = 0) -> ProbeResult:
    """Check and time every candidate (see the module docstring) on copies of ``model``."""
    start = time.perf_counter()
    x, y = _batch(image_size, batch_size, device, seed)
    copies = {c: copy.deepcopy(model).to(memory_format=LAYOUTS[split(c)[1]]) for c in candidates}
    casts = {c: autocast_for(device, split(c)[0]) for c in candidates}
    # The fp32 reference: an fp32 candidate when there is one, else one more copy.
    ref_name = next((c for c in candidates if split(c)[0] == "fp32"), None)
    ref_model = copies[ref_name] if ref_name else copy.deepcopy(model)
    ref_loss, ref_grads, *_ = _check(ref_model, contextlib.nullcontext, x, y, None)
    checks = {}
    for c in candidates:
        if c == ref_name:
            checks[c] = (0.0, 1.0, bool(torch.isfinite(ref_grads).all()))
        else:
            _, _, diff, cos, finite = _check(copies[c], casts[c], x, y, (ref_loss, ref_grads))
            checks[c] = (diff, cos, finite)
    del ref_grads, ref_model
    for m in copies.values():
        m.train()
    steps_by_name = {c: partial(_step, copies[c], casts[c], x, y) for c in candidates}
    timed = interleaved(steps_by_name, device, steps, warmup)
    result = ProbeResult(key, batch=len(y))
    for c in candidates:
        diff, cos, finite = checks[c]
        result.candidates[c] = Measured(*timed[c], diff, cos, finite, _is_safe(diff, cos, finite, ref_loss))
    result.probe_seconds = time.perf_counter() - start
    return result


def probe_threads(model: nn.Module, candidate: str, thread_counts: Sequence[int], device: torch.device,
                  image_size: int, batch_size: int, steps: int = 2, warmup: int = 1,
                  seed: int = 0) -> dict[int, float]:
    """Fastest seconds per step of ``candidate`` at each intra-op thread count (left at the first).

    Not cached: on a machine shared with other jobs, threads that wait for a descheduled sibling at
    every parallel region (OpenMP spin-waiting) can make 2 threads several times slower than 1, and
    that depends on the load of the moment, not on the machine.
    """
    x, y = _batch(image_size, batch_size, device, seed)
    precision, layout = split(candidate)
    net = copy.deepcopy(model).to(memory_format=LAYOUTS[layout]).train()
    cast = autocast_for(device, precision)

    def at(n: int) -> None:
        torch.set_num_threads(n)
        _step(net, cast, x, y)

    try:
        timed = interleaved({str(n): partial(at, n) for n in thread_counts}, device, steps, warmup)
    finally:
        torch.set_num_threads(thread_counts[0])
    return {int(n): t[0] for n, t in timed.items()}


def pick(result: ProbeResult, allowed: Sequence[str], preferred: str) -> str | None:
    """The fastest safe candidate among ``allowed``; ``preferred`` unless beaten by more than ``MARGIN``.

    None when no allowed candidate was measured safe.
    """
    safe = {c: m for c, m in result.candidates.items() if c in allowed and m.safe}
    if not safe:
        return None
    fastest = min(safe, key=lambda c: safe[c].seconds)
    if preferred in safe and safe[fastest].seconds > (1 - MARGIN) * safe[preferred].seconds:
        return preferred
    return fastest


def summary(result: ProbeResult, chosen: str) -> str:
    """One log line: the choice, each candidate's images/s (and why an unsafe one was refused)."""
    parts = []
    for c, m in sorted(result.candidates.items(), key=lambda kv: kv[1].seconds):
        rate = f"{result.batch / m.seconds:.1f} img/s"
        parts.append(f"{c} {rate}" + ("" if m.safe else
                                      f" (refused: loss diff {m.loss_diff:.3g}, grad cos {m.grad_cos:.3f})"))
    origin = "cached" if result.cached else f"probe took {result.probe_seconds:.1f} s"
    return (f"precision/layout {chosen} chosen by measurement ({origin}; batch {result.batch}, "
            f"{result.key.get('threads')} threads): " + ", ".join(parts))
