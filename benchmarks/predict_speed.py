"""``deepshield predict`` on one clip, by stage: the path before issue 23 vs today's default.

Before: PyTorch scores the crops and facenet-pytorch's MTCNN finds the faces (``--runtime torch
--detector-runtime torch``). Now: the defaults, ONNX Runtime for both (the bundled model's shipped export
and MTCNN's nets as ONNX). Both in this process, after loading (start-up is ``benchmarks/predict_queue.py``).

Video: the FF++ dev video ``original_sequences/youtube/c23/videos/004.mp4`` (1280x720, 12.4 s, 32 sampled
frames). Per path, medians of ``--repeats`` (interleaved): decode (the sampled frames), detect (as predict
runs it: torch on one thread, ONNX Runtime on the cores), crop (cut + resize), score, and the whole
``Predictor.predict`` (decoding overlaps detection there); wall s and CPU s of the process. Then the load
time of each path, and whether both find the same faces and scores. Issue target: the clip <= 0.6 s
beyond start-up.

    python benchmarks/predict_speed.py                         # default model, 004.mp4, 3 repeats
    python benchmarks/predict_speed.py --video clip.mp4 --repeats 5 --every 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from machine import machine_line  # noqa: E402

from deepshield.config import PredictConfig  # noqa: E402
from deepshield.data.faces import DETECT_BATCH, build_selector  # noqa: E402
from deepshield.data.tracking import tracked_faces  # noqa: E402
from deepshield.data.video import read_media  # noqa: E402
from deepshield.predict import Predictor  # noqa: E402
from deepshield.runtime import single_thread  # noqa: E402

VIDEO = (Path(__file__).resolve().parents[1].parent / "shared/data/dev/ffpp/original_sequences/youtube/c23/"
         "videos/004.mp4")
STAGES = ("decode", "detect", "crop", "score", "predict")
PATHS = {"before": {"runtime": "torch", "detector_runtime": "torch"}, "now": {}}


def timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    """(result, wall s, CPU s of the whole process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def stage_times(p: Predictor, video: Path) -> dict:
    """{stage: (wall s, CPU s)} of one clip through ``p``, each stage on its own, then the whole."""
    s, every = p.settings, p.cfg.detect_every
    frames, *decode = timed(lambda: [f.image for f in read_media(video, **s.sampling)])

    def detect():
        selector, chunk, kept = build_selector(s.faces), max(DETECT_BATCH, 4 * every), []
        for i in range(0, len(frames), chunk):
            with single_thread():  # as FaceCutter runs it (a no-op without torch)
                kept += tracked_faces(frames[i:i + chunk], p.detector, selector, s.min_score, every)
        return kept

    kept, *detect_t = timed(detect)
    crops, *crop_t = timed(lambda: [p._crop(im, face.box) for im, faces in zip(frames, kept, strict=True)
                                    for _, face in faces])
    _, *score_t = timed(lambda: p._score(crops))
    result, *whole = timed(lambda: p.predict(video))
    return {"decode": decode, "detect": detect_t, "crop": crop_t, "score": score_t, "predict": whole,
            "result": result}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=VIDEO)
    ap.add_argument("--checkpoint", default="default")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--every", type=int, default=1, help="--detect-every of the new path")
    args = ap.parse_args()
    if not args.video.is_file():
        raise SystemExit(f"{args.video} not found; pass --video a 720p clip")
    start = time.perf_counter()
    predictors, load = {}, {}
    for name, flags in PATHS.items():
        every = args.every if name == "now" else 1
        cfg = PredictConfig(inputs=(str(args.video),), checkpoint=args.checkpoint, device="cpu",
                            detect_every=every, **flags)
        predictors[name], load[name], _ = timed(lambda cfg=cfg: Predictor(cfg))
    for p in predictors.values():  # warm-up: first-call allocations and lazy imports
        p.predict(args.video)
    runs: dict[str, list[dict]] = {n: [] for n in PATHS}
    for _ in range(args.repeats):
        for name, p in predictors.items():
            runs[name].append(stage_times(p, args.video))

    res = {n: r[-1]["result"] for n, r in runs.items()}
    print(f"video: {args.video.name} ({res['now'].frames_sampled} frames sampled, {len(res['now'].faces)} "
          f"faces); checkpoint {args.checkpoint}; median of {args.repeats}; new path --detect-every "
          f"{args.every}")
    print(f"load (after imports): before {load['before']:.2f} s, now {load['now']:.2f} s")
    print(f"\n{'wall s (CPU s)':<10}" + "".join(f"{s:>16}" for s in STAGES))
    med = {n: {s: (statistics.median(r[s][0] for r in runs[n]),
                   statistics.median(r[s][1] for r in runs[n])) for s in STAGES} for n in PATHS}
    for name in PATHS:
        print(f"{name:<10}" + "".join(f"{w:>8.3f} ({c:>5.2f})" for w, c in med[name].values()))
    print(f"{'ratio':<10}" + "".join(f"{med['before'][s][0] / med['now'][s][0]:>15.2f}x" for s in STAGES))
    boxes = [np.array([f.box for f in res[n].faces]) for n in PATHS]
    shift = float(np.abs(boxes[0] - boxes[1]).max()) if boxes[0].shape == boxes[1].shape else float("inf")
    print(f"same faces: {len(res['before'].faces)} vs {len(res['now'].faces)}, boxes move by at most "
          f"{shift:.1e} px; video p(fake) before {res['before'].p_fake:.4f}, now {res['now'].p_fake:.4f}")
    print(f"target: the clip <= 0.6 s beyond start-up: predict {med['now']['predict'][0]:.2f} s "
          f"({'met' if med['now']['predict'][0] <= 0.6 else 'MISSED'})")
    print(f"\n{machine_line()}; {time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
