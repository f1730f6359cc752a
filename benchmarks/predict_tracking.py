"""Detect less, track more: does ``predict --detect-every N`` find the same faces and give the same verdicts?

For every FF++ dev clip (``../shared/data/dev/ffpp`` + ``ffpp_extra``: 96 videos, real = original_sequences)
the sampled frames are decoded once and MTCNN runs on every one of them (today's path). Tracking with
``--detect-every N`` is then replayed on those same detections (the detector is deterministic, so a key
frame's faces are the ones full detection found there), and the crops of both are scored by the model.

Printed per N: detector calls (share of full detection), box agreement (sampled frames where full
detection has a face and tracking has one with IoU >= 0.5), faces missed/added, video verdicts identical
(at the predict threshold), and video AUC of both. Issue targets: box agreement >= 97%, verdicts identical
on >= 98% of clips, AUC within 0.01. Timings are in ``benchmarks/predict_speed.py``.

    python benchmarks/predict_tracking.py                       # bundled default, N = 2, 4, 8
    python benchmarks/predict_tracking.py --every 4 --limit 20 --checkpoint robust
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from deepshield.config import PredictConfig  # noqa: E402
from deepshield.data.faces import DETECT_BATCH, Face, box_iou, build_selector  # noqa: E402
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="default")
    ap.add_argument("--every", default="2,4,8", help="comma-separated N of --detect-every")
    ap.add_argument("--limit", type=int, default=None, help="first N clips only")
    args = ap.parse_args()
    everys = [int(e) for e in args.every.split(",")]
    p = Predictor(PredictConfig(inputs=("x",), checkpoint=args.checkpoint))
    s = p.settings
    stats = {e: {"calls": 0, "refined": 0, "frames": 0, "agree": 0, "both": 0, "missed": 0, "added": 0,
                 "same": 0, "scores": []}
             for e in [1, *everys]}
    labels = []
    for path, label in clips(args.limit):
        images = [f.image for f in read_media(path, **s.sampling)]
        with single_thread():
            detected = [f for i in range(0, len(images), DETECT_BATCH)
                        for f in p.detector.detect(images[i:i + DETECT_BATCH])]
        cache = {id(im): faces for im, faces in zip(images, detected, strict=True)}
        full = kept_faces(images, Replay(cache, p.detector), s.faces, s.min_score, 1, DETECT_BATCH)
        base = video_score(p, images, full)
        labels.append(label)
        stats[1]["scores"].append(base)
        for e in everys:
            replay = Replay(cache, p.detector)
            with single_thread():
                kept = kept_faces(images, replay, s.faces, s.min_score, e, max(DETECT_BATCH, 4 * e))
            st = stats[e]
            st["calls"] += replay.calls
            st["refined"] += replay.refined
            st["frames"] += len(images)
            for a, b in zip(full, kept, strict=True):
                if a and b:
                    st["both"] += 1
                    st["agree"] += box_iou(a[0][1].box, b[0][1].box) >= 0.5
                st["missed"] += bool(a) and not b
                st["added"] += bool(b) and not a
            score = video_score(p, images, kept)
            st["scores"].append(score)
            st["same"] += (base is None and score is None) or (
                base is not None and score is not None and (base >= 0.5) == (score >= 0.5))
    y = np.array(labels)
    base_scores = np.array([v if v is not None else 0.5 for v in stats[1]["scores"]])
    print(f"{len(labels)} FF++ dev clips ({int(y.sum())} fake, {int((1 - y).sum())} real), checkpoint "
          f"{args.checkpoint}, {s.sampling['num_frames'] or s.sampling['fps']} sampled frames per clip")
    print(f"full detection: video AUC {roc_auc_score(y, base_scores):.4f}")
    for e in everys:
        st = stats[e]
        with_face = st["both"] + st["missed"]
        scores = np.array([v if v is not None else 0.5 for v in st["scores"]])
        print(f"--detect-every {e}: detector runs {st['calls']}/{st['frames']} frames "
              f"({st['calls'] / max(1, st['frames']):.2f}), O-Net refinements {st['refined']}; "
              f"box agreement (IoU >= 0.5) "
              f"{st['agree'] / max(1, with_face):.4f} of {with_face} frames with a face; missed "
              f"{st['missed']}, added {st['added']}; verdicts identical {st['same']}/{len(labels)} "
              f"({st['same'] / max(1, len(labels)):.3f}); video AUC {roc_auc_score(y, scores):.4f} "
              f"(diff {roc_auc_score(y, scores) - roc_auc_score(y, base_scores):+.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
