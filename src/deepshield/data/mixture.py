"""Train on several datasets at once: ``--dataset mix:MIXTURE.yaml``.

A mixture file names its parts, each a ``deepshield preprocess`` catalog with its own share of every
epoch's samples, so 24 FF++ reals are not drowned by 12,000 DFDC reals::

    samples_per_epoch: 6000          # optional; default: the parts' own sizes added up
    parts:
      - name: dfdc
        catalog: runs/results/faces/catalog.csv
        weight: 1                    # share of the epoch: weight / sum of weights
      - name: ffpp
        catalog: runs/cross/folds/fold0/catalog.csv
        weight: 1
        balance: methods             # none | labels | methods (half reals; fakes even across methods)
      - name: sbi
        catalog: runs/results/faces/catalog.csv
        pseudo_fakes: sbi            # this part's fakes are self-blended from its reals
        weight: 0.5

Each part is split as ``catalog:PATH`` is (its ``train``/``val`` rows, else a group holdout), so splits stay
group-disjoint within each dataset; its ``test`` rows are never trained on. Validation is every part's
validation set. The parts' crop settings must agree (one model crops one way in ``predict``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import ConcatDataset, Dataset

from deepshield.config import TrainConfig
from deepshield.config.learn import read_yaml
from deepshield.contracts.crops import CropSettings
from deepshield.errors import ConfigError, DataError

BALANCES = ("none", "labels", "methods")
# Crop settings that change what a crop looks like (how frames are sampled may differ between parts).
CROP_GEOMETRY = ("detector", "margin", "shift", "size", "min_score", "faces", "max_side", "min_face_size")


class MixtureError(ConfigError):
    """A mixture file that cannot be used; the message names the file, the part and the fix."""


@dataclass(frozen=True)
class MixturePart:
    """One dataset of a mixture: a catalog, its share of the epoch and how its samples are drawn."""

    name: str
    catalog: str
    weight: float = 1.0
    balance: str = "none"               # none | labels | methods
    pseudo_fakes: str | None = None     # e.g. sbi: the part's fakes are made from its reals
    pseudo_fake_ratio: float = 1.0


@dataclass(frozen=True)
class Mixture:
    """Parts of a mixture and the number of training samples drawn per epoch (None: the parts' sizes)."""

    parts: tuple[MixturePart, ...]
    samples_per_epoch: int | None = None
    path: str = ""


def load_mixture(path: str | Path) -> Mixture:
    """A mixture YAML file -> :class:`Mixture`; a :class:`MixtureError` naming the problem otherwise."""
    path = Path(path)
    data = read_yaml(path, "mixture", MixtureError,
                     "--dataset mix:FILE.yaml names a mixture file (see recipes/mixtures/)")
    if not isinstance(data, dict) or not isinstance(data.get("parts"), list) or not data["parts"]:
        raise MixtureError(f"mixture {path}: expected a mapping with a non-empty 'parts' list")
    unknown = set(data) - {"parts", "samples_per_epoch"}
    if unknown:
        raise MixtureError(f"mixture {path}: unknown key(s) {sorted(unknown)}; use parts, samples_per_epoch")
    parts = tuple(_part(path, i, p) for i, p in enumerate(data["parts"]))
    names = [p.name for p in parts]
    if len(set(names)) < len(names):
        raise MixtureError(f"mixture {path}: part names must be unique, got {names}")
    n = data.get("samples_per_epoch")
    if n is not None and (not isinstance(n, int) or n < 1):
        raise MixtureError(f"mixture {path}: samples_per_epoch must be a positive integer, got {n!r}")
    return Mixture(parts, n, str(path))


def _part(path: Path, i: int, raw: Any) -> MixturePart:
    names = {f.name for f in fields(MixturePart)}
    if not isinstance(raw, dict) or "catalog" not in raw:
        raise MixtureError(f"mixture {path}: part {i + 1} needs at least 'catalog: PATH'")
    unknown = set(raw) - names
    if unknown:
        raise MixtureError(f"mixture {path}: part {i + 1}: unknown key(s) {sorted(unknown)}; "
                           f"valid: {', '.join(sorted(names))}")
    part = MixturePart(**{"name": f"part{i + 1}", **raw})
    if part.balance not in BALANCES:
        raise MixtureError(f"mixture {path}: part {part.name}: balance {part.balance!r}; choose from "
                           f"{', '.join(BALANCES)}")
    if not part.weight > 0:
        raise MixtureError(f"mixture {path}: part {part.name}: weight must be > 0, got {part.weight}")
    return part


class MixtureDataset(Dataset):
    """Training items drawn from several datasets by weight, re-drawn each epoch (:meth:`set_epoch`).

    Part j gets ``round(samples_per_epoch * w_j / sum(w))`` items per epoch, drawn with replacement from
    that epoch's items of the part: uniformly (``none``), half reals and half fakes (``labels``), or half
    reals and the fakes evenly across methods (``methods``). Items are the parts' own
    ``(image, label, video_id)``.
    """

    def __init__(self, parts: Sequence[tuple[MixturePart, Dataset]], samples_per_epoch: int | None = None,
                 seed: int = 0) -> None:
        self.parts, self.seed = list(parts), seed
        total = samples_per_epoch or sum(len(ds) for _, ds in self.parts)
        weights = np.array([p.weight for p, _ in self.parts], dtype=float)
        self.counts = np.round(total * weights / weights.sum()).astype(int)
        self.notes = [f"mixture: {', '.join(self._describe(j) for j in range(len(self.parts)))} "
                      f"({int(self.counts.sum())} samples per epoch)"]
        for _, ds in self.parts:
            self.notes += list(getattr(ds, "notes", []))
        self.epoch = -1
        self.set_epoch(0)

    def _describe(self, j: int) -> str:
        part, ds = self.parts[j]
        return f"{part.name} {self.counts[j]} ({part.balance}; {len(ds)} items)"

    def set_epoch(self, epoch: int) -> None:
        """Let every part draw its epoch, then draw this epoch's items from them."""
        self.epoch = epoch
        rng = np.random.default_rng([self.seed, epoch, 91])
        index = []
        for j, (part, ds) in enumerate(self.parts):
            if hasattr(ds, "set_epoch"):
                ds.set_epoch(epoch)
            strata = _strata(ds, part.balance)
            sizes = _split(int(self.counts[j]), [share for _, share in strata])
            for (stratum, _), n in zip(strata, sizes, strict=True):
                index += [(j, int(i)) for i in rng.choice(stratum, size=n, replace=True)]
        self.index = index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> Any:
        j, pos = self.index[i]
        ds = self.parts[j][1]
        if hasattr(ds, "finish") and hasattr(ds, "row_videos"):  # a catalog part: augment by this position,
            row = int(ds.index[pos])                            # so an item drawn twice differs
            return ds.finish(ds.load_uint8(row), i), int(ds.labels[row]), ds.row_videos[row]
        return ds[pos]


def _split(n: int, shares: list[float]) -> list[int]:
    """``n`` split by ``shares`` (summing to 1) into integers that add up to ``n`` (largest remainders)."""
    exact = np.asarray(shares) * n
    counts = np.floor(exact).astype(int)
    for i in np.argsort(counts - exact)[: n - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def _strata(ds: Dataset, balance: str) -> list[tuple[np.ndarray, float]]:
    """(item positions, share of the part's samples) of a part's current epoch."""
    everything = [(np.arange(len(ds)), 1.0)]
    if balance == "none":
        return everything
    labels, methods = _item_labels(ds)
    reals, fakes = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    if not len(reals) or not len(fakes):
        return everything
    if balance == "labels":
        return [(reals, 0.5), (fakes, 0.5)]
    kinds = sorted({methods[i] for i in fakes})
    return [(reals, 0.5)] + [(np.array([i for i in fakes if methods[i] == m]), 0.5 / len(kinds))
                             for m in kinds]


def _item_labels(ds: Dataset) -> tuple[np.ndarray, list[str]]:
    """Label and method of each item of a part's current epoch: a catalog dataset's rows, or a pseudo-fake
    wrapper's plan (its pseudo-fakes are fakes of their own method)."""
    if hasattr(ds, "items") and hasattr(ds, "base"):
        base, plan = ds.base, np.asarray(ds.items)
        labels = (plan[:, 1] != 0).astype(np.int64)
        methods = [ds.method if kind not in (0, 1) else base.video_methods[base.row_videos[row]]
                   for row, kind in plan]
        return labels, methods
    rows = np.asarray(ds.index)
    return ds.labels[rows], [ds.video_methods[ds.row_videos[r]] for r in rows]


Pair = tuple[Dataset, Dataset]


def build_mixture(arg: str | None, cfg: TrainConfig, build_part: Callable[[str, TrainConfig], Pair]) -> Pair:
    """(train, val) of ``mix:FILE``: each part built by ``build_part`` (``catalog:PATH`` training data with
    the part's pseudo-fake settings and its own cache folder), then mixed by weight."""
    if not arg:
        raise MixtureError("mix dataset needs a file: --dataset mix:recipes/mixtures/NAME.yaml")
    mixture = load_mixture(arg)
    cache_root = Path(cfg.cache_dir or Path(cfg.out) / "cache")
    train_parts, vals = [], []
    for part in mixture.parts:
        part_cfg = replace(cfg, dataset=f"catalog:{part.catalog}", pseudo_fakes=part.pseudo_fakes,
                           pseudo_fake_ratio=part.pseudo_fake_ratio, cache_dir=str(cache_root / part.name))
        try:
            train, val = build_part(part.catalog, part_cfg)
        except (ConfigError, DataError) as err:  # one line naming the part
            raise MixtureError(f"mixture {arg}: part {part.name}: {err}") from None
        train_parts.append((part, train))
        vals.append(val)
    return MixtureDataset(train_parts, mixture.samples_per_epoch, cfg.seed), ConcatDataset(vals)


def mixture_test(arg: str | None, build_test: Callable[[str], Dataset]) -> Dataset:
    """Every part's ``test`` split (``build_test`` of ``PATH:test``), one dataset; parts without test rows
    are left out."""
    mixture = load_mixture(arg or "")
    tests = []
    for part in mixture.parts:
        if part.pseudo_fakes:
            continue
        try:
            tests.append(build_test(f"{part.catalog}:test"))
        except DataError:
            continue
    if not tests:
        raise MixtureError(f"mixture {arg}: no part has test rows")
    return ConcatDataset(tests)


def mixture_crop_settings(arg: str, settings_of: Callable[[str], CropSettings | None]) -> CropSettings | None:
    """The one crop setting of a mixture's parts (video parts' frame sampling first); a MixtureError when
    the parts were cut differently."""
    mixture = load_mixture(arg)
    found = [(p.name, s) for p in mixture.parts if (s := settings_of(f"catalog:{p.catalog}")) is not None]
    if not found:
        return None
    geometry = {tuple(getattr(s, k) for k in CROP_GEOMETRY) for _, s in found}
    if len(geometry) > 1:
        shown = "; ".join(f"{n}: margin {s.margin}, shift {s.shift}, size {s.size}" for n, s in found)
        raise MixtureError(f"mixture {arg}: the parts were cropped differently ({shown}); preprocess them "
                           "with the same --margin/--shift/--size")
    videos = [s for _, s in found if s.fps is not None or s.frames_per_video is not None]
    return replace((videos or [found[0][1]])[0], layout=None)


__all__ = ["BALANCES", "Mixture", "MixtureDataset", "MixtureError", "MixturePart", "build_mixture",
           "load_mixture", "mixture_crop_settings", "mixture_test"]
