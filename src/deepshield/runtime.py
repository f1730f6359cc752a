"""Torch helpers every floor shares: the device to run on, P(fake) from logits, module modes.

    >>> device = select_device("auto")                # cuda when available, else cpu
    >>> with eval_mode(model):                          # every submodule's own mode is restored after
    ...     p = fake_probs(model, x)                    # [N] P(fake), x in [0, 1]

Importing this module does not import torch (``predict`` with ONNX Runtime never loads it); each helper
imports it when called.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn


def select_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU; or an explicit torch device string."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def probs_of(logits: torch.Tensor) -> torch.Tensor:
    """P(fake) = softmax(logits)[:, 1] (float32) for logits [N, 2]."""
    import torch

    return torch.softmax(logits.float(), 1)[:, 1]


def fake_probs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """P(fake) of ``model`` for a batch ``x`` in [0, 1], without gradients."""
    import torch

    with torch.no_grad():
        return probs_of(model(x))


@contextlib.contextmanager
def kept_modes(model: nn.Module) -> Iterator[nn.Module]:
    """Run the block with ``model``; every submodule's train/eval mode is restored after, even on error."""
    modes = [m.training for m in model.modules()]
    try:
        yield model
    finally:
        for m, mode in zip(model.modules(), modes, strict=True):
            m.training = mode


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode for the block; every submodule's own mode is restored after."""
    with kept_modes(model):
        yield model.eval()


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch ops on one thread (restored after).

    Per-image ops are tiny: on the training process's thread pool (workers=0) each one pays a
    multi-thread fork/join that costs more than the op itself, up to ~30x on a busy machine.
    DataLoader workers already run single-threaded. A no-op while torch is not loaded (nothing to run).
    """
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def cpu_threads() -> int:
    """Threads a CPU runtime should use: torch's setting when torch is loaded, else the usable cores."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return int(torch.get_num_threads())
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def torch_threads(n: int) -> None:
    """Set torch's intra-op threads if torch is loaded (a process that never loads it has none to set)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)


def _malloc_trim():
    """glibc's ``malloc_trim``, or None (macOS, Windows, musl: nothing to call)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_MALLOC_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Hand the C heap's free pages back to the OS (glibc only; a no-op elsewhere).

    ``serve`` calls it after every job and ``predict DIR`` after every file. Measured (issue 23,
    benchmarks/serve_soak.py): a job's frames, MTCNN pyramids and Grad-CAM tensors are
    freed when it ends, but glibc keeps the freed pages in its per-thread arenas, so the server's RSS grew
    from 0.8 GB to 1.7-1.8 GB within 10-15 FF++ clips. ``malloc_trim(0)`` after each job returns them
    (0.9 GB between jobs) and costs a few ms."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


__all__ = ["cpu_threads", "eval_mode", "fake_probs", "kept_modes", "probs_of", "release_freed_memory",
           "select_device", "single_thread", "torch_threads"]
