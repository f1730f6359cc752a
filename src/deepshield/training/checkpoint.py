"""Writing checkpoints: atomic, fsynced, with everything needed for exact resume (RNG states). Reading them
is :mod:`deepshield.models.loading` (``weights_only`` loads)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepshield.io import atomic_write
from deepshield.models.loading import FORMAT


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temp file, fsync, then ``os.replace``: a crash never leaves a torn file."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp), fsync=True)


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) RNG states, in a weights_only-loadable form."""
    py = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = state["numpy"]
    np.random.set_state((np_state[0], np_state[1].numpy().astype(np.uint32), *np_state[2:]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, **payload: Any) -> Path:
    """Write a deepshield checkpoint (model, optimizer, ..., config) atomically."""
    from deepshield import __version__

    return atomic_save({"format": FORMAT, "version": __version__, **payload}, path)
