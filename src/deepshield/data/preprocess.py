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
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from deepshield.config import PreprocessConfig
from deepshield.data.catalog import (
    SPLITS,
    CatalogRow,
    ErrorRow,
    atomic_write,
    read_catalog,
    read_errors,
    write_catalog,
    write_errors,
)
from deepshield.data.faces import (
    DETECTORS,
    FACE_SELECTORS,
    FaceDetector,
    build_detector,
    build_selector,
    faces_in,
    fit_ratio,
)
from deepshield.data.layouts import (
    LAYOUTS,
    VideoRecord,
    assign_split,
    in_shard,
    parse_shard,
    parse_split_ratios,
    scan_layout,
)
from deepshield.data.video import Frame, VideoError, read_media

FORMATS = {"png": "PNG", "jpg": "JPEG"}
DETECT_BATCH = 8  # frames decoded and detected together; bounds memory at 1080p
_CROP_NAME = re.compile(r"\d+_\d+\.(png|jpg)(\..*\.tmp)?|\..*\.tmp")
# Settings that change the crops: a rerun into the same folder must use the same values.
_RESUME_FIELDS = (
    "root layout fps frames_per_video size margin faces min_score format quality compression splits "
)
_RESUME_FIELDS += "max_side detector shift metadata split_ratios"
TIGHT = 0.9  # a crop whose image held less than this fraction of the wanted square's side is "tighter"


class PreprocessError(ValueError):
    """A wrong setting for preprocess; the one-line message names the flag and the fix."""


class WorkerStartError(RuntimeError):
    """Worker processes could not start at all (not the fault of any one video)."""


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


@dataclass(frozen=True)
class VideoResult:
    key: str
    ok: bool
    frames: int
    faces: int
    tight: int = 0


def run_preprocess(cfg: PreprocessConfig, *, progress: bool = True) -> PreprocessSummary:
    """Crop the faces of every video of ``cfg.root`` (this shard's) into ``cfg.out``; see module docstring.

    Raises a ``ValueError`` subclass (``PreprocessError``, ``LayoutError``) for user mistakes; bad
    videos never raise, they go to errors.csv.
    """
    start = time.perf_counter()
    validate_config(cfg)
    shard = parse_shard(cfg.shard)
    scan = scan_layout(cfg.layout, cfg.root, compression=cfg.compression, splits=cfg.splits,
                       metadata=cfg.metadata)
    _claim_output(cfg)
    parts = cfg.out / ".parts"
    parts.mkdir(parents=True, exist_ok=True)
    ratios = parse_split_ratios(cfg.split_ratios)
    records = [assign_split(r, ratios) for r in scan.records if in_shard(r.key, shard)]
    problems = [ErrorRow(str(p.path), p.reason) for p in scan.problems if in_shard(p.key, shard)]
    shard_tag = "all" if shard is None else f"{shard[0]}of{shard[1]}"
    write_errors(parts / f"listing-{shard_tag}.csv", problems)
    finished = {p.name for p in parts.iterdir()}
    todo = [
        r for r in records if not {f"{_part_stem(r.key)}.csv", f"{_part_stem(r.key)}.error.csv"} & finished
    ]
    done = failed = faces = frames = tight = 0
    bar = tqdm(total=len(records), initial=len(records) - len(todo), unit="video", disable=not progress)
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
    splits = tuple((name, sum(r.split == name and r.label == 0 for r in records),
                    sum(r.split == name and r.label == 1 for r in records)) for name in SPLITS
                   if any(r.split == name for r in records))
    return PreprocessSummary(cfg.out, len(records), done, skipped, failed, unusable, faces, frames, seconds,
                             tight, splits)


def rebuild_outputs(out: str | Path) -> tuple[int, int]:
    """Rewrite ``out/catalog.csv`` and ``out/errors.csv`` from the committed parts; returns their sizes."""
    out = Path(out)
    rows: list[CatalogRow] = []
    errors: list[ErrorRow] = []
    for part in sorted((out / ".parts").glob("*.csv")):
        if part.name.endswith(".error.csv") or part.name.startswith("listing-"):
            errors.extend(read_errors(part))
        else:
            rows.extend(read_catalog(part))
    write_catalog(out / "catalog.csv", rows)
    write_errors(out / "errors.csv", errors)
    return len(rows), len(errors)


def process_video(
    record: VideoRecord, cfg: PreprocessConfig, detector: FaceDetector, threads: int = 0
) -> VideoResult:
    """Crop one video's faces and commit its part file (rows, or the error); never raises for bad media."""
    video_dir = cfg.out / record.dataset / record.video_id
    _clear_crops(video_dir)  # leftovers of a run killed before this video's part was committed
    rows: list[CatalogRow] = []
    frames = tight = 0
    try:
        batch: list[Frame] = []
        selector = build_selector(cfg.faces)
        for frame in read_media(record.path, threads=threads, **cfg.sampling):
            batch.append(frame)
            frames += 1
            if len(batch) == DETECT_BATCH:
                new, n_tight = _crop_batch(batch, record, cfg, detector, selector, video_dir)
                rows, tight, batch = rows + new, tight + n_tight, []
        new, n_tight = _crop_batch(batch, record, cfg, detector, selector, video_dir)
        rows, tight = rows + new, tight + n_tight
        reason = None if rows else f"no face with score >= {cfg.min_score} in {frames} sampled frames"
    except VideoError as err:
        reason = str(err)
    except Exception as err:  # noqa: BLE001 - one bad video must not stop the run; it is recorded
        reason = f"{type(err).__name__}: {err}"
    if reason is not None:
        _clear_crops(video_dir)
        record_failure(cfg.out, record, reason)
        return VideoResult(record.key, False, frames, 0)
    write_catalog(cfg.out / ".parts" / f"{_part_stem(record.key)}.csv", rows)
    return VideoResult(record.key, True, frames, len(rows), tight)


def record_failure(out: Path, record: VideoRecord, reason: str) -> None:
    """Commit the error part of a video that gave no crops."""
    write_errors(out / ".parts" / f"{_part_stem(record.key)}.error.csv", [ErrorRow(str(record.path), reason)])


def _crop_batch(
    batch: list[Frame],
    record: VideoRecord,
    cfg: PreprocessConfig,
    detector: FaceDetector,
    selector: Any,
    video_dir: Path,
) -> tuple[list[CatalogRow], int]:
    """Crops of the faces of ``batch`` saved under ``video_dir``: their rows, and how many were tight."""
    if not batch:
        return [], 0
    rows, tight = [], 0
    video = {
        k: getattr(record, k) for k in "label dataset video_id method compression split source_video".split()
    }
    kept_faces = faces_in([f.image for f in batch], detector, selector, cfg.min_score)
    for frame, kept in zip(batch, kept_faces, strict=True):
        for face_index, face in kept:
            name = f"{frame.index:06d}_{face_index}.{cfg.format}"
            _save_image(video_dir / name, cfg.geometry.crop(frame.image, face.box), cfg)
            height, width = frame.image.shape[:2]
            tight += fit_ratio(face.box, width, height, cfg.margin, cfg.shift) < TIGHT
            where = {"frame_index": frame.index, "timestamp_s": frame.timestamp_s, "face_index": face_index}
            box = dict(zip(("x0", "y0", "x1", "y1"), face.box, strict=True))
            path = f"{record.dataset}/{record.video_id}/{name}"
            rows.append(CatalogRow(path=path, score=min(1.0, face.score), **video, **where, **box))
    return rows, tight


def _save_image(path: Path, image: np.ndarray, cfg: PreprocessConfig) -> None:
    options = {"quality": cfg.quality} if cfg.format == "jpg" else {}
    atomic_write(path, lambda tmp: Image.fromarray(image).save(tmp, format=FORMATS[cfg.format], **options))


def _clear_crops(video_dir: Path) -> None:
    if video_dir.is_dir():
        for path in video_dir.iterdir():  # only crop files: another video's folder may be nested here
            if path.is_file() and _CROP_NAME.fullmatch(path.name):
                path.unlink()


def _inside(path: Path, *folders: Path) -> bool:
    return any(path.is_relative_to(folder) for folder in folders)


def _part_stem(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()[:24]


def _claim_output(cfg: PreprocessConfig) -> None:
    """Save the settings, refusing to resume into a folder made with settings that change the crops."""
    path = cfg.out / "preprocess.json"
    new = cfg.to_json()
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = {}
        diff = [f for f in _RESUME_FIELDS.split() if f in old and old[f] != new[f]]
        if diff:
            f = diff[0]
            raise PreprocessError(
                f"{cfg.out} was made with {f}={old[f]!r}, not {new[f]!r}; rerun with the same "
                "settings to resume, or use a new --out"
            )
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(new, indent=2) + "\n", encoding="utf-8"))


# --- running videos, in-process or in worker processes --------------------------------------------

_WORKER: dict[str, Any] = {}


def _make_detector(cfg: PreprocessConfig) -> FaceDetector:
    import torch

    torch.manual_seed(cfg.seed)
    return build_detector(cfg.detector, max_side=cfg.max_side)


def _init_worker(cfg: PreprocessConfig) -> None:
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the main process, which drains the pool
    torch.set_num_threads(1)  # one process per core beats intra-op threads for MTCNN's small convs
    _WORKER["cfg"], _WORKER["detector"] = cfg, _make_detector(cfg)
    _WORKER["threads"] = max(1, (os.cpu_count() or 1) // cfg.workers)


def _work(record: VideoRecord) -> VideoResult:
    return process_video(record, _WORKER["cfg"], _WORKER["detector"], _WORKER["threads"])


def _process_all(cfg: PreprocessConfig, records: list[VideoRecord]) -> Iterator[VideoResult]:
    if not records:
        return
    if cfg.workers == 1:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as in workers: intra-op threads slow MTCNN down on a busy machine
        try:
            detector = _make_detector(cfg)
            for record in records:
                yield process_video(record, cfg, detector)
        finally:
            torch.set_num_threads(threads)
        return
    preload = ["facenet_pytorch", __name__]  # imported once in the fork server, not once per worker
    for record, result in run_in_workers(records, _work, cfg.workers, _init_worker, (cfg,), preload):
        if result is None:
            record_failure(cfg.out, record, "worker process crashed while processing this file")
            result = VideoResult(record.key, False, 0, 0)
        yield result


def run_in_workers(
    items: Iterable[Any],
    work: Callable[[Any], Any],
    workers: int,
    initializer: Callable[..., None],
    initargs: tuple[Any, ...],
    preload: Sequence[str] = (),
) -> Iterator[tuple[Any, Any]]:
    """Yield (item, work(item)) from ``workers`` fresh processes, in completion order.

    A worker that dies (segfault in a decoder, out of memory) breaks the pool; the items that were in
    flight are then retried one at a time in a fresh process, and one that kills its process again is
    yielded as (item, None). Everything else carries on in a new pool. Workers come from a fork server
    that has imported ``preload`` once (where the platform has one; else they are spawned).
    """
    queue = deque(items)
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(preload))  # only used when the fork server first starts
    else:
        context = multiprocessing.get_context("spawn")
    while queue:
        suspects: list[Any] = []
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=initializer, initargs=initargs)
        running: dict[Any, Any] = {}
        try:
            while (queue or running) and not suspects:
                while queue and len(running) < workers:  # bounded: a crash implicates few items
                    item = queue.popleft()
                    running[pool.submit(work, item)] = item
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    item = running.pop(future)
                    if isinstance(future.exception(), BrokenProcessPool):
                        suspects.append(item)
                    else:
                        yield item, future.result()
            suspects.extend(running.values())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        for item in suspects:
            with ProcessPoolExecutor(
                1, mp_context=context, initializer=initializer, initargs=initargs
            ) as one:
                try:
                    one.submit(int).result()  # a worker that cannot even start is not the item's fault
                except BrokenProcessPool:
                    raise WorkerStartError(
                        "worker processes die on start-up; run with --workers 1 to see why (from a script, "
                        "guard the call with if __name__ == '__main__':)"
                    ) from None
                try:
                    yield item, one.submit(work, item).result()
                except BrokenProcessPool:
                    yield item, None


__all__ = [
    "PreprocessConfig",
    "PreprocessError",
    "PreprocessSummary",
    "VideoResult",
    "WorkerStartError",
    "in_shard",
    "parse_shard",
]
__all__ += ["process_video", "rebuild_outputs", "run_in_workers", "run_preprocess"]
