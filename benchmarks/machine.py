"""The machine line every benchmark prints with its ratios: architecture, torch threads, CPU flags."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def machine_line() -> str:
    """``x86_64, 2 torch threads, flags: avx2 avx512f avx512_bf16`` (flags from /proc/cpuinfo)."""
    have: list[str] = []
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        have = next((ln.split(":", 1)[1].split() for ln in cpuinfo.read_text().splitlines()
                     if ln.startswith("flags")), [])
    flags = " ".join(f for f in FLAGS if f in have) or "unknown"
    return f"{platform.machine()}, {torch.get_num_threads()} torch threads, flags: {flags}"
