"""Mixed precision and CPU threads for a run: which autocast context, whether a GradScaler is used.

Choice (``cfg.amp``: None = auto, True = on, False = fp32):

- **CUDA**: bf16 autocast without a scaler where the GPU has bf16 (Ampere and newer), else fp16
  autocast + GradScaler. bf16 is preferred because it has fp32's exponent range: the attacks of
  adversarial training take gradients with respect to the *input* (``torch.autograd.grad``), which no
  GradScaler scales, and small fp16 gradients would underflow to zero and silently weaken PGD; on
  those GPUs bf16 and fp16 tensor cores run at the same rate. TF32 matmuls and cuDNN autotuning are on.
- **CPU**: auto uses bf16 only on CPUs with native bf16 arithmetic (AVX512-BF16 or AMX); elsewhere
  (e.g. AVX2-only) bf16 is emulated and measured slower than fp32 (see benchmarks/train_throughput.py),
  so auto keeps fp32. ``amp=True`` forces bf16 anyway.

Autocast only touches matmul/conv inputs: pixels, Normalize, losses (computed on ``logits.float()``)
and input gradients stay fp32, so the attacks run unchanged inside ``precision.autocast()``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial

import torch

from deepshield.config import TrainConfig

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Precision:
    autocast: Callable[[], contextlib.AbstractContextManager]
    scaler: torch.amp.GradScaler | None
    name: str                       # fp32 | bf16 | fp16
    threads: int | None = None      # torch intra-op threads set for a CPU run


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
        return "bf16" if amp or cpu_bf16 else "fp32"
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


def build_precision(cfg: TrainConfig, device: torch.device) -> Precision:
    """Autocast context + GradScaler for ``device`` (see the module docstring); sets CPU threads."""
    cuda_bf16 = device.type == "cuda" and cuda_has_bf16()
    name = choose_precision(device.type, cfg.amp, cpu_has_native_bf16(), cuda_bf16)
    threads = None
    if device.type == "cpu":
        threads = configure_threads(getattr(cfg, "workers", 0))
    elif device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # fixed input size: autotune conv algorithms once
    if name == "fp32":
        return Precision(contextlib.nullcontext, None, name, threads)
    autocast = partial(torch.autocast, device.type, dtype=_DTYPES[name])
    scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None
    return Precision(autocast, scaler, name, threads)
