"""Videos -> face crops + catalog.csv: parallel, resumable, and atomic.

    >>> summary = run_preprocess(PreprocessConfig(root="FF++", layout="ffpp", out="faces", fps=1.0))
    >>> print(summary)   # 7 videos done, 0 skipped, 0 failed; 88 faces written; ...

Output: ``out/<dataset>/<video_id>/<frame>_<face>.png`` crops, ``out/catalog.csv`` (see
``deepshield.data.catalog``), ``out/errors.csv`` (files that gave no crop, and why) and
``out/preprocess.json`` (the settings). Each finished video commits one part file under ``out/.parts/``
(its catalog rows, or its error) with an atomic rename after its crops are on disk; catalog.csv and
errors.csv are rebuilt from the parts at the end of every run (also on Ctrl-C). So a killed run leaves
no half-written crop or row, and rerunning the same command skips finished videos (including failed
ones: delete their ``out/.parts/*.error.csv`` to retry them).

This module checks the settings and runs the stages: the layout scan (:mod:`~.layouts`), split and
shard (:mod:`~.splits`), one video's crops (:mod:`~.extract`), in this process or in crash-tolerant
worker processes (:mod:`~.workers`), and the part files (:mod:`~.parts`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from deepshield.config import PreprocessConfig
from deepshield.data.catalog import SPLITS, ErrorRow
from deepshield.data.extract import DETECT_BATCH, FORMATS, TIGHT, VideoResult, make_detector, process_video
from deepshield.data.faces import DETECTORS, FACE_SELECTORS
from deepshield.data.layouts import LAYOUTS, VideoRecord, scan_layout
from deepshield.data.parts import parts_dir, pending, rebuild_outputs, record_failure, write_listing
from deepshield.data.splits import assign_split, in_shard, parse_shard, parse_split_ratios
from deepshield.data.workers import init_video_worker, run_in_workers, work_video
from deepshield.errors import ConfigError
from deepshield.io import write_text_atomic
from deepshield.progress import progress as progress_bar

# Settings that change the crops: a rerun into the same folder must use the same values.
_RESUME_FIELDS = (
    "root layout fps frames_per_video size margin faces min_score format quality compression splits "
    "max_side min_face_size detector shift metadata split_ratios keyframes"
).split()


class PreprocessError(ConfigError):
    """A wrong setting for preprocess; the one-line message names the flag and the fix."""


def validate_config(cfg: PreprocessConfig) -> None:
    """Raise ``PreprocessError`` naming the first wrong flag of ``cfg``."""
    checks = [
        (cfg.layout in LAYOUTS, f"--layout {cfg.layout!r}: choose from {', '.join(sorted(LAYOUTS))}"),
        (cfg.fps is None or cfg.frames_per_video is None, "give --fps or --frames-per-video, not both"),
        (cfg.fps is None or cfg.fps > 0, f"--fps {cfg.fps}: must be > 0 (e.g. 1)"),
        (cfg.frames_per_video is None or cfg.frames_per_video >= 1, "--frames-per-video: must be >= 1"),
        (cfg.size >= 8, f"--size {cfg.size}: must be >= 8 pixels"),
        (0 < cfg.margin <= 4, f"--margin {cfg.margin}: must be in (0, 4] (1.3 = 30% context around "
                               "the face)"),
        (-1 <= cfg.shift <= 1, f"--shift {cfg.shift}: must be in [-1, 1] (0.1 = centre 10% of the "
                                "box lower)"),
        (
            cfg.faces in FACE_SELECTORS,
            f"--faces {cfg.faces!r}: choose from {', '.join(FACE_SELECTORS)}",
        ),
        (cfg.workers >= 1, f"--workers {cfg.workers}: must be >= 1"),
        (0.0 <= cfg.min_score <= 1.0, f"--min-score {cfg.min_score}: must be in [0, 1]"),
        (cfg.format in FORMATS, f"--format {cfg.format!r}: choose from {', '.join(FORMATS)}"),
        (1 <= cfg.quality <= 100, f"--quality {cfg.quality}: must be in 1..100"),
        (cfg.max_side >= 48, f"--max-side {cfg.max_side}: must be >= 48 pixels"),
        (cfg.min_face_size >= 12, f"--min-face-size {cfg.min_face_size}: must be >= 12 pixels (MTCNN's "
                                  "window)"),
        (cfg.detector in DETECTORS, f"--detector {cfg.detector!r}: choose from {', '.join(DETECTORS)}"),
        (
            not (cfg.layout == "folder" and _inside(cfg.out, cfg.root / "real", cfg.root / "fake")),
            f"--out {cfg.out} is inside ROOT/real or ROOT/fake, where its crops would be read as data",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise PreprocessError(message)
    parse_shard(cfg.shard)
    parse_split_ratios(cfg.split_ratios)


@dataclass(frozen=True)
class PreprocessSummary:
    """What one run did. ``skipped``: finished by an earlier run; ``unusable``: listed by the layout but
    unusable (missing, unlisted, duplicate id); ``frames``/``seconds`` cover this run only."""

    out: Path
    videos: int
    done: int
    skipped: int
    failed: int
    unusable: int
    faces: int
    frames: int
    seconds: float
    tight: int = 0
    splits: tuple[tuple[str, int, int], ...] = ()

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        problems = self.failed + self.unusable
        where = f" (see {self.out / 'errors.csv'})" if problems else ""
        text = (
            f"{self.done} videos done, {self.skipped} skipped (already done), {self.failed} failed, "
            f"{self.unusable} unusable{where}; {self.faces} faces written; {self.frames} frames in "
            f"{self.seconds:.1f} s ({self.frames_per_s:.1f} frames/s)"
        )
        if self.tight:
            text += (f"\n{self.tight} crops are tighter than the margin asks (the image held < "
                     f"{TIGHT:.0%} of the square's side): tight face photos; a smaller --margin frames "
                     "them all alike")
        if self.splits:
            text += "\nsplits (videos real/fake, by group): " + ", ".join(
                f"{name} {real}/{fake}" for name, real, fake in self.splits)
        return text


def run_preprocess(cfg: PreprocessConfig, *, progress: bool = True) -> PreprocessSummary:
    """Crop the faces of every video of ``cfg.root`` (this shard's) into ``cfg.out``; see module docstring.

    Raises a ``DeepshieldError`` (``PreprocessError``, ``LayoutError``; also ``ValueError`` subclasses) for
    user mistakes; bad videos never raise, they go to errors.csv.
    """
    start = time.perf_counter()
    validate_config(cfg)
    shard = parse_shard(cfg.shard)
    scan = scan_layout(cfg.layout, cfg.root, compression=cfg.compression, splits=cfg.splits,
                       metadata=cfg.metadata)
    _claim_output(cfg)
    parts_dir(cfg.out).mkdir(parents=True, exist_ok=True)
    ratios = parse_split_ratios(cfg.split_ratios)
    records = [assign_split(r, ratios) for r in scan.records if in_shard(r.key, shard)]
    problems = [ErrorRow(str(p.path), p.reason) for p in scan.problems if in_shard(p.key, shard)]
    write_listing(cfg.out, shard, problems)
    todo = pending(cfg.out, records)
    done = failed = faces = frames = tight = 0
    bar = progress_bar(desc="preprocess", total=len(records), initial=len(records) - len(todo), unit="video",
                       enabled=progress)
    try:
        with bar:
            for result in _process_all(cfg, todo):
                done, failed = done + result.ok, failed + (not result.ok)
                faces, frames, tight = faces + result.faces, frames + result.frames, tight + result.tight
                bar.update(1)
                bar.set_postfix(faces=faces, failed=failed)
    finally:
        rebuild_outputs(cfg.out)
    seconds = time.perf_counter() - start
    skipped, unusable = len(records) - len(todo), len(problems)
    return PreprocessSummary(cfg.out, len(records), done, skipped, failed, unusable, faces, frames, seconds,
                             tight, _split_counts(records))


def _split_counts(records: list[VideoRecord]) -> tuple[tuple[str, int, int], ...]:
    """(split, real videos, fake videos) for each split that has videos."""
    return tuple((name, sum(r.split == name and r.label == 0 for r in records),
                  sum(r.split == name and r.label == 1 for r in records)) for name in SPLITS
                 if any(r.split == name for r in records))


def _process_all(cfg: PreprocessConfig, records: list[VideoRecord]) -> Iterator[VideoResult]:
    """Results of :func:`process_video` on ``records``: in this process, or in ``cfg.workers`` workers."""
    if not records:
        return
    if cfg.workers == 1:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as in workers: intra-op threads slow MTCNN down on a busy machine
        try:
            detector = make_detector(cfg)
            for record in records:
                yield process_video(record, cfg, detector)
        finally:
            torch.set_num_threads(threads)
        return
    preload = ["facenet_pytorch", work_video.__module__]  # imported once in the fork server, not per worker
    results = run_in_workers(records, work_video, cfg.workers, init_video_worker, (cfg,), preload)
    for record, result in results:
        if result is None:
            record_failure(cfg.out, record, "worker process crashed while processing this file")
            result = VideoResult(record.key, False, 0, 0)
        yield result


def _claim_output(cfg: PreprocessConfig) -> None:
    """Save the settings, refusing to resume into a folder made with settings that change the crops."""
    path = cfg.out / "preprocess.json"
    new = cfg.to_json()
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = {}
        diff = [f for f in _RESUME_FIELDS if f in old and old[f] != new[f]]
        if diff:
            f = diff[0]
            raise PreprocessError(
                f"{cfg.out} was made with {f}={old[f]!r}, not {new[f]!r}; rerun with the same "
                "settings to resume, or use a new --out"
            )
    write_text_atomic(path, json.dumps(new, indent=2) + "\n")


def _inside(path: Path, *folders: Path) -> bool:
    return any(path.is_relative_to(folder) for folder in folders)


__all__ = [
    "DETECT_BATCH",
    "PreprocessConfig",
    "PreprocessError",
    "PreprocessSummary",
    "run_preprocess",
    "validate_config",
]
