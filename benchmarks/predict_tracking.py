"""Does the default face detector find the faces today's path found, and give the same verdicts?

For every FF++ dev clip (``../shared/data/dev/ffpp`` + ``ffpp_extra``: 96 videos, real = original_sequences)
the sampled frames are decoded once and facenet-pytorch's MTCNN runs on every one of them: the reference
(``--detector-runtime torch --detect-every 1``, the path before issue 23). Compared with it:

- ``onnx``: the same nets on ONNX Runtime (``--detector-runtime auto``, the default), every frame;
- ``onnx, --detect-every N``: tracking replayed on the ONNX detections (the detector is deterministic, so
  a key frame's faces are the ones full detection found there), with O-Net's ``refine`` run for real.

Printed per row: detector runs (share of frames), box agreement with the reference (sampled frames where
the reference has a face and the row has one with IoU >= 0.5), faces missed/added, video verdicts
identical (at the model's threshold), video AUC; and both detectors' seconds on one thread. Issue
targets: box agreement >= 97%, verdicts identical on >= 98% of clips, AUC within 0.01. The bundled default
trained on these clips' FF++ people (``make cross``), so its AUC here is not a generalization figure;
agreement is what this measures. Timings end to end: ``benchmarks/predict_queue.py``.

    python benchmarks/predict_tracking.py                       # bundled default, N = 4, 8
    python benchmarks/predict_tracking.py --every 4 --limit 20 --checkpoint robust
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from deepshield.config import PredictConfig  # noqa: E402
from deepshield.data.faces import DETECT_BATCH, Face, box_iou, build_selector  # noqa: E402
from deepshield.data.mtcnn_onnx import build_face_detector  # noqa: E402
from deepshield.data.tracking import tracked_faces  # noqa: E402
from deepshield.data.video import read_media  # noqa: E402
from deepshield.predict import Predictor  # noqa: E402
from deepshield.runtime import single_thread  # noqa: E402

DEV = Path(__file__).resolve().parents[1].parent / "shared/data/dev"


class Replay:
    """A detector that answers from full detection's results (by frame) and counts its calls; its O-Net
    ``refine`` stage runs for real (it is cheap, and what tracking adds)."""

    def __init__(self, faces: dict[int, list[Face]], detector) -> None:
        self.faces, self.calls, self.refined, self.detector = faces, 0, 0, detector

    def detect(self, images):
        self.calls += len(images)
        return [self.faces[id(im)] for im in images]

    def refine(self, images, boxes):
        self.refined += len(images)
        return self.detector.refine(images, boxes)


def clips(limit: int | None) -> list[tuple[Path, int]]:
    found = sorted(p for d in ("ffpp", "ffpp_extra") for p in (DEV / d).rglob("*.mp4"))
    out = [(p, 0 if "original_sequences" in p.parts else 1) for p in found]
    return out[:limit] if limit else out


def kept_faces(images: list[np.ndarray], detector, selector_mode: str, min_score: float, every: int,
               chunk: int) -> list[list[tuple[int, Face]]]:
    """Faces per frame as predict finds them: runs of ``chunk`` frames, tracked with ``every``."""
    selector, out = build_selector(selector_mode), []
    for i in range(0, len(images), chunk):
        out += tracked_faces(images[i:i + chunk], detector, selector, min_score, every)
    return out


def video_score(p: Predictor, images: list[np.ndarray], kept: list[list[tuple[int, Face]]]) -> float | None:
    crops = [p._crop(im, face.box) for im, faces in zip(images, kept, strict=True) for _, face in faces]
    return float(np.mean(p._score(crops))) if crops else None


def detect_all(detector, images: list[np.ndarray]) -> tuple[list[list[Face]], float]:
    """Every frame through ``detector`` (batches of DETECT_BATCH, one thread) and the seconds it took."""
    start = time.perf_counter()
    with single_thread():
        found = [f for i in range(0, len(images), DETECT_BATCH)
                 for f in detector.detect(images[i:i + DETECT_BATCH])]
    return found, time.perf_counter() - start


def compare(st: dict, reference: list, kept: list, base: float | None, score: float | None,
            threshold: float) -> None:
    """Add one clip's box and verdict agreement with the reference to a row's tallies."""
    for a, b in zip(reference, kept, strict=True):
        if a and b:
            st["both"] += 1
            st["agree"] += box_iou(a[0][1].box, b[0][1].box) >= 0.5
        st["missed"] += bool(a) and not b
        st["added"] += bool(b) and not a
    st["scores"].append(score)
    st["same"] += (base is None and score is None) or (
        base is not None and score is not None and (base >= threshold) == (score >= threshold))


def report(rows: dict, labels: list[int], args, p: Predictor, seconds: dict) -> None:
    y = np.array(labels)
    s = p.settings
    base = np.array([v if v is not None else 0.5 for v in rows["reference"]["scores"]])
    print(f"{len(labels)} FF++ dev clips ({int(y.sum())} fake, {int((1 - y).sum())} real), checkpoint "
          f"{args.checkpoint}, {s.sampling['num_frames'] or s.sampling['fps']} sampled frames per clip, "
          f"threshold {p.threshold:.4g}")
    print(f"reference (torch MTCNN, every frame): video AUC {roc_auc_score(y, base):.4f}")
    print(f"detector seconds, one thread, all clips: torch {seconds['torch']:.1f} s, onnx "
          f"{seconds['onnx']:.1f} s ({seconds['torch'] / seconds['onnx']:.2f}x)")
    for name, st in rows.items():
        if name == "reference":
            continue
        with_face = st["both"] + st["missed"]
        scores = np.array([v if v is not None else 0.5 for v in st["scores"]])
        auc = roc_auc_score(y, scores)
        print(f"{name}: detector runs {st['calls']}/{st['frames']} frames "
              f"({st['calls'] / max(1, st['frames']):.2f}), O-Net refinements {st['refined']}; "
              f"box agreement (IoU >= 0.5) {st['agree'] / max(1, with_face):.4f} of {with_face} frames with "
              f"a face; missed {st['missed']}, added {st['added']}; verdicts identical "
              f"{st['same']}/{len(labels)} ({st['same'] / max(1, len(labels)):.3f}); video AUC {auc:.4f} "
              f"(diff {auc - roc_auc_score(y, base):+.4f})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="default")
    ap.add_argument("--every", default="4,8", help="comma-separated N of --detect-every (ONNX detector)")
    ap.add_argument("--limit", type=int, default=None, help="first N clips only")
    args = ap.parse_args()
    everys = [int(e) for e in args.every.split(",")]
    p = Predictor(PredictConfig(inputs=("x",), checkpoint=args.checkpoint, detector_runtime="onnx"))
    s = p.settings
    torch_detector = build_face_detector(s.detector, "torch", max_side=s.max_side,
                                         min_face_size=s.min_face_size)
    names = ["reference", "onnx", *(f"onnx, --detect-every {e}" for e in everys)]
    rows = {n: {"calls": 0, "refined": 0, "frames": 0, "agree": 0, "both": 0, "missed": 0, "added": 0,
                "same": 0, "scores": []} for n in names}
    labels, seconds = [], {"torch": 0.0, "onnx": 0.0}
    for path, label in clips(args.limit):
        images = [f.image for f in read_media(path, **s.sampling)]
        labels.append(label)
        ref_found, took = detect_all(torch_detector, images)
        seconds["torch"] += took
        onnx_found, took = detect_all(p.detector, images)
        seconds["onnx"] += took
        reference = kept_faces(images, Replay(dict(zip(map(id, images), ref_found, strict=True)), None),
                               s.faces, s.min_score, 1, DETECT_BATCH)
        base = video_score(p, images, reference)
        rows["reference"]["scores"].append(base)
        cache = dict(zip(map(id, images), onnx_found, strict=True))
        for name, every in [("onnx", 1), *((f"onnx, --detect-every {e}", e) for e in everys)]:
            replay = Replay(cache, p.detector)
            with single_thread():
                kept = kept_faces(images, replay, s.faces, s.min_score, every, max(DETECT_BATCH, 4 * every))
            st = rows[name]
            st["calls"] += replay.calls
            st["refined"] += replay.refined
            st["frames"] += len(images)
            compare(st, reference, kept, base, video_score(p, images, kept), p.threshold)
    report(rows, labels, args, p, seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
