"""Atomic file output: write beside the target, then move it into place in one ``os.replace``.

A crash or Ctrl-C never leaves a torn file: readers see the old file or the new one.

    >>> write_text_atomic(out / "report.md", text)
    >>> atomic_write(out / "gallery.png", lambda tmp: fig.savefig(tmp, format="png"))
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: str | Path, write: Callable[[Path], None], *, fsync: bool = False) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path`` (same folder, hidden, unique to this
    process), then move it onto ``path``. ``fsync``: also flush file and folder to disk (checkpoints)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        if fsync:
            _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if fsync:
        _fsync(path.parent)
    return path


def write_text_atomic(path: str | Path, text: str, *, fsync: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), fsync=fsync)


def write_json_atomic(path: str | Path, obj: Any, *, indent: int | None = 1) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (``allow_nan`` off: clean NaN first)."""
    return write_text_atomic(path, json.dumps(obj, indent=indent, allow_nan=False))


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if path.is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of :func:`atomic_write`'s temporary files (left by a killed process)."""
    return name.startswith(".") and name.endswith(".tmp")


__all__ = ["atomic_write", "is_temp_name", "write_json_atomic", "write_text_atomic"]
