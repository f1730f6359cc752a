"""Issue 23: the server hands the C heap's freed pages back after every job (glibc ``malloc_trim``), so its
RSS stays flat over a long queue. The soak itself is ``benchmarks/serve_soak.py``; these check the parts."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from deepshield import runtime
from deepshield.runtime import release_freed_memory
from deepshield.serve import jobs
from deepshield.serve.jobs import JobFailed, JobQueue


def _rss_mb() -> float:
    line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_every_job_ends_with_a_trim_whatever_its_outcome(monkeypatch):
    calls = []
    monkeypatch.setattr(jobs, "release_freed_memory", lambda: calls.append(1))
    queue = JobQueue(limit=2, timeout_s=30)

    def fail(_job):
        raise JobFailed(422, "unreadable")

    try:
        for work in (lambda _job: {"p_fake": 0.5}, fail):
            assert queue.reserve()
            job = queue.submit(work, cleanup=lambda: None)
            job.future.result(timeout=30)
    finally:
        queue.shutdown()
    assert len(calls) == 2


def test_release_freed_memory_returns_pages_glibc_keeps():
    if runtime._MALLOC_TRIM is None or not Path("/proc/self/status").is_file():
        pytest.skip("malloc_trim is glibc's (Linux)")
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    size, count = 4000, 40_000                       # 160 MB in blocks below the mmap threshold
    blocks = [libc.malloc(size) for _ in range(count)]
    for b in blocks:
        ctypes.memset(b, 1, size)                    # touch the pages: they count in RSS
    held = set(blocks[::1000])                       # a few live blocks pin the heap, as a job's leftovers do
    for b in blocks:
        if b not in held:
            libc.free(b)
    before = _rss_mb()
    release_freed_memory()
    after = _rss_mb()
    for b in held:
        libc.free(b)
    assert before - after > 100, f"RSS {before:.0f} -> {after:.0f} MB"
