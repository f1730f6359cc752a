"""A small bounded load test on a real server (uvicorn in a thread): 20 concurrent health checks and 4
concurrent predictions against a queue of 2 give only 200s and the expected 503s, the queue limit
holds, and the process's memory (RSS) stays flat over repeated rounds."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from deepshield.config import ServeConfig
from deepshield.serve import BackgroundServer, create_app

QUEUE = 2
ROUNDS = 2
RSS_GROWTH_MB = 150   # bound on RSS growth over the rounds after a warm-up round


def _rss_mb() -> float:
    status = Path("/proc/self/status")
    if not status.is_file():
        pytest.skip("no /proc/self/status on this system (RSS check is Linux-only)")
    line = next(ln for ln in status.read_text().splitlines() if ln.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def _round(url: str, image: bytes) -> tuple[list[int], list[httpx.Response], int]:
    """One burst: 20 health checks and 4 predictions at once, while a sampler watches the queue."""
    peak, done = [0], threading.Event()

    def sample():
        with httpx.Client(base_url=url, timeout=30) as c:
            while not done.is_set():
                peak[0] = max(peak[0], c.get("/api/health").json()["queue"]["active"])
                done.wait(0.01)

    def health(_):
        with httpx.Client(base_url=url, timeout=30) as c:
            return c.get("/api/health").status_code

    def predict(_):
        with httpx.Client(base_url=url, timeout=60) as c:
            return c.post("/api/predict", files={"file": ("face.png", image, "image/png")})

    sampler = threading.Thread(target=sample)
    sampler.start()
    with ThreadPoolExecutor(24) as pool:
        predicted = pool.map(predict, range(4))
        healths = pool.map(health, range(20))
        healths, predicted = list(healths), list(predicted)
    done.set()
    sampler.join()
    return healths, predicted, peak[0]


def test_concurrent_health_and_predict_within_queue_and_memory_bounds(tiny_checkpoint, tiny_predictor,
                                                                             small_face_png):
    image = small_face_png.read_bytes()
    cfg = ServeConfig(checkpoint=str(tiny_checkpoint), queue_limit=QUEUE)
    with BackgroundServer(create_app(cfg, predictor=tiny_predictor)) as server:
        _round(server.url, image)                                 # warm-up: allocator, caches, threads
        before = _rss_mb()
        for _ in range(ROUNDS):
            healths, predicted, peak = _round(server.url, image)
            assert healths == [200] * 20
            codes = [r.status_code for r in predicted]
            assert set(codes) <= {200, 503} and 200 in codes, codes
            for r in predicted:
                body = r.json()
                assert body["label"] in ("REAL", "FAKE") if r.status_code == 200 else "busy" in body["error"]
            assert peak <= QUEUE
        grown = _rss_mb() - before
        assert grown < RSS_GROWTH_MB, f"RSS grew {grown:.0f} MB over {ROUNDS} rounds"
        with httpx.Client(base_url=server.url) as c:
            assert c.get("/api/health").json()["queue"]["active"] == 0
