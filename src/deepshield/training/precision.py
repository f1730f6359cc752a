"""Mixed precision and CPU threads for a run: which autocast context, whether a GradScaler is used.

Choice (``cfg.amp``: None = auto, True = on, False = fp32):

- **CUDA**: bf16 autocast without a scaler where the GPU has bf16 (Ampere and newer), else fp16
  autocast + GradScaler. bf16 is preferred because it has fp32's exponent range: the attacks of
  adversarial training take gradients with respect to the *input* (``torch.autograd.grad``), which no
  GradScaler scales, and small fp16 gradients would underflow to zero and silently weaken PGD; on
  those GPUs bf16 and fp16 tensor cores run at the same rate. TF32 matmuls and cuDNN autotuning are on.
- **CPU**: auto keeps fp32 unless the probe measures bf16 clearly faster, which it tries only on CPUs
  with native bf16 arithmetic (AVX512-BF16 or AMX; elsewhere bf16 is emulated and slower). Without the
  probe (``--no-probe``, short runs) it is fp32: bf16 was slower for EfficientNet-Lite0 even with native
  bf16, and it rounds away part of a 1/255 training perturbation. ``amp=True`` forces bf16.

Autocast only touches matmul/conv inputs: pixels, Normalize, losses (computed on ``logits.float()``)
and input gradients stay fp32, so the attacks run unchanged inside ``precision.autocast()``.

**Chosen by measurement.** Given the run's model, :func:`build_precision` does not trust the rule
above alone. On CPU it first times the rule's choice with all intra-op threads and with one
(:func:`choose_threads`; not cached, as it depends on the load: on a 2-core machine shared with other
jobs, OpenMP threads spin-waiting for a descheduled sibling made 2 threads 3x slower than 1). Then it
times a few forward+backward steps of each precision it may use (auto: fp32 and the
rule's low precision, where the rule offers one; ``--amp``/``--no-amp``: that precision only) in both
memory layouts (channels_last, NCHW) and keeps the fastest that passes a numerical check against fp32
(``deepshield.training.probe``; cached per machine, model, image and batch size). The rule's choice
in channels_last stays unless another candidate is clearly faster. The probe is skipped (the rule
and channels_last apply) for ``--smoke`` and ``--no-probe`` runs, models under ``MIN_PARAMS``
parameters, runs shorter than ``MIN_STEPS`` optimizer steps (a few seconds of probing cannot pay
back), DDP (every rank must agree), and devices other than CPU and CUDA. On a CPU without native
bf16, auto probes fp32 only (emulated bf16 is slower and would slow the probe). An explicit
OMP_NUM_THREADS fixes the threads. A resumed run reuses the choice recorded in its config.json.

``--compile`` wraps the training forward in ``torch.compile`` (see :func:`compile_model`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from deepshield.config import TrainConfig
from deepshield.training import probe as probing

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
MIN_PARAMS = 1_000_000   # smaller models (small_cnn) are dominated by overheads: nothing to choose
MIN_STEPS = 100          # shorter runs cannot pay back a probe of ~20 steps


@dataclass
class Precision:
    autocast: Callable[[], contextlib.AbstractContextManager]
    scaler: torch.amp.GradScaler | None
    name: str                       # fp32 | bf16 | fp16
    threads: int | None = None      # torch intra-op threads set for a CPU run
    layout: str = "channels_last"   # channels_last | contiguous (NCHW): the model's memory format
    how: str = "rule"               # rule | forced (--amp, no probe) | measured | cached
    record: dict | None = None      # what was measured (config.json's "precision"), None without a probe
    message: str | None = None      # the run log's line about the choice

    def apply_layout(self, model: nn.Module) -> nn.Module:
        """``model`` in this run's memory format (in place; parameters keep their identity)."""
        return model.to(memory_format=probing.LAYOUTS[self.layout])

    def to_dict(self) -> dict:
        """The choice as recorded in the run's config.json (and checkpoints)."""
        return {"precision": self.name, "layout": self.layout, "how": self.how, "threads": self.threads,
                **({"probe": self.record} if self.record else {})}


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (x86 AVX512-BF16 or AMX-BF16; read from /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cuda_has_bf16() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def choose_precision(device_type: str, amp: bool | None, cpu_bf16: bool, cuda_bf16: bool) -> str:
    """``fp32``, ``bf16`` or ``fp16`` for a device type and ``amp`` setting (see the module docstring)."""
    if amp is False:
        return "fp32"
    if device_type == "cuda":
        return "bf16" if cuda_bf16 else "fp16"
    if device_type == "cpu":
        # Without a measurement, fp32: even with native bf16, EfficientNet-Lite0's depthwise convolutions
        # train slower in bf16 on CPU, and bf16 keeps 8 significant bits: the first convolution sees bright
        # normalized pixels in steps of 0.5-0.9/255, so a training attack at eps <= 1/255 is partly rounded
        # away (RESULTS.md's frontier: pgd-1 vs pgd-1-fp32). The probe still times bf16 where it is native.
        return "bf16" if amp else "fp32"
    return "fp32"  # other backends (mps, xpu): fp32 until measured


def configure_threads(workers: int = 0) -> int:
    """Set torch's intra-op threads for CPU training: the usable cores minus DataLoader workers (>= 1).

    An explicit OMP_NUM_THREADS wins. Returns the thread count in effect.
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    # torch's default is the physical core count; hyper-threads do not speed up oneDNN/MKL kernels.
    threads = max(1, min(_default_threads(), cores) - max(0, workers))
    torch.set_num_threads(threads)
    return threads


@lru_cache(maxsize=1)
def _default_threads() -> int:
    return torch.get_num_threads()


def low_precision(device: torch.device, amp: bool | None) -> str | None:
    """The low precision a run may use: bf16 on CPU (auto: only with native bf16), bf16/fp16 on CUDA."""
    if amp is False:
        return None
    if device.type == "cuda":
        return "bf16" if cuda_has_bf16() else "fp16"
    if device.type == "cpu" and (amp or cpu_has_native_bf16()):
        return "bf16"
    return None


def probe_candidates(device: torch.device, amp: bool | None) -> list[str]:
    """``precision/layout`` names the probe times for ``amp`` (None auto, True/False forced)."""
    low = low_precision(device, amp)
    precisions = [low or "fp32"] if amp else ["fp32"] + ([low] if low else [])
    return [f"{p}/{layout}" for p in precisions for layout in probing.LAYOUTS]


def should_probe(cfg: TrainConfig, model: nn.Module | None, device: torch.device,
                 total_steps: int | None) -> str | None:
    """Why the probe is skipped (see the module docstring), or None to probe."""
    if model is None:
        return "no model given (DDP or a caller without one)"
    if cfg.smoke or not getattr(cfg, "probe", True):
        return "smoke run" if cfg.smoke else "--no-probe"
    if device.type not in ("cpu", "cuda"):
        return f"{device.type} device"
    if (params := sum(p.numel() for p in model.parameters())) < MIN_PARAMS:
        return f"small model ({params:,} parameters)"
    if total_steps is not None and total_steps < MIN_STEPS:
        return f"short run ({total_steps} steps)"
    return None


def build_precision(cfg: TrainConfig, device: torch.device, model: nn.Module | None = None,
                    total_steps: int | None = None, recorded: dict | None = None) -> Precision:
    """Autocast context, GradScaler, layout and CPU threads for ``device`` (see the module docstring).

    With ``model`` (the run's, built at ``cfg.image_size``), threads, precision and layout are measured
    unless :func:`should_probe` says why not; the model itself is not changed (see
    :meth:`Precision.apply_layout`). ``recorded`` (a resumed run's :meth:`Precision.to_dict`) is reused
    as it is, so that a resumed run computes exactly what the interrupted one would have.
    """
    if recorded:
        return from_record(recorded, device)
    cuda_bf16 = device.type == "cuda" and cuda_has_bf16()
    name = choose_precision(device.type, cfg.amp, cpu_has_native_bf16(), cuda_bf16)
    threads = None
    if device.type == "cpu":
        threads = configure_threads(getattr(cfg, "workers", 0))
    elif device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # fixed input size: autotune conv algorithms once
    layout, how, record = "channels_last", "rule" if cfg.amp is None else "forced", None
    skip = should_probe(cfg, model, device, total_steps)
    message = f"precision {name}/{layout} by rule (no probe: {skip})"
    if skip is None:
        thread_note, thread_times = "", {}
        if threads is not None and threads > 1 and not os.environ.get("OMP_NUM_THREADS"):
            threads, thread_times = choose_threads(model, cfg, device, f"{name}/{layout}", threads)
            thread_note = f"; {threads} thread(s) by measurement (" + ", ".join(
                f"{n}: {t:.2f} s/step" for n, t in thread_times.items()) + ", not cached: load-dependent)"
        result, chosen = measure(model, cfg, device, preferred=f"{name}/{layout}")
        if chosen is None:
            message = f"precision probe: no candidate passed the fp32 check; {name}/{layout} by rule"
        else:
            name, layout = probing.split(chosen)
            how, message = ("cached" if result.cached else "measured"), probing.summary(result, chosen)
        message += thread_note
        record = {**result.to_dict(), **({"threads_s_per_step": thread_times} if thread_times else {})}
    if device.type == "cpu" and getattr(cfg, "workers", 0) > 0:
        message += (f"; {cfg.workers} DataLoader worker(s) leave the model {threads} thread(s) (on a few "
                    "cores --workers 0 is usually faster: cached crops load in ~1-5 ms each)")
    return _precision(name, device, threads, layout, how, record, message)


def choose_threads(model: nn.Module, cfg: TrainConfig, device: torch.device, candidate: str,
                   threads: int) -> tuple[int, dict[int, float]]:
    """``threads`` or 1, whichever trains ``candidate`` faster now (1 only when faster by ``MARGIN``).

    Sets torch's intra-op threads to the choice; returns it and the seconds per step measured.
    """
    times = probing.probe_threads(model, candidate, [threads, 1], device, cfg.image_size, cfg.batch_size,
                                  seed=cfg.seed)
    chosen = 1 if times[1] < (1 - probing.MARGIN) * times[threads] else threads
    torch.set_num_threads(chosen)
    return chosen, times


def from_record(recorded: dict, device: torch.device) -> Precision:
    """The :class:`Precision` a run recorded in its config.json (threads set again on CPU)."""
    threads = recorded.get("threads")
    if device.type == "cpu" and threads:
        torch.set_num_threads(int(threads))
    message = (f"precision {recorded['precision']}/{recorded['layout']}, {threads} thread(s): as recorded "
               f"when the run started ({recorded.get('how', 'rule')})")
    return _precision(recorded["precision"], device, threads, recorded["layout"], recorded.get("how", "rule"),
                      recorded.get("probe"), message)


def recorded_precision(out: Path) -> dict | None:
    """The precision record in ``out/config.json`` of an earlier start of this run, if any."""
    try:
        return json.loads((Path(out) / "config.json").read_text()).get("precision")
    except (OSError, ValueError, AttributeError):
        return None


def measure(model: nn.Module, cfg: TrainConfig, device: torch.device,
            preferred: str) -> tuple[probing.ProbeResult, str | None]:
    """The probe's result for this run (from the cache when it has every candidate) and its pick."""
    candidates = probe_candidates(device, cfg.amp)
    key = probing.probe_key(cfg.backbone, cfg.image_size, cfg.batch_size, device)
    result = probing.load_cached(key)
    if result is None or not set(candidates) <= set(result.candidates):
        result = probing.probe(model, candidates, key, device, cfg.image_size, cfg.batch_size, seed=cfg.seed)
        probing.store(result)
    return result, probing.pick(result, candidates, preferred)


def _precision(name: str, device: torch.device, threads: int | None, layout: str, how: str,
               record: dict | None, message: str) -> Precision:
    scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None
    return Precision(probing.autocast_for(device, name), scaler, name, threads, layout, how, record, message)


def compile_model(model: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile(model)`` when ``enabled`` (``--compile``), else ``model``.

    Compiling costs minutes on a few CPU cores before the first step and again whenever the model's
    mode changes (attacks switch to eval): see benchmarks/train_throughput.py for when it pays.
    """
    return torch.compile(model) if enabled else model
