"""``deepshield predict`` time per video with the bundled model, PyTorch vs ONNX Runtime, by stage.

Video: the FF++ dev video ``original_sequences/youtube/c23/videos/004.mp4`` (1280x720, 12.4 s; used whole:
predict samples a fixed number of frames (32) evenly, and each is decoded from its nearest keyframe, so a
10 s cut would cost the same or less). Issue target: predict on a 10 s 720p video <= 10 s.

Per video (median of ``--repeats``, runtimes interleaved): decode (sampled frames), detect (MTCNN),
crop (cut + resize), score (the model), and the end-to-end ``Predictor.predict`` (the real path, which
interleaves decode and detection); wall seconds and CPU seconds (all threads of this process: less
disturbed by other jobs on a shared machine). Detection runs on one thread, as predict now does, and
again on torch's thread count, as predict did before (the ratio, and whether the boxes agree). Then the
scoring-only ratio on batches of crops, the
one-time costs (load; the first ``--runtime onnx`` use of a checkpoint exports it into the cache), and
the parity of the two runtimes on the video's faces. Both runtimes use torch's intra-op thread count.

    python benchmarks/predict_speed.py                         # default model, 004.mp4, 3 repeats
    python benchmarks/predict_speed.py --video clip.mp4 --repeats 5 --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from machine import machine_line  # noqa: E402

from deepshield.config import PredictConfig  # noqa: E402
from deepshield.data.faces import (  # noqa: E402
    DETECT_BATCH,  # noqa: E402
    build_selector,
    faces_in,
)
from deepshield.data.video import read_media  # noqa: E402
from deepshield.predict import Predictor  # noqa: E402

VIDEO = (Path(__file__).resolve().parents[1].parent / "shared/data/dev/ffpp/original_sequences/youtube/c23/"
         "videos/004.mp4")
STAGES = ("decode", "detect", "crop", "score")


def timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    """(result, wall s, CPU s of the whole process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def stage_times(p: Predictor, video: Path, threads_before: int) -> dict:
    """Decode, detect and crop run on their own: {stage: (wall s, CPU s)}, and the crops. Detection
    runs on one thread, as predict does, and again on ``threads_before`` (what predict used before)."""
    s = p.settings
    sampling = {"fps": s.fps} if s.fps is not None else {"num_frames": s.frames}
    frames, *decode = timed(lambda: list(read_media(video, **sampling)))

    def detect(threads: int):
        selector, kept = build_selector(s.faces), []
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        for i in range(0, len(frames), DETECT_BATCH):
            batch = frames[i:i + DETECT_BATCH]
            kept += zip(batch, faces_in([f.image for f in batch], p.detector, selector, s.min_score),
                        strict=True)
        torch.set_num_threads(before)
        return kept

    def crops_of(kept):
        return [p._crop(fr.image, face.box) for fr, faces in kept for _, face in faces]

    kept, *detect_t = timed(lambda: detect(1))  # as predict does
    kept_before, *detect_before = timed(lambda: detect(threads_before))
    crops, *crop_t = timed(lambda: crops_of(kept))
    boxes = [f.box for _, faces in kept for _, f in faces]
    boxes_before = [f.box for _, faces in kept_before for _, f in faces]
    if len(boxes) != len(boxes_before):
        agree, shift = False, float("inf")
    else:
        agree = all(np.array_equal(a, b) for a, b in zip(crops, crops_of(kept_before), strict=True))
        shift = float(np.abs(np.array(boxes) - np.array(boxes_before)).max(initial=0.0))
    return {"decode": tuple(decode), "detect": tuple(detect_t), "crop": tuple(crop_t), "crops": crops,
            "detect_before": tuple(detect_before), "same_crops": agree, "box_shift": shift}


def median_of(runs: list[dict], key: str) -> tuple[float, float]:
    return (statistics.median(r[key][0] for r in runs), statistics.median(r[key][1] for r in runs))


def score_only(p: Predictor, crops: list[np.ndarray], repeats: int) -> float:
    """Median wall seconds of ``_score`` on ``crops`` (after one warm-up call)."""
    p._score(crops)
    return statistics.median(timed(lambda: p._score(crops))[1] for _ in range(repeats))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=VIDEO)
    ap.add_argument("--checkpoint", default="default")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch (and ONNX Runtime) threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.video.is_file():
        raise SystemExit(f"{args.video} not found; pass --video a 720p clip")
    start = time.perf_counter()
    cache = tempfile.TemporaryDirectory(prefix="deepshield-bench-cache-")  # removed at exit
    os.environ["DEEPSHIELD_CACHE"] = cache.name  # a cold cache: the first onnx load measures the export

    predictors, load = {}, {}
    for runtime in ("torch", "onnx", "onnx (cached)"):
        cfg = PredictConfig(inputs=(str(args.video),), checkpoint=args.checkpoint,
                            runtime=runtime.split()[0], device="cpu")
        predictors[runtime.split()[0]], load[runtime], _ = timed(lambda cfg=cfg: Predictor(cfg))
    runtimes = ("torch", "onnx")

    # decode, detect and crop are the same work for both runtimes: timed once per repeat (torch's
    # predictor); scoring and the end-to-end run are timed per runtime, interleaved, so load from
    # other jobs hits both alike
    stages: dict[str, list[dict]] = {r: [] for r in runtimes}
    whole: dict[str, list[tuple[float, float]]] = {r: [] for r in runtimes}
    results = {}
    for _ in range(args.repeats):
        shared = stage_times(predictors["torch"], args.video, torch.get_num_threads())
        for r in runtimes:
            score = timed(lambda r=r, c=shared["crops"]: predictors[r]._score(c))[1:]
            stages[r].append({**shared, "score": score})
            results[r], *t = timed(lambda r=r: predictors[r].predict(args.video))
            whole[r].append(tuple(t))

    res = results["torch"]
    print(f"video: {args.video} ({res.frames_sampled} frames sampled, {len(res.faces)} faces); "
          f"checkpoint {args.checkpoint}; median of {args.repeats}")
    print(f"load, once per process: torch {load['torch']:.1f} s; onnx first use of the checkpoint "
          f"(export into the cache) {load['onnx']:.1f} s, then {load['onnx (cached)']:.1f} s")
    header = "".join(f"{s:>15}" for s in STAGES)
    print(f"\n{'per video, wall s (CPU s)':<26}{header}{'end-to-end':>17}")
    e2e = {}
    for r in runtimes:
        cells = "".join(f"{w:>7.2f} ({c:>5.2f})" for w, c in (median_of(stages[r], s) for s in STAGES))
        e2e[r] = (statistics.median(w for w, _ in whole[r]), statistics.median(c for _, c in whole[r]))
        print(f"{r:<26}{cells}  {e2e[r][0]:>6.2f} ({e2e[r][1]:>5.2f})")
    print(f"end-to-end ratio onnx/torch: wall {e2e['onnx'][0] / e2e['torch'][0]:.2f}, "
          f"CPU {e2e['onnx'][1] / e2e['torch'][1]:.2f}; target <= 10 s per 10 s 720p video: "
          f"{'met' if max(w for w, _ in e2e.values()) <= 10 else 'MISSED'} "
          f"(torch {e2e['torch'][0]:.1f} s, onnx {e2e['onnx'][0]:.1f} s)")

    before, now = median_of(stages["torch"], "detect_before"), median_of(stages["torch"], "detect")
    print(f"detection on {torch.get_num_threads()} threads (predict before) {before[0]:.2f} s "
          f"({before[1]:.2f}), on 1 thread (now) {now[0]:.2f} s ({now[1]:.2f}): wall ratio now/before "
          f"{now[0] / before[0]:.2f}; boxes move by at most "
          f"{max(r['box_shift'] for r in stages['torch']):.1e} px (float rounding), crops identical: "
          f"{all(r['same_crops'] for r in stages['torch'])}")

    crops = stages["torch"][0]["crops"]
    for n in (len(crops), 256):
        batch = [crops[i % len(crops)] for i in range(n)]
        t = {r: score_only(predictors[r], batch, max(3, args.repeats)) for r in runtimes}
        print(f"scoring only, {n} crops (batch {predictors['torch'].cfg.batch_size}): torch "
              f"{1000 * t['torch']:.0f} ms, onnx {1000 * t['onnx']:.0f} ms; ratio onnx/torch "
              f"{t['onnx'] / t['torch']:.2f} (speed-up {t['torch'] / t['onnx']:.2f}x)")

    other = results["onnx"]
    same_boxes = [f.box for f in res.faces] == [f.box for f in other.faces]
    diff = max(abs(a.p_fake - b.p_fake) for a, b in zip(res.faces, other.faces, strict=True))
    print(f"parity: max |p_onnx - p_torch| over the video's faces {diff:.1e}; boxes identical: {same_boxes}; "
          f"video p(fake) torch {res.p_fake:.4f}, onnx {other.p_fake:.4f}")
    print(f"\n{machine_line()}; {time.perf_counter() - start:.0f} s in all (timings noisy on a shared "
          "machine; CPU seconds less so)")


if __name__ == "__main__":
    main()
