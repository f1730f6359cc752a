"""A folder is a stream: ``deepshield predict DIR --out results.jsonl`` for a moderation queue.

Worker processes decode, detect and crop the next videos (:class:`~deepshield.predict.FaceCutter`: the
face detector is where the time goes, and one Python process runs it on one core) while the main process
scores the crops with the model, so both cores work and the model is loaded once. At most
``2 x workers`` videos are in flight (bounded memory); results come out in input order as each video
finishes. With ``out``, each result is appended to a JSON lines file and fsynced; a rerun skips the
inputs already there, so a killed run resumes where it stopped (a torn last line is ignored).

    >>> done = done_paths(Path("results.jsonl"))
    >>> for result in stream_results(predictor, [f for f in files if str(f) not in done], workers=2):
    ...     append_line(Path("results.jsonl"), result.to_dict())
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np

from deepshield.contracts.crops import CropSettings
from deepshield.errors import DataError
from deepshield.predict import FaceCutter, MediaResult, Predictor
from deepshield.runtime import release_freed_memory, torch_threads

_CUTTER: FaceCutter | None = None  # one per worker process


def auto_workers(n_files: int) -> int:
    """Worker processes for ``n_files`` inputs: none for one file, else up to the cores (at most 4)."""
    return 0 if n_files < 2 else min(4, os.cpu_count() or 1)


def _init_worker(settings: CropSettings, image_size: int, detect_every: int, detector_runtime: str) -> None:
    global _CUTTER
    _CUTTER = FaceCutter(settings, image_size, detect_every, detector_runtime, threads=1)
    torch_threads(1)  # the torch detector, if that is what runs


def _cut(path: str) -> tuple[MediaResult, list[np.ndarray]]:
    assert _CUTTER is not None, "worker not initialised"
    try:
        return _CUTTER.cut(path)
    finally:
        release_freed_memory()  # a long folder: the decoded frames' pages go back to the OS (see runtime)


def stream_results(predictor: Predictor, files: Sequence[str | Path], workers: int = 0,
                   explain: bool = False) -> Iterator[MediaResult]:
    """Each file's result, in order, as soon as it and those before it are done; ``workers`` > 0 cuts
    faces in that many processes (the model stays in this one)."""
    if workers <= 0 or len(files) < 2:
        for f in files:
            result = predictor.predict(f, explain=explain)
            release_freed_memory()
            yield result
        return
    cutter = predictor.cutter
    ctx = multiprocessing.get_context("spawn")  # fork after torch's thread pools started can hang
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(cutter.settings, cutter.image_size, cutter.detect_every,
                                       cutter.detector_runtime)) as pool:
        pending: deque[Future] = deque()
        queue = iter(files)
        for f in queue:
            pending.append(pool.submit(_cut, str(f)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            result, crops = pending.popleft().result()
            nxt = next(queue, None)
            if nxt is not None:
                pending.append(pool.submit(_cut, str(nxt)))
            judged = predictor.judge(result, crops, explain=explain)
            release_freed_memory()
            yield judged


def done_paths(out: Path) -> set[str]:
    """The inputs a JSON lines results file already holds (its last line may be torn by a kill)."""
    if not out.is_file():
        return set()
    done = set()
    lines = out.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines, 1):
        try:
            done.add(json.loads(line)["path"])
        except (json.JSONDecodeError, KeyError, TypeError):
            if n < len(lines):
                raise DataError(f"{out} line {n} is not a deepshield predict result; pass a new --out file "
                                "or remove that line") from None
    return done


def repair(out: Path) -> None:
    """Drop a torn last line (a run killed mid-write) so appending starts on a fresh line."""
    if not out.is_file():
        return
    data = out.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data[: data.rfind(b"\n") + 1]
        with out.open("wb") as fh:
            fh.write(keep)
            fh.flush()
            os.fsync(fh.fileno())


def append_line(out: Path, record: dict) -> None:
    """Append one JSON line and fsync it: a result written is a result kept."""
    with out.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


__all__ = ["append_line", "auto_workers", "done_paths", "repair", "stream_results"]
