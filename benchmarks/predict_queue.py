"""``deepshield predict`` for a moderation queue: start-up, one clip, a folder; old path vs new default.

Old path: PyTorch scoring, facenet-pytorch's MTCNN on every sampled frame, one process
(``--runtime torch --detector-runtime torch --detect-every 1 --workers 0``); with ``--baseline-src`` the
code of another checkout runs it instead (e.g. ``git worktree add /tmp/before b7961de``: also measures
its slower start-up).
New default: ``--runtime auto`` (the bundled model's ONNX export), ``--detector-runtime auto`` (MTCNN's
nets on ONNX Runtime: no torch imported), worker processes for folders, and
``--detect-every`` when given (tracking is opt-in: see ``benchmarks/predict_tracking.py``). Each row
runs the real CLI in a fresh process (start-up included), interleaved
old/new, median of ``--repeats``; ratios are old / new.

Rows: ``--help``; a face image (``predict face.jpg``: start-up plus one face); the 12.4 s 720p FF++ clip
004.mp4 end to end and beyond start-up (minus the face-image run); a folder of FF++ dev clips
(``ffpp`` + ``ffpp_extra``, ``--limit`` of them) as videos/hour. Issue targets: face image <= 1.5 s,
``--help`` <= 0.5 s, the clip <= 0.6 s beyond start-up and <= 2.5 s end to end, the folder >= 3x.

    python benchmarks/predict_queue.py                         # every row, 3 repeats, 24 folder clips
    python benchmarks/predict_queue.py --baseline-src /tmp/before/src --limit 96 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_line

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared/data/dev"
CLIP = DEV / "ffpp/original_sequences/youtube/c23/videos/004.mp4"


def run(argv: list[str], src: Path | None) -> float:
    """Wall seconds of ``python -m deepshield ARGV`` in a fresh process (``src``: another checkout)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "deepshield", *argv]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode not in (0, 3):
        raise SystemExit(f"deepshield {' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return took


def face_image(tmp: Path) -> Path:
    """A face photo: the middle frame of the clip (as a user's JPEG)."""
    sys.path.insert(0, str(ROOT / "src"))
    from PIL import Image

    from deepshield.data.video import read_media

    frame = next(iter(read_media(CLIP, num_frames=1)))
    path = tmp / "face.jpg"
    Image.fromarray(frame.image).save(path, quality=92)
    return path


def folder(tmp: Path, limit: int) -> Path:
    clips = sorted(p for d in ("ffpp", "ffpp_extra") for p in (DEV / d).rglob("*.mp4"))[:limit]
    out = tmp / "queue"
    out.mkdir()
    for i, clip in enumerate(clips):
        (out / f"{i:03d}_{clip.name}").symlink_to(clip)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--limit", type=int, default=24, help="folder: first N FF++ dev clips (96 in all)")
    ap.add_argument("--detect-every", type=int, default=None, help="the new path's --detect-every")
    ap.add_argument("--baseline-src", type=Path, default=None, help="run the old path from this src folder")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="predict-queue-"))
    try:
        image, queue = face_image(tmp), folder(tmp, args.limit)
        old_flags = ([] if args.baseline_src else
                     ["--runtime", "torch", "--detector-runtime", "torch", "--detect-every", "1",
                      "--workers", "0"])
        new_flags = [] if args.detect_every is None else ["--detect-every", str(args.detect_every)]
        rows = {"--help": (["--help"], ["--help"]),
                "face image": (["predict", str(image), *old_flags], ["predict", str(image), *new_flags]),
                "clip 004.mp4": (["predict", str(CLIP), *old_flags], ["predict", str(CLIP), *new_flags])}
        times: dict[str, tuple[float, float]] = {}
        for name, (old, new) in rows.items():
            pairs = [(run(old, args.baseline_src), run(new, None)) for _ in range(args.repeats)]
            times[name] = (statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs))
        print(machine_line())
        print(f"old: {'checkout ' + str(args.baseline_src) if args.baseline_src else ' '.join(old_flags)}; "
              f"new: defaults {' '.join(new_flags)}; median of {args.repeats}, fresh processes")
        for name, (old, new) in times.items():
            print(f"{name:<28} old {old:6.2f} s   new {new:6.2f} s   ratio {old / new:5.2f}x")
        beyond = [times["clip 004.mp4"][i] - times["face image"][i] for i in (0, 1)]
        print(f"{'clip beyond start-up':<28} old {beyond[0]:6.2f} s   new {beyond[1]:6.2f} s   ratio "
              f"{beyond[0] / max(beyond[1], 1e-9):5.2f}x  (clip minus the face-image run)")
        n = len(list(queue.iterdir()))
        old_s = run(["predict", str(queue), *old_flags], args.baseline_src)
        new_s = run(["predict", str(queue), *new_flags], None)
        print(f"{'folder of ' + str(n) + ' FF++ clips':<28} old {old_s:6.1f} s   new {new_s:6.1f} s   "
              f"{n * 3600 / old_s:,.0f} vs {n * 3600 / new_s:,.0f} clips/hour: {old_s / new_s:4.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
