"""Resume bookkeeping of a preprocess output folder: one part file per finished video.

A video is finished once its part is committed (an atomic rename, after its crops are on disk):
``out/.parts/<hash of its key>.csv`` holds its catalog rows, ``<hash>.error.csv`` the reason it gave no
crop, and ``listing-<shard>.csv`` the files the layout listed but could not use. ``catalog.csv`` and
``errors.csv`` are rebuilt from the parts (:func:`rebuild_outputs`), so a killed run leaves no
half-written row, and a rerun skips what is committed (:func:`pending`). Crops of a video whose part
is not committed are leftovers of a killed run: :func:`clear_crops` removes them, temp files included.

    >>> todo = pending(out, records)
    >>> commit_rows(out, record.key, rows)      # or record_failure(out, record, "no face ...")
    >>> rebuild_outputs(out)                    # (rows, errors) in catalog.csv, errors.csv
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from deepshield.data.catalog import (
    CatalogRow,
    ErrorRow,
    read_catalog,
    read_errors,
    write_catalog,
    write_errors,
)
from deepshield.io import is_temp_name

if TYPE_CHECKING:
    from deepshield.data.layouts import VideoRecord

PARTS = ".parts"  # folder of the part files, under the output folder
_CROP = r"\d+_\d+\.(png|jpg)"  # what crop_name makes


def parts_dir(out: Path) -> Path:
    """``out/.parts``, where the part files are committed."""
    return Path(out) / PARTS


def part_stem(key: str) -> str:
    """File stem of the part of the video ``key`` (dataset/video_id): a hash, as ids may hold slashes."""
    return hashlib.sha1(key.encode()).hexdigest()[:24]


def pending(out: Path, records: Sequence[VideoRecord]) -> list[VideoRecord]:
    """The records whose part (rows or error) is not committed under ``out`` yet, in order."""
    folder = parts_dir(out)
    finished = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    return [r for r in records if not {f"{part_stem(r.key)}.csv", f"{part_stem(r.key)}.error.csv"} & finished]


def commit_rows(out: Path, key: str, rows: Iterable[CatalogRow]) -> None:
    """Commit the catalog rows of the video ``key`` (its crops must be on disk already)."""
    write_catalog(parts_dir(out) / f"{part_stem(key)}.csv", rows)


def record_failure(out: Path, record: VideoRecord, reason: str) -> None:
    """Commit the error part of a video that gave no crops."""
    write_errors(parts_dir(out) / f"{part_stem(record.key)}.error.csv", [ErrorRow(str(record.path), reason)])


def write_listing(out: Path, shard: tuple[int, int] | None, problems: Iterable[ErrorRow]) -> None:
    """Commit the files this shard's layout listed but could not use."""
    tag = "all" if shard is None else f"{shard[0]}of{shard[1]}"
    write_errors(parts_dir(out) / f"listing-{tag}.csv", problems)


def rebuild_outputs(out: str | Path) -> tuple[int, int]:
    """Rewrite ``out/catalog.csv`` and ``out/errors.csv`` from the committed parts; returns their sizes."""
    out = Path(out)
    rows: list[CatalogRow] = []
    errors: list[ErrorRow] = []
    for part in sorted(parts_dir(out).glob("*.csv")):
        if part.name.endswith(".error.csv") or part.name.startswith("listing-"):
            errors.extend(read_errors(part))
        else:
            rows.extend(read_catalog(part))
    write_catalog(out / "catalog.csv", rows)
    write_errors(out / "errors.csv", errors)
    return len(rows), len(errors)


def crop_name(frame_index: int, face_index: int, fmt: str) -> str:
    """File name of a crop in its video's folder: ``000046_0.png``."""
    return f"{frame_index:06d}_{face_index}.{fmt}"


def is_crop_file(name: str) -> bool:
    """Whether ``name`` is a crop, or the temp file of one that a killed writer left behind."""
    if is_temp_name(name):
        return re.match(_CROP + r"\.", name[1:]) is not None  # ".000046_0.png.<pid>.tmp"
    return re.fullmatch(_CROP, name) is not None


def clear_crops(video_dir: Path) -> None:
    """Delete the crops (and crop temp files) in ``video_dir``; other files and folders stay."""
    if video_dir.is_dir():
        for path in video_dir.iterdir():  # only crop files: another video's folder may be nested here
            if path.is_file() and is_crop_file(path.name):
                path.unlink()


__all__ = [
    "PARTS",
    "clear_crops",
    "commit_rows",
    "crop_name",
    "is_crop_file",
    "part_stem",
    "parts_dir",
    "pending",
    "rebuild_outputs",
    "record_failure",
    "write_listing",
]
