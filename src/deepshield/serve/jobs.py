"""One job at a time: a single worker thread, a bounded queue, a per-job time limit, short-lived results.

A request first ``reserve()``s a slot (refused when ``limit`` jobs are already waiting or running, so
a full server says 503 before reading any upload), then ``submit()``s its work, which runs on the one
worker thread. The work checks ``job.check_deadline()`` as it goes (the server calls it before each
batch of frames reaches the face detector), so a job past its time limit stops at the next check.

    >>> queue = JobQueue(limit=4, timeout_s=120)
    >>> if queue.reserve():
    ...     job = queue.submit(lambda job: {"p_fake": 0.9}, cleanup=lambda: None)
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from deepshield.runtime import release_freed_memory

RESULT_TTL_S = 600.0    # a finished job's result is kept this long for the page to fetch
KEEP_FINISHED = 16      # and at most this many finished jobs are kept


class JobTimeout(Exception):
    """A job ran past its time limit."""


class JobFailed(Exception):
    """A job that ends with a user-facing error: ``status`` (4xx/5xx) and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Job:
    """One prediction: its state (queued, running, done, failed), stage and progress for the page."""

    id: str
    timeout_s: float
    state: str = "queued"
    stage: str = "waiting for the jobs ahead"
    frames_done: int = 0
    frames_total: int | None = None
    result: dict | None = None
    error: str | None = None
    status: int = 200
    finished_at: float | None = None
    deadline: float = float("inf")
    future: Future = field(default_factory=Future, repr=False)

    def check_deadline(self) -> None:
        """Raise ``JobTimeout`` once the job has run longer than its limit."""
        if time.monotonic() > self.deadline:
            raise JobTimeout(f"the job took longer than the server's {self.timeout_s:g} s limit; try a "
                             "shorter clip or an image, or start the server with a larger --job-timeout")

    def to_json(self, position: int | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {"job": self.id, "state": self.state, "stage": self.stage,
                             "frames_done": self.frames_done, "frames_total": self.frames_total}
        if position is not None:
            d["position"] = position
        if self.state == "done":
            d["result"] = self.result
        if self.state == "failed":
            d["error"], d["status"] = self.error, self.status
        return d


class JobQueue:
    """A single worker thread with at most ``limit`` jobs reserved, queued or running."""

    def __init__(self, limit: int, timeout_s: float) -> None:
        self.limit, self.timeout_s = limit, timeout_s
        self._lock = threading.Lock()
        self._active = 0
        self._order: list[str] = []            # queued/running job ids, oldest first
        self._jobs: dict[str, Job] = {}
        self._cleanups: dict[str, Callable[[], None]] = {}   # of jobs not started yet
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepshield-job")

    @property
    def active(self) -> int:
        """Slots taken: uploads being received plus jobs queued or running."""
        return self._active

    def reserve(self) -> bool:
        """Take a slot for an upload that may become a job; False when the queue is full."""
        with self._lock:
            if self._active >= self.limit:
                return False
            self._active += 1
            return True

    def release(self) -> None:
        """Give back a reserved slot whose upload did not become a job."""
        with self._lock:
            self._active -= 1

    def submit(self, work: Callable[[Job], dict], cleanup: Callable[[], None]) -> Job:
        """Run ``work(job)`` on the worker thread (using a slot taken by ``reserve``); ``cleanup`` runs after
        it, whatever happens. ``work`` raises ``JobFailed`` for a user-facing error."""
        job = Job(uuid.uuid4().hex, self.timeout_s)
        with self._lock:
            self._prune()
            self._jobs[job.id] = job
            self._order.append(job.id)
            self._cleanups[job.id] = cleanup
        self._pool.submit(self._run, job, work)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def position(self, job: Job) -> int:
        """Jobs ahead of ``job`` (0: running or next)."""
        with self._lock:
            return self._order.index(job.id) if job.id in self._order else 0

    def forget(self, job: Job) -> None:
        """Drop a finished job's result (its requester has it)."""
        with self._lock:
            self._jobs.pop(job.id, None)

    def shutdown(self) -> None:
        """Cancel the jobs not started (their uploads are deleted); a running job finishes."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            cancelled, self._cleanups = self._cleanups, {}
        for job_id, cleanup in cancelled.items():
            cleanup()
            job = self._jobs.get(job_id)
            if job is not None:
                self._fail(job, 503, "the server shut down before this job started; upload again")
                job.future.set_result(job)

    def _run(self, job: Job, work: Callable[[Job], dict]) -> None:
        with self._lock:
            cleanup = self._cleanups.pop(job.id, None)
        if cleanup is None:  # cancelled by shutdown, which deleted its upload
            return
        job.state, job.stage = "running", "starting"
        job.deadline = time.monotonic() + self.timeout_s
        # The outcome is published only after the upload is deleted and the slot is free, so a client that
        # sees "done" or "failed" also sees the queue without this job.
        result, failure = None, (500, "internal error: the job stopped unexpectedly; please report it")
        try:
            result, failure = work(job), None
        except JobTimeout as err:
            failure = (504, str(err))
        except JobFailed as err:
            failure = (err.status, str(err))
        except Exception as err:  # a bug: a one-line error for the client, the traceback in the log
            logging.getLogger("deepshield.serve").exception("job %s failed", job.id)
            failure = (500, f"internal error ({type(err).__name__}: {err}); please report it")
        finally:
            try:
                cleanup()
                release_freed_memory()
            finally:
                with self._lock:
                    self._active -= 1
                    if job.id in self._order:
                        self._order.remove(job.id)
                if failure is None:
                    job.result = result
                    job.state, job.stage = "done", "done"
                else:
                    self._fail(job, *failure)
                job.finished_at = time.monotonic()
                job.future.set_result(job)

    @staticmethod
    def _fail(job: Job, status: int, message: str) -> None:
        job.state, job.stage, job.status, job.error = "failed", "failed", status, message

    def _prune(self) -> None:
        now = time.monotonic()
        finished = [j for j in self._jobs.values() if j.finished_at is not None]
        finished.sort(key=lambda j: j.finished_at)
        for j in finished[:max(0, len(finished) - KEEP_FINISHED)]:
            self._jobs.pop(j.id, None)
        for j in finished:
            if now - j.finished_at > RESULT_TTL_S:
                self._jobs.pop(j.id, None)


__all__ = ["Job", "JobFailed", "JobQueue", "JobTimeout"]
