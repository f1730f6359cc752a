"""The face catalog: ``catalog.csv`` schema, read/validate, atomic write, and merging shards.

## `catalog.csv`

One row per face crop written by `deepshield preprocess`; the file sits at the root of the output folder.

| column | type | meaning |
| --- | --- | --- |
| `path` | str | crop image relative to catalog.csv's folder: `ffpp/Deepfakes/c23/519_515/000046_0.png` |
| `label` | 0/1 | 0 = real, 1 = fake |
| `dataset` | str | `ffpp`, `celebdf`, `dfdc`, or the folder name for `--layout folder` |
| `video_id` | str | unique within the dataset; path-like (`Deepfakes/c23/519_515`) |
| `method` | str | manipulation (`Deepfakes`, `Face2Face`, ...); `original` if real; `unknown` if not known |
| `compression` | str | `raw`/`c23`/`c40` for FF++, empty where the dataset does not say |
| `split` | str | `train`, `val`, `test` or `unassigned` |
| `frame_index` | int >= 0 | frame number in presentation order |
| `timestamp_s` | float >= 0 | seconds from the first frame |
| `face_index` | int >= 0 | 0 for `--faces largest`; the track of the face across frames for `--faces all` |
| `score` | float in [0, 1] | detector confidence |
| `x0,y0,x1,y1` | float | detected face box in pixels of the upright source frame (before the crop margin) |
| `source_video` | str | `video_id` of the real video it was made from (itself if real); empty if unknown |

A video's key is `dataset/video_id` (:func:`video_key`), unique across datasets and shards; a video's
group (a real video and the fakes made from it) is keyed by :func:`group_key`.

Rows are sorted by dataset, video_id, frame_index, face_index. Videos that produced no crop are listed
in `errors.csv` beside it, with columns `path` (the source file) and `reason` (one line).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from deepshield.errors import DataError
from deepshield.io import write_text_atomic

COLUMNS = (
    "path",
    "label",
    "dataset",
    "video_id",
    "method",
    "compression",
    "split",
    "frame_index",
    "timestamp_s",
    "face_index",
    "score",
    "x0",
    "y0",
    "x1",
    "y1",
    "source_video",
)
ERROR_COLUMNS = ("path", "reason")
SPLITS = ("train", "val", "test", "unassigned")


class CatalogError(DataError):
    """A catalog or errors file that breaks the schema; the message names file, line, column and fix."""


def video_key(dataset: str, video_id: str) -> str:
    """``"<dataset>/<video_id>"``: the one key of a video, unique across datasets (shards, catalogs)."""
    return f"{dataset}/{video_id}"


def group_key(dataset: str, video_id: str, source_video: str = "") -> str:
    """The key of a video's group: its source real video (one person), else the video itself."""
    return video_key(dataset, source_video or video_id)


@dataclass(frozen=True)
class CatalogRow:
    """One face crop; see the module docstring for the meaning of each field."""

    path: str
    label: int
    dataset: str
    video_id: str
    method: str
    compression: str
    split: str
    frame_index: int
    timestamp_s: float
    face_index: int
    score: float
    x0: float
    y0: float
    x1: float
    y1: float
    source_video: str

    @property
    def video_key(self) -> str:
        """:func:`video_key` of this row's video."""
        return video_key(self.dataset, self.video_id)

    @property
    def group_key(self) -> str:
        """:func:`group_key` of this row's video."""
        return group_key(self.dataset, self.video_id, self.source_video)

    def to_csv(self) -> list[str]:
        """Cells in ``COLUMNS`` order; floats rounded to what the data supports (ms, 1e-4, 0.01 px)."""
        return [
            self.path,
            str(self.label),
            self.dataset,
            self.video_id,
            self.method,
            self.compression,
            self.split,
            str(self.frame_index),
            f"{self.timestamp_s:.4f}",
            str(self.face_index),
            f"{self.score:.5f}",
            f"{self.x0:.2f}",
            f"{self.y0:.2f}",
            f"{self.x1:.2f}",
            f"{self.y1:.2f}",
            self.source_video,
        ]


@dataclass(frozen=True)
class ErrorRow:
    """A source file that produced no crops, and why."""

    path: str
    reason: str


def read_catalog(path: str | Path, *, check_files: bool = False) -> list[CatalogRow]:
    """Read and validate a catalog.csv; ``check_files`` also requires every crop to exist.

    Raises ``CatalogError`` on the first problem, e.g. ``faces/catalog.csv line 17, column label: 'maybe'
    is not 0/1 (0 = real, 1 = fake)``.
    """
    path = Path(path)
    rows: list[CatalogRow] = []
    seen: dict[str, int] = {}
    for line, cells in _read_csv(path, COLUMNS):
        row = _parse_row(path, line, cells)
        if row.path in seen:
            raise CatalogError(
                f"{path} line {line}, column path: {row.path!r} is already on line "
                f"{seen[row.path]}; each crop must appear once"
            )
        seen[row.path] = line
        if check_files and not (path.parent / row.path).is_file():
            raise CatalogError(
                f"{path} line {line}, column path: {row.path!r} does not exist next to the "
                "catalog; rerun preprocess or fix the path"
            )
        rows.append(row)
    return rows


def read_errors(path: str | Path) -> list[ErrorRow]:
    """Read an errors.csv (columns path, reason)."""
    path = Path(path)
    return [ErrorRow(cells["path"], cells["reason"]) for _, cells in _read_csv(path, ERROR_COLUMNS)]


def write_catalog(path: str | Path, rows: Iterable[CatalogRow]) -> None:
    """Write rows (sorted by video, frame, face) to ``path`` atomically."""
    ordered = sorted(rows, key=lambda r: (r.dataset, r.video_id, r.frame_index, r.face_index, r.path))
    _write_csv(Path(path), COLUMNS, (row.to_csv() for row in ordered))


def write_errors(path: str | Path, rows: Iterable[ErrorRow]) -> None:
    """Write errors (sorted, duplicates dropped) to ``path`` atomically."""
    unique = sorted({(r.path, r.reason) for r in rows})
    _write_csv(Path(path), ERROR_COLUMNS, ([p, " ".join(r.split())] for p, r in unique))


def merge_catalogs(out_dir: str | Path, part_dirs: Sequence[str | Path]) -> tuple[int, int]:
    """Join the catalog.csv and errors.csv of several output folders (e.g. shards) into ``out_dir``.

    Crop paths are rewritten relative to ``out_dir``; the crops stay where they are. Returns
    (rows, errors) written. Raises ``CatalogError`` if a part has no catalog or a video is in two parts.
    """
    out_dir = Path(out_dir)
    if not part_dirs:
        raise CatalogError("catalog merge: give at least one folder holding a catalog.csv")
    rows: list[CatalogRow] = []
    errors: list[ErrorRow] = []
    owner: dict[str, Path] = {}
    for part in map(Path, part_dirs):
        catalog = part / "catalog.csv"
        if not catalog.is_file():
            raise CatalogError(
                f"{catalog}: not found; each folder to merge must hold a preprocess catalog.csv"
            )
        part_keys: set[str] = set()
        for row in read_catalog(catalog):
            if row.video_key in owner and owner[row.video_key] != catalog:
                raise CatalogError(
                    f"video {row.video_key} is in both {owner[row.video_key]} and {catalog}; "
                    "merge shards of one run (--shard K/N), or drop one of the folders"
                )
            part_keys.add(row.video_key)
            target = os.path.relpath((part / row.path).resolve(), out_dir.resolve())
            rows.append(replace(row, path=Path(target).as_posix()))
        owner.update(dict.fromkeys(part_keys, catalog))
        if (part / "errors.csv").is_file():
            errors.extend(read_errors(part / "errors.csv"))
    write_catalog(out_dir / "catalog.csv", rows)
    write_errors(out_dir / "errors.csv", errors)
    return len(rows), len({(e.path, e.reason) for e in errors})


# --- parsing -------------------------------------------------------------------------------------------

_INT = {"label", "frame_index", "face_index"}
_FLOAT = {"timestamp_s", "score", "x0", "y0", "x1", "y1"}


def _parse_row(path: Path, line: int, cells: dict[str, str]) -> CatalogRow:
    def fail(column: str, problem: str) -> CatalogError:
        return CatalogError(f"{path} line {line}, column {column}: {problem}")

    values: dict[str, object] = {}
    for column in COLUMNS:
        text = cells[column]
        if column == "label" and text not in ("0", "1"):
            raise fail("label", f"{text!r} is not 0/1 (0 = real, 1 = fake)")
        if column in _INT:
            try:
                values[column] = int(text)
            except ValueError:
                raise fail(column, f"{text!r} is not a whole number") from None
        elif column in _FLOAT:
            try:
                values[column] = float(text)
            except ValueError:
                raise fail(column, f"{text!r} is not a number") from None
            if not math.isfinite(values[column]):
                raise fail(column, f"{text!r} is not a finite number")
        else:
            values[column] = text
    if values["split"] not in SPLITS:
        raise fail("split", f"{cells['split']!r} is not one of {'/'.join(SPLITS)}")
    for column in ("path", "dataset", "video_id"):
        if not values[column]:
            raise fail(column, "is empty")
    if os.path.isabs(cells["path"]) or cells["path"].startswith(("/", "\\")):
        raise fail("path", f"{cells['path']!r} is absolute; paths are relative to the catalog's folder")
    for column in ("frame_index", "face_index", "timestamp_s"):
        if values[column] < 0:
            raise fail(column, f"{cells[column]!r} is negative")
    if not 0.0 <= values["score"] <= 1.0:
        raise fail("score", f"{cells['score']!r} is not in [0, 1]")
    if values["x1"] <= values["x0"]:
        raise fail("x1", f"box x1 {cells['x1']} is not right of x0 {cells['x0']}")
    if values["y1"] <= values["y0"]:
        raise fail("y1", f"box y1 {cells['y1']} is not below y0 {cells['y0']}")
    return CatalogRow(**values)  # type: ignore[arg-type]


def _read_csv(path: Path, columns: Sequence[str]) -> Iterable[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise CatalogError(f"{path}: not found")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise CatalogError(f"{path} line 1: empty file; expected the header {','.join(columns)}")
        missing = [c for c in columns if c not in header]
        extra = [c for c in header if c not in columns]
        if missing or extra or len(set(header)) != len(header):
            problem = (
                f"missing {', '.join(missing)}" if missing else f"unexpected {', '.join(extra) or 'repeats'}"
            )
            raise CatalogError(f"{path} line 1: header {problem}; expected {','.join(columns)}")
        for cells in reader:
            if not cells:
                continue
            if len(cells) != len(header):
                raise CatalogError(
                    f"{path} line {reader.line_num}: {len(cells)} cells, expected "
                    f"{len(header)} ({','.join(columns)}); quote cells that contain commas"
                )
            yield reader.line_num, dict(zip(header, cells, strict=True))


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


__all__ = [
    "COLUMNS",
    "ERROR_COLUMNS",
    "SPLITS",
    "CatalogError",
    "CatalogRow",
    "ErrorRow",
    "group_key",
    "merge_catalogs",
    "read_catalog",
    "read_errors",
    "write_catalog",
    "video_key",
    "write_errors",
]
