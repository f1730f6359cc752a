"""Face preprocessing throughput: deepshield's pipeline vs the naive one, in the same run.

Naive (what an ``ffmpeg -vf fps=1`` + detector script does): decode every frame sequentially with PyAV
(library defaults), save the sampled frames as JPEG (quality 95) to a temp folder, then run
facenet-pytorch's MTCNN on each file, one at a time, at full resolution, and keep the largest face.
Ours: ``run_preprocess`` (decode only what the sampled frames need, batched MTCNN whose first stage sees
frames downscaled to ``--max-side``, crops and catalog written), with 1 and with 2 worker processes.
Both use the same MTCNN weights and thresholds, the same sampled frames (the naive pipeline is handed
the frame indices; choosing them is not timed) and keep the largest face scoring >= --min-score.
Ours with 2 workers includes starting the worker processes (importing torch and facenet-pytorch).
Prints frames/s, CPU-seconds per frame, the speed-ups, and the share of frames whose boxes agree
(IoU >= 0.9; a frame where both find no face agrees). Asserts nothing.

    python benchmarks/preprocess.py [--root ../shared/data/dev/ffpp] [--max-side 640] [--naive-threads 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
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
from deepshield.data.video import sample_indices

DEV_FFPP = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev" / "ffpp"


def frame_plan(path: Path, sampling: dict) -> list[int]:
    """Indices of the sampled frames (same rule as ours), from packet timestamps."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = sorted(p.pts for p in container.demux(stream) if p.size)
        return sample_indices([float((p - pts[0]) * stream.time_base) for p in pts], **sampling)


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


def naive(
    mtcnn: MTCNN, videos: list[VideoRecord], plans: dict[str, list[int]], workdir: Path, min_score: float
) -> dict:
    """Decode all, dump sampled frames as JPEG, MTCNN per file at full resolution -> largest box per frame."""
    boxes: dict[tuple[str, int], np.ndarray | None] = {}
    for video in videos:
        wanted, files = set(plans[video.video_id]), []
        with av.open(str(video.path)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index in wanted:
                    files.append((index, workdir / f"{video.path.stem}_{index:06d}.jpg"))
                    frame.to_image().save(files[-1][1], quality=95)
        for index, file in files:
            found, probs = mtcnn.detect(Image.open(file).convert("RGB"))
            boxes[(video.video_id, index)] = None
            if found is not None:
                found = np.asarray(found, dtype=float)[np.asarray(probs, dtype=float) >= min_score]
                if len(found):
                    areas = (found[:, 2] - found[:, 0]) * (found[:, 3] - found[:, 1])
                    boxes[(video.video_id, index)] = found[np.argmax(areas)]
    return boxes


def ours(cfg: PreprocessConfig) -> dict:
    """run_preprocess -> the box of face 0 of every frame in the catalog."""
    run_preprocess(cfg, progress=False)
    rows = read_catalog(cfg.out / "catalog.csv")
    return {
        (r.video_id, r.frame_index): np.array([r.x0, r.y0, r.x1, r.y1]) for r in rows if r.face_index == 0
    }


def agreement(reference: dict, boxes: dict) -> float:
    """Share of frames whose boxes have IoU >= 0.9 (or where neither pipeline found a face)."""
    agree = 0
    for key, ref in reference.items():
        box = boxes.get(key)
        both_none = ref is None and box is None
        agree += both_none or (ref is not None and box is not None and box_iou(ref, box) >= 0.9)
    return agree / len(reference)


def line(
    sampling: str, frames: str, name: str, fps: str, ratio: str, cpu: str, cpu_ratio: str, agree: str
) -> str:
    return f"{sampling:<12}{frames:>7}  {name:<17}{fps:>9}{ratio:>7}{cpu:>9}{cpu_ratio:>7}{agree:>8}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=DEV_FFPP)
    ap.add_argument("--max-side", type=int, default=640)
    ap.add_argument("--min-score", type=float, default=0.9)
    ap.add_argument("--naive-threads", type=int, default=1, help="torch threads of the naive pipeline")
    args = ap.parse_args()
    videos = scan_layout("ffpp", args.root).records
    mtcnn = MTCNN(keep_all=True, device="cpu")  # built before timing; ours builds its own inside its time
    print(f"{len(videos)} videos; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    print(f"naive: {args.naive_threads} torch thread(s); ours: 1 per process, max side {args.max_side}")
    print("frames/s: wall clock. cpu: CPU-seconds per frame (less disturbed by other jobs on the machine).")
    print("ratio: ours vs naive. agree: frames whose boxes have IoU >= 0.9 (or where neither finds a face).")
    print(line("sampling", "frames", "pipeline", "frames/s", "ratio", "cpu s/f", "ratio", "agree"))
    for label, flag, sampling in (
        ("1 fps", {"fps": 1.0}, {"fps": 1.0}),
        ("8 per video", {"frames_per_video": 8}, {"num_frames": 8}),
    ):
        plans = {v.video_id: frame_plan(v.path, sampling) for v in videos}
        n = sum(map(len, plans.values()))
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            (tmp / "jpg").mkdir()
            threads = torch.get_num_threads()
            torch.set_num_threads(args.naive_threads)
            with Clock() as base:
                reference = naive(mtcnn, videos, plans, tmp / "jpg", args.min_score)
            torch.set_num_threads(threads)
            print(line(label, str(n), "naive", f"{n / base.wall:.2f}", "", f"{base.cpu / n:.3f}", "", ""))
            for workers in (1, 2):
                cfg = PreprocessConfig(
                    args.root,
                    "ffpp",
                    tmp / f"w{workers}",
                    workers=workers,
                    max_side=args.max_side,
                    min_score=args.min_score,
                    **flag,
                )
                with Clock() as run:
                    boxes = ours(cfg)
                speed, name = f"{base.wall / run.wall:.1f}", f"ours, {workers} worker(s)"
                # Workers are forked by multiprocessing's fork server, so their CPU time is not ours to read.
                cpu, cpu_ratio = (
                    (f"{run.cpu / n:.3f}", f"{base.cpu / run.cpu:.1f}") if workers == 1 else ("-", "-")
                )
                agree = f"{agreement(reference, boxes):.1%}"
                print(line("", "", name, f"{n / run.wall:.2f}", speed, cpu, cpu_ratio, agree))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
