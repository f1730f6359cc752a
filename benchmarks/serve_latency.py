"""``deepshield serve``: seconds from upload to verdict for a 12.4 s 720p video (FF++ dev 004.mp4).

Measures, in one process and one run: ``Predictor.predict`` alone (what ``deepshield predict`` does per
file, without Grad-CAM or the attack alarm: the baseline), then the served path through HTTP on
localhost (multipart upload, content check, queue, predict, JSON with PNG data URLs) with the server's
defaults (Grad-CAM + attack alarm) and with ``--no-explain --no-attack-check``. Each is timed
``--repeats`` times after one warm-up; the median is reported. Target (issue 14): upload to verdict
<= 15 s on 2 CPU cores with the default model.

    python benchmarks/serve_latency.py [--video PATH] [--repeats 3] [--frames N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from machine import machine_line

from deepshield.config import PredictConfig, ServeConfig
from deepshield.predict import Predictor
from deepshield.serve import BackgroundServer, create_app

FFPP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dev" / "ffpp"
VIDEO_720P = FFPP / "original_sequences/youtube/c23/videos/004.mp4"
TARGET_S = 15.0


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """Median wall seconds and median CPU seconds (this process, all threads: the server runs in it) of
    ``repeats`` calls after one warm-up call, and the last call's result. On a shared machine the wall
    time depends on the other load; the CPU time much less."""
    fn()
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), out


def upload(url: str, video: Path) -> dict:
    with httpx.Client(base_url=url, timeout=600) as client, video.open("rb") as f:
        r = client.post("/api/predict", files={"file": (video.name, f, "video/mp4")})
    r.raise_for_status()
    return r.json()


def served(video: Path, repeats: int, **flags) -> tuple[float, float, dict]:
    with BackgroundServer(create_app(ServeConfig(**flags))) as server:
        return timed(lambda: upload(server.url, video), repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=VIDEO_720P)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--frames", type=int, default=None, help="frames per video (default: as predict, 32)")
    args = ap.parse_args()
    if not args.video.is_file():
        raise SystemExit(f"{args.video} not found; pass --video (a ~10 s 720p clip)")
    print(f"# deepshield serve latency, {args.video.name}, median of {args.repeats} after a warm-up; "
          f"{machine_line()}")
    predictor = Predictor(PredictConfig(inputs=(), checkpoint="default", frames=args.frames))
    base_s, base_cpu, base = timed(lambda: predictor.predict(args.video), args.repeats)
    print(f"predict alone (baseline, no Grad-CAM/alarm): {base_s:6.2f} s wall, {base_cpu:6.2f} s CPU  "
          f"({base.frames_sampled} frames, {len(base.faces)} faces, p_fake {base.p_fake:.3f})")
    rows = [("serve, upload to verdict (defaults: Grad-CAM + alarm)", {}),
            ("serve, upload to verdict (--no-explain --no-attack-check)", {"explain": False,
                                                                          "check_attack": False})]
    for name, flags in rows:
        seconds, cpu, body = served(args.video, args.repeats, frames=args.frames, **flags)
        print(f"{name}: {seconds:6.2f} s wall, {cpu:6.2f} s CPU; ratio vs baseline {seconds / base_s:.2f}x "
              f"wall, {cpu / base_cpu:.2f}x CPU ({body['label']}, p_fake {body['p_fake']:.3f})  "
              f"target <= {TARGET_S:g} s: {'met' if seconds <= TARGET_S else 'MISSED'}")


if __name__ == "__main__":
    main()
