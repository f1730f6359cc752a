"""Face preprocessing throughput: deepshield's pipeline vs the naive one, in the same run.

Naive (what an ``ffmpeg -vf fps=1`` + detector script does): decode every frame sequentially with PyAV
(library defaults), save the sampled frames as JPEG (quality 95) to a temp folder, then run
facenet-pytorch's MTCNN on each file, one at a time, at full resolution, and keep the largest face.
Ours: ``run_preprocess`` (decode only what the sampled frames need, batched MTCNN whose first stage sees
frames downscaled to ``--max-side``, crops and catalog written), at the exact sampled instants, and with
``--keyframes`` (1 and 2 worker processes). The naive pipeline is handed the frames ours with
``--keyframes`` takes (choosing them is not timed; its cost hardly depends on which frames), and both
keep the largest face scoring >= --min-score with the same MTCNN weights and thresholds.

The pipelines run interleaved, ``--repeats`` rounds, and each is scored by its fastest round: other
jobs on the machine slow every pipeline alike within a round, and the load average is printed per round.
Prints frames/s (wall), CPU-seconds per frame (this process and its children; not measurable for the
fork-server workers), the speed-ups, the box agreement (the selected face's box with IoU >= 0.5 to the
naive one, or no face in both) against the naive pipeline and against the same detector run untimed on
the decoded frames themselves (``agree.raw``, also at IoU >= 0.9): the naive pipeline's JPEG step alone
moves faces whose score is near --min-score across it, which its own row shows), the frame-position
error ``--keyframes`` costs (|frame| and |seconds| moved, mean and max over the sampled frames) and the
machine line. Asserts nothing.

    python benchmarks/preprocess.py [--root ../shared/data/dev/ffpp] [--max-side 640] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
import torch
from facenet_pytorch import MTCNN
from PIL import Image

from deepshield.data.catalog import read_catalog
from deepshield.data.faces import box_iou
from deepshield.data.layouts import VideoRecord, scan_layout
from deepshield.data.preprocess import PreprocessConfig, run_preprocess
from deepshield.data.video import index_video, keyframe_positions, sample_indices

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_line  # noqa: E402

DEV_FFPP = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev" / "ffpp"
SAMPLINGS = (("1 fps", {"fps": 1.0}, {"fps": 1.0}),
             ("8 per video", {"frames_per_video": 8}, {"num_frames": 8}))


def keyframe_plans(videos: list[VideoRecord], sampling: dict) -> tuple[dict[str, list[int]], list[tuple]]:
    """Frames ``--keyframes`` takes per video, and (|frame shift|, |time shift| s) of each sampled frame."""
    plans, shifts = {}, []
    for video in videos:
        index = index_video(video.path)
        moved = keyframe_positions(sample_indices(index.times_s, **sampling), index.keyframes,
                                   len(index.times_s))
        plans[video.video_id] = sorted(moved.values())
        shifts += [(abs(m - p), abs(index.times_s[m] - index.times_s[p])) for p, m in moved.items()]
    return plans, shifts


class Clock:
    """Wall time and CPU time (this process and its finished children) of a block, in seconds."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, _cpu() - self.cpu


def _cpu() -> float:
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def _sampled_frames(video: VideoRecord, wanted: set[int]) -> Iterator[tuple[int, Image.Image]]:
    """Every frame of ``video`` decoded in order; those at the ``wanted`` positions, as images."""
    with av.open(str(video.path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                yield index, frame.to_image()


def naive(
    mtcnn: MTCNN, videos: list[VideoRecord], plans: dict[str, list[int]], workdir: Path, min_score: float
) -> dict:
    """Decode all, dump sampled frames as JPEG, MTCNN per file at full resolution -> largest box per frame."""
    boxes: dict[tuple[str, int], np.ndarray | None] = {}
    for video in videos:
        files = []
        for index, image in _sampled_frames(video, set(plans[video.video_id])):
            files.append((index, workdir / f"{video.path.stem}_{index:06d}.jpg"))
            image.save(files[-1][1], quality=95)
        for index, file in files:
            found = mtcnn.detect(Image.open(file).convert("RGB"))
            boxes[(video.video_id, index)] = _largest(*found, min_score)
    return boxes


def naive_lossless(
    mtcnn: MTCNN, videos: list[VideoRecord], plans: dict[str, list[int]], min_score: float
) -> dict:
    """The naive pipeline's detector on the decoded frames themselves (no JPEG round trip); not timed."""
    return {(video.video_id, index): _largest(*mtcnn.detect(image), min_score)
            for video in videos for index, image in _sampled_frames(video, set(plans[video.video_id]))}


def _largest(found: np.ndarray | None, probs: np.ndarray | None, min_score: float) -> np.ndarray | None:
    """The largest box scoring >= min_score (facenet's boxes may be object arrays under numpy 2)."""
    if found is None:
        return None
    found = np.asarray(found, dtype=float)[np.asarray(probs, dtype=float) >= min_score]
    if not len(found):
        return None
    return found[np.argmax((found[:, 2] - found[:, 0]) * (found[:, 3] - found[:, 1]))]


def ours(cfg: PreprocessConfig) -> dict:
    """run_preprocess -> the box of face 0 of every frame in the catalog."""
    run_preprocess(cfg, progress=False)
    rows = read_catalog(cfg.out / "catalog.csv")
    return {
        (r.video_id, r.frame_index): np.array([r.x0, r.y0, r.x1, r.y1]) for r in rows if r.face_index == 0
    }


def agreement(reference: dict, boxes: dict, min_iou: float) -> float:
    """Share of the reference's frames whose selected boxes have IoU >= min_iou (or neither has a face)."""
    agree = 0
    for key, ref in reference.items():
        box = boxes.get(key)
        both_none = ref is None and box is None
        agree += both_none or (ref is not None and box is not None and box_iou(ref, box) >= min_iou)
    return agree / len(reference)


def line(*cells: str) -> str:
    widths = (11, 6, 28, 8, 6, 8, 6, 7, 9, 9)
    return " ".join(f"{c:<{w}}" if i in (0, 2) else f"{c:>{w}}"
                   for i, (c, w) in enumerate(zip(cells, widths, strict=True)))


def pipelines(args: argparse.Namespace, flag: dict) -> dict[str, Callable[[Path], dict]]:
    """Our three configurations, each a function of its output folder -> boxes."""

    def ours_with(workers: int, keyframes: bool) -> Callable[[Path], dict]:
        return lambda out: ours(PreprocessConfig(args.root, "ffpp", out, workers=workers, keyframes=keyframes,
                                                 max_side=args.max_side, min_face_size=args.min_face_size,
                                                 min_score=args.min_score, **flag))

    return {"ours exact, 1 worker": ours_with(1, False), "ours --keyframes, 1 worker": ours_with(1, True),
            "ours --keyframes, 2 workers": ours_with(2, True)}


def run_rounds(args: argparse.Namespace, mtcnn: MTCNN, videos: list[VideoRecord], plans: dict,
               runs: dict[str, Callable[[Path], dict]]) -> tuple[dict[str, Clock], dict[str, dict]]:
    """Each pipeline once per round, interleaved; its fastest round and its boxes."""
    best: dict[str, Clock] = {}
    boxes: dict[str, dict] = {}
    for round_ in range(args.repeats):
        loads = [os.getloadavg()[0]]
        with tempfile.TemporaryDirectory() as tmp:
            for name in ["naive", *runs]:
                out = Path(tmp) / name.replace(" ", "_")
                out.mkdir()
                threads = torch.get_num_threads()
                torch.set_num_threads(args.naive_threads)
                with Clock() as clock:
                    if name == "naive":
                        boxes[name] = naive(mtcnn, videos, plans, out, args.min_score)
                    else:
                        boxes[name] = runs[name](out)
                torch.set_num_threads(threads)
                if name not in best or clock.wall < best[name].wall:
                    best[name] = clock
                loads.append(os.getloadavg()[0])
        print(f"round {round_ + 1}: load average {' -> '.join(f'{x:.1f}' for x in loads)}")
    return best, boxes


def report(label: str, n: int, best: dict[str, Clock], boxes: dict[str, dict], lossless: dict) -> None:
    head = ("sampling", "frames", "pipeline", "frames/s", "ratio", "cpu s/f", "ratio", "agree", "agree.raw")
    print(line(*head, "raw.9"))
    base = best["naive"]
    for name, clock in best.items():
        # Fork-server workers are not our children: their CPU time is not ours to read.
        cpu = "-" if "2 workers" in name else f"{clock.cpu / n:.3f}"
        cpu_ratio = "-" if "2 workers" in name or name == "naive" else f"{base.cpu / clock.cpu:.1f}"
        speed = "" if name == "naive" else f"{base.wall / clock.wall:.1f}"
        same_frames = name == "naive" or "--keyframes" in name  # naive decodes the --keyframes frames
        agree = [f"{agreement(ref, boxes[name], iou):.1%}" if same_frames else "-"
                 for ref, iou in ((boxes["naive"], 0.5), (lossless, 0.5), (lossless, 0.9))]
        first = name == "naive"
        print(line(label if first else "", str(n) if first else "", name, f"{n / clock.wall:.2f}", speed, cpu,
                   cpu_ratio, *agree))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=DEV_FFPP)
    ap.add_argument("--max-side", type=int, default=640)
    ap.add_argument("--min-score", type=float, default=0.9)
    ap.add_argument("--min-face-size", type=int, default=PreprocessConfig.min_face_size,
                    help="ours; naive keeps facenet's 20")
    ap.add_argument("--naive-threads", type=int, default=1, help="torch threads of every pipeline")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved rounds; each pipeline's best counts")
    args = ap.parse_args()
    videos = scan_layout("ffpp", args.root).records
    mtcnn = MTCNN(keep_all=True, device="cpu")  # built before timing; ours builds its own inside its time
    print(machine_line())
    print(f"{len(videos)} videos; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    print(f"naive: {args.naive_threads} torch thread(s); ours: 1 per process, max side {args.max_side}, "
          f"min face {args.min_face_size} px")
    print("frames/s: wall clock. cpu s/f: CPU-seconds per frame (less disturbed by other jobs). ratio: "
          "naive / ours.\nagree: selected box IoU >= 0.5 with naive's on the same frames (or no face in "
          "both); agree.raw: the same against naive's detector on the decoded frames (no JPEG); raw.9: "
          "IoU >= 0.9.")
    for label, flag, sampling in SAMPLINGS:
        plans, shifts = keyframe_plans(videos, sampling)
        frames_moved, seconds_moved = np.array(shifts, dtype=float).T
        print(f"\n{label}: --keyframes moves a sampled frame by {frames_moved.mean():.1f} frames "
              f"({seconds_moved.mean():.2f} s) on average, {frames_moved.max():.0f} "
              f"({seconds_moved.max():.2f} s) at most; {np.mean(frames_moved == 0):.0%} stay put")
        best, boxes = run_rounds(args, mtcnn, videos, plans, pipelines(args, flag))
        report(label, sum(map(len, plans.values())), best, boxes, naive_lossless(mtcnn, videos, plans,
                                                                                  args.min_score))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
