"""Datasets by spec string: ``synthetic`` or ``catalog:PATH[:split]``; a registry maps the scheme."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.data import Dataset

from deepshield.data.synthetic import SyntheticDeepfakeDataset

DatasetPair = tuple[Dataset, Dataset]


def _synthetic(arg: str | None, cfg: Any) -> DatasetPair:
    size = getattr(cfg, "image_size", 64)
    seed = getattr(cfg, "seed", 0)
    return (SyntheticDeepfakeDataset(cfg.n_train, image_size=size, seed=seed),
            SyntheticDeepfakeDataset(cfg.n_val, image_size=size, seed=seed + 10_000))


DATASETS: dict[str, Callable[[str | None, Any], DatasetPair]] = {"synthetic": _synthetic}


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``"catalog:faces/catalog.csv:test"`` -> ("catalog", "faces/catalog.csv:test")."""
    scheme, _, arg = spec.partition(":")
    if scheme not in DATASETS:
        raise ValueError(f"unknown dataset {spec!r}; use one of {sorted(DATASETS)} "
                         "(e.g. --dataset synthetic or --dataset catalog:faces/catalog.csv)")
    return scheme, arg or None


def build_datasets(cfg: Any) -> DatasetPair:
    """(train, validation) datasets for a training config."""
    scheme, arg = parse_spec(cfg.dataset)
    return DATASETS[scheme](arg, cfg)


def build_eval_dataset(spec: str, image_size: int, n: int = 1000, seed: int = 0) -> Dataset:
    """The dataset an evaluation runs on: synthetic test images (a seed unseen in training) or a catalog."""
    scheme, arg = parse_spec(spec)
    if scheme == "synthetic":
        return SyntheticDeepfakeDataset(n, image_size=image_size, seed=seed + 20_000)
    return EVAL_DATASETS[scheme](arg, image_size)


EVAL_DATASETS: dict[str, Callable[[str | None, int], Dataset]] = {}
