"""Running work in worker processes that may crash: a decoder segfault costs one item, not the run.

    >>> for item, result in run_in_workers(items, work, 4, initializer, initargs):
    ...     result is None      # only when ``work(item)`` killed its process twice

Preprocess runs :func:`work_video` in workers set up by :func:`init_video_worker` (one face detector
per process, built once).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from deepshield.config import PreprocessConfig
from deepshield.data.extract import VideoResult, make_detector, process_video
from deepshield.data.layouts import VideoRecord
from deepshield.errors import DeepshieldError


class WorkerStartError(DeepshieldError, RuntimeError):
    """Worker processes could not start at all (not the fault of any one video)."""


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
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=initializer, initargs=initargs)
        try:
            suspects = yield from _until_broken(pool, work, queue, workers)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        for item in suspects:
            yield item, _retry_alone(context, work, item, initializer, initargs)


def _until_broken(
    pool: ProcessPoolExecutor, work: Callable[[Any], Any], queue: deque, workers: int
) -> Iterator[tuple[Any, Any]]:
    """Yield results from ``pool`` until the queue is done or the pool breaks; return the items in flight
    when it broke (the suspects)."""
    suspects: list[Any] = []
    running: dict[Any, Any] = {}
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
    return suspects + list(running.values())


def _retry_alone(
    context: Any, work: Callable[[Any], Any], item: Any, initializer: Callable[..., None],
    initargs: tuple[Any, ...],
) -> Any:
    """``work(item)`` in a fresh process of its own; None if it kills that process too."""
    with ProcessPoolExecutor(1, mp_context=context, initializer=initializer, initargs=initargs) as one:
        try:
            one.submit(int).result()  # a worker that cannot even start is not the item's fault
        except BrokenProcessPool:
            raise WorkerStartError(
                "worker processes die on start-up; run with --workers 1 to see why (from a script, "
                "guard the call with if __name__ == '__main__':)"
            ) from None
        try:
            return one.submit(work, item).result()
        except BrokenProcessPool:
            return None


# --- the preprocess worker: one detector per process ---------------------------------------------------

_WORKER: dict[str, Any] = {}


def init_video_worker(cfg: PreprocessConfig) -> None:
    """Worker-process set-up for :func:`work_video`: ignore Ctrl-C, one torch thread, build the detector."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the main process, which drains the pool
    torch.set_num_threads(1)  # one process per core beats intra-op threads for MTCNN's small convs
    _WORKER["cfg"], _WORKER["detector"] = cfg, make_detector(cfg)
    _WORKER["threads"] = max(1, (os.cpu_count() or 1) // cfg.workers)


def work_video(record: VideoRecord) -> VideoResult:
    """:func:`~deepshield.data.extract.process_video` with this worker's settings and detector."""
    return process_video(record, _WORKER["cfg"], _WORKER["detector"], _WORKER["threads"])


__all__ = ["WorkerStartError", "init_video_worker", "run_in_workers", "work_video"]
