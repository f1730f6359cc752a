"""Who is who across videos, and group-disjoint folds of a catalog for cross-validation.

A person can appear in more videos than the ``source_video`` link says: an FF++ face swap ``A_B`` shows
target ``A``'s video with ``B``'s face, so ``A``, ``B``, ``A_B`` and ``B_A`` are one identity group.
:func:`identity_groups` joins every video with the people it shows (union-find), so validation holdouts
and folds never put one person on both sides.

    >>> folds = assign_folds(read_catalog("ffpp/catalog.csv"), k=3)         # {video_key: fold}
    >>> write_folds(["ffpp/catalog.csv", "ffpp_extra/catalog.csv"], k=3, out="folds")
    >>> # folds/fold0/catalog.csv: fold 0 is "test", the other folds "train" with a "val" holdout
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from deepshield.data.catalog import CatalogRow, read_catalog, video_key, write_catalog
from deepshield.errors import ConfigError, DataError
from deepshield.io import write_text_atomic

VAL_FRACTION = 0.2
FFPP_PAIR_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")


def people(row: CatalogRow) -> list[str]:
    """Keys of the people a row's video shows beyond its own group: both ids of an FF++ ``A_B`` fake (its
    target's real video and its source's), both actors of a DeepFakeDetection fake."""
    if row.dataset != "ffpp" or row.label == 0:
        return []
    group, _, rest = row.video_id.partition("/")
    comp, _, stem = rest.partition("/")
    if group in FFPP_PAIR_METHODS and stem.count("_") == 1:
        return [video_key("ffpp", f"youtube/{comp}/{i}") for i in stem.split("_")]
    if group == "DeepFakeDetection" and "__" in stem:
        return [f"ffpp/actor/{a}" for a in stem.split("__")[0].split("_")]
    return []


def identity_groups(rows: Iterable[CatalogRow]) -> dict[str, str]:
    """``{video_key: group}``: videos that share a person (by ``group_key`` or :func:`people`) share a
    group, named by its smallest key."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    videos: dict[str, str] = {}
    for r in rows:
        if r.video_key in videos:
            continue
        videos[r.video_key] = r.group_key
        union(r.video_key, r.group_key)
        for person in people(r):
            union(r.video_key, person)
    return {key: find(key) for key in videos}


def holdout_videos(rows: Sequence[CatalogRow], fraction: float = VAL_FRACTION, seed: int = 0,
                   tries: int = 100) -> set[str]:
    """Video keys for validation: about ``fraction`` of the videos, whole source groups, seeded.

    Videos that share a person form one group (:func:`identity_groups`: a fake and the real video it was
    made from, and an FF++ swap's source person too); groups are drawn in a seeded random order until
    ``fraction`` of the videos are taken. The first of ``tries`` orders that leaves both classes on both
    sides is used (when the data allows it).
    """
    label = {r.video_key: r.label for r in rows}
    group_of = identity_groups(rows)
    groups: dict[str, list[str]] = defaultdict(list)
    for key in sorted(label):
        groups[group_of[key]].append(key)
    names = sorted(groups)
    target = max(1, round(fraction * len(label)))
    rng = np.random.default_rng(seed)
    first: set[str] | None = None
    for _ in range(tries):
        val: set[str] = set()
        for g in rng.permutation(len(names)):
            if len(val) >= target:
                break
            val.update(groups[names[g]])
        first = first if first is not None else val
        train = set(label) - val
        if all({label[k] for k in side} == {0, 1} for side in (val, train)):
            return val
    return first or set()


def assign_folds(rows: Sequence[CatalogRow], k: int, seed: int = 0) -> dict[str, int]:
    """``{video_key: fold}``: ``k`` folds of whole identity groups, as even in videos (then fakes) as the
    groups allow; groups are placed largest first, ties in a seeded order."""
    if k < 2:
        raise ConfigError(f"folds: k must be >= 2, got {k}")
    group_of = identity_groups(rows)
    label = {r.video_key: r.label for r in rows}
    members: dict[str, list[str]] = defaultdict(list)
    for key, group in sorted(group_of.items()):
        members[group].append(key)
    if len(members) < k:
        raise DataError(f"folds: {len(members)} identity group(s) cannot fill {k} folds; use fewer folds")
    rng = np.random.default_rng(seed)
    names = [sorted(members)[i] for i in rng.permutation(len(members))]
    names.sort(key=lambda g: -len(members[g]))  # stable: seeded order among equal sizes
    size, fakes = [0] * k, [0] * k
    fold_of: dict[str, int] = {}
    for group in names:
        f = min(range(k), key=lambda i: (size[i], fakes[i], i))
        size[f] += len(members[group])
        fakes[f] += sum(label[v] for v in members[group])
        fold_of.update((v, f) for v in members[group])
    return fold_of


def write_folds(catalogs: Sequence[str | Path], k: int, out: str | Path, *, val_fraction: float = 0.2,
                seed: int = 0) -> list[Path]:
    """Write ``out/fold{i}/catalog.csv`` for i < k: the rows of ``catalogs`` (one dataset's parts, e.g. two
    FF++ folders), fold i as split ``test`` and the other folds ``train`` with a ``val`` holdout of about
    ``val_fraction`` of their videos (whole identity groups); and ``out/all/catalog.csv``, every video
    ``train`` or ``val`` (a model to ship, once the folds have measured its recipe). Crop paths point back
    to the crops; the ``preprocess.json`` of the catalogs (which must agree) is copied beside each.
    Returns the paths."""
    out = Path(out)
    rows, settings = _gather(catalogs)
    fold_of = assign_folds(rows, k, seed)
    written, summary = [], {}
    for i in [*range(k), -1]:
        fold_dir = out / (f"fold{i}" if i >= 0 else "all")
        fold_dir.mkdir(parents=True, exist_ok=True)
        rest = [r for r in rows if fold_of[r.video_key] != i]
        val = holdout_videos(rest, val_fraction, seed)
        split = {key: "test" if f == i else "val" if key in val else "train" for key, f in fold_of.items()}
        fold_rows = [_moved(r, fold_dir, split[r.video_key]) for r in rows]
        write_catalog(fold_dir / "catalog.csv", fold_rows)
        if settings is not None:
            write_text_atomic(fold_dir / "preprocess.json", settings)
        summary[fold_dir.name] = {s: len({r.video_key for r in fold_rows if r.split == s})
                               for s in ("train", "val", "test")}
        written.append(fold_dir / "catalog.csv")
    info = {"catalogs": [str(c) for c in catalogs], "k": k, "seed": seed, "val_fraction": val_fraction,
            "videos": summary, "fold_of": fold_of}
    write_text_atomic(out / "folds.json", json.dumps(info, indent=2, sort_keys=True))
    return written


def _gather(catalogs: Sequence[str | Path]) -> tuple[list[CatalogRow], str | None]:
    """Rows of every catalog with absolute crop paths, and the one preprocess.json text they share."""
    if not catalogs:
        raise ConfigError("folds: give at least one catalog")
    rows: list[CatalogRow] = []
    settings: dict[str, str] = {}
    seen: dict[str, Path] = {}
    for catalog in catalogs:
        catalog = Path(catalog)
        base = catalog.parent.resolve()
        part = [replace(r, path=str(base / r.path)) for r in read_catalog(catalog)]
        for key in sorted({r.video_key for r in part}):
            if key in seen:
                raise DataError(f"folds: video {key} is in both {seen[key]} and {catalog}; give each "
                                "dataset folder once")
            seen[key] = catalog
        rows += part
        pre = catalog.parent / "preprocess.json"
        if pre.is_file():
            settings[str(catalog)] = pre.read_text(encoding="utf-8")
    if settings and len({_crop_key(t) for t in settings.values()}) > 1:
        raise DataError(f"folds: the catalogs were cut with different crop settings ({', '.join(settings)}); "
                        "preprocess them with the same --margin/--shift/--size")
    return rows, next(iter(settings.values()), None)


def _crop_key(text: str) -> str:
    """The crop settings of a preprocess.json without where it was read from and written to."""
    data = json.loads(text)
    return json.dumps({k: v for k, v in data.items() if k not in ("root", "out", "workers", "shard",
                                                                   "progress", "split_ratios", "splits")},
                      sort_keys=True)


def _moved(row: CatalogRow, fold_dir: Path, split: str) -> CatalogRow:
    return replace(row, path=os.path.relpath(row.path, fold_dir.resolve()), split=split)


__all__ = ["VAL_FRACTION", "assign_folds", "holdout_videos", "identity_groups", "people", "write_folds"]
