"""Torch helpers every floor shares: the device to run on, P(fake) from logits, module modes.

    >>> device = select_device("auto")                # cuda when available, else cpu
    >>> with eval_mode(model):                          # every submodule's own mode is restored after
    ...     p = fake_probs(model, x)                    # [N] P(fake), x in [0, 1]
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def select_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU; or an explicit torch device string."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def probs_of(logits: torch.Tensor) -> torch.Tensor:
    """P(fake) = softmax(logits)[:, 1] (float32) for logits [N, 2]."""
    return torch.softmax(logits.float(), 1)[:, 1]


@torch.no_grad()
def fake_probs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """P(fake) of ``model`` for a batch ``x`` in [0, 1], without gradients."""
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
    DataLoader workers already run single-threaded.
    """
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


__all__ = ["eval_mode", "fake_probs", "kept_modes", "probs_of", "select_device", "single_thread"]
