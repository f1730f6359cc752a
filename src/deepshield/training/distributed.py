"""DDP through torchrun: process-group setup, rank helpers, and gathering predictions.

``torchrun --nproc_per_node N -m deepshield train ...`` sets RANK/WORLD_SIZE/LOCAL_RANK; without
them everything here is a no-op single process. Backend: nccl on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the torchrun process group if launched by torchrun; pin each rank to its GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def device_for(info: DistInfo, device: torch.device) -> torch.device:
    """Each rank's own GPU (cuda:LOCAL_RANK), or the CPU."""
    return torch.device("cuda", info.local_rank) if device.type == "cuda" and info.enabled else device


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DDP (attacks run on it, so no gradient sync is triggered)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def all_reduce_mean(values: dict[str, float], weight: float, info: DistInfo) -> dict[str, float]:
    """Weighted mean of scalar metrics over ranks (weight: the rank's sample count)."""
    if not info.enabled:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] * weight for k in keys] + [weight], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(t[i] / t[-1]) for i, k in enumerate(keys)}


def gather_arrays(indices: np.ndarray, *arrays: np.ndarray, info: DistInfo) -> tuple[np.ndarray, ...]:
    """Gather per-rank (index, values...) shards into full arrays ordered by index, duplicates dropped."""
    if not info.enabled:
        return arrays
    shards: list = [None] * info.world_size
    dist.all_gather_object(shards, (indices, *arrays))
    idx = np.concatenate([s[0] for s in shards])
    order = np.unique(idx, return_index=True)[1]
    return tuple(np.concatenate([s[i + 1] for s in shards])[order] for i in range(len(arrays)))


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
