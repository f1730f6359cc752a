"""Five facial landmarks of face crops (MTCNN: left eye, right eye, nose, left and right mouth corner),
detected once and cached in a sidecar file.

The catalog stores boxes, not landmarks, so self-blended pseudo-fakes (:mod:`deepshield.data.pseudo_fakes`)
detect them on the crops themselves: facenet-pytorch's MTCNN on the crops resized to ``DETECT_SIZE``
pixels, batched. A crop's face fills most of it, so a coarse image pyramid (``MIN_FACE`` pixels at
``DETECT_SIZE``) suffices: ~16 ms per crop on one CPU core, against ~40 ms at 160 px.

Points are crop fractions (x / width, y / height) in [0, 1]-ish (a point may fall just outside the crop),
independent of the training image size; NaN where no face was found. The sidecar
(``landmarks.npz``: ``keys``, ``points``) maps each crop file (resolved path and size in bytes) to its
points; a rerun detects only the crops it lacks and rewrites it atomically.

    >>> points = cached_landmarks(paths, Path("runs/x/cache/landmarks.npz"))   # [N, 5, 2], NaN = none
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from deepshield.io import atomic_write
from deepshield.progress import progress

DETECT_SIZE = 128
MIN_FACE = 80
BATCH = 32
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def _mtcnn():
    from facenet_pytorch import MTCNN

    return MTCNN(min_face_size=MIN_FACE, device="cpu", keep_all=True).eval()


def detect_landmarks(images: Sequence[np.ndarray], mtcnn=None) -> np.ndarray:
    """Landmarks of the largest face in each HxWx3 uint8 RGB crop: float32 [N, 5, 2] in crop fractions
    (x / W, y / H); NaN rows where MTCNN finds no face. Crops are resized to ``DETECT_SIZE`` first."""
    import torch

    mtcnn = mtcnn or _mtcnn()
    out = np.full((len(images), 5, 2), np.nan, dtype=np.float32)
    if not len(images):
        return out
    small = np.stack([np.asarray(Image.fromarray(im).resize((DETECT_SIZE, DETECT_SIZE), Image.BILINEAR))
                      for im in images])
    with torch.inference_mode():
        boxes, _, points = mtcnn.detect(small, landmarks=True)
    for i, (b, p) in enumerate(zip(boxes, points, strict=True)):
        if b is None or p is None or not len(b):
            continue
        largest = int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
        out[i] = np.asarray(p[largest], dtype=np.float32) / DETECT_SIZE
    return out


def _key(path: Path) -> str:
    path = Path(path).resolve()
    return f"{path}\t{path.stat().st_size}"


def _read_sidecar(sidecar: Path) -> dict[str, np.ndarray]:
    if not sidecar.is_file():
        return {}
    try:
        with np.load(sidecar, allow_pickle=False) as data:
            return dict(zip(data["keys"].tolist(), data["points"], strict=True))
    except (OSError, ValueError, KeyError):  # a torn or foreign file: detect again rather than fail
        return {}


def _write_sidecar(sidecar: Path, known: dict[str, np.ndarray]) -> None:
    keys = np.array(sorted(known), dtype=str)
    points = np.stack([known[k] for k in keys]) if len(keys) else np.zeros((0, 5, 2), np.float32)

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            np.savez(f, keys=keys, points=points.astype(np.float32))

    atomic_write(sidecar, write)


def cached_landmarks(paths: Sequence[str | Path], sidecar: str | Path, *, batch_size: int = BATCH,
                     show_progress: bool = True) -> np.ndarray:
    """Landmarks ([N, 5, 2] crop fractions, NaN = no face) of the crop files ``paths``, detecting only
    those ``sidecar`` lacks and saving it (atomically) every few batches, so an interrupted run resumes."""
    sidecar = Path(sidecar)
    keys = [_key(Path(p)) for p in paths]
    known = _read_sidecar(sidecar)
    missing = sorted({k: p for k, p in zip(keys, paths, strict=True) if k not in known}.items())
    if missing:
        mtcnn = _mtcnn()
        starts = range(0, len(missing), batch_size)
        for n, start in enumerate(progress(starts, desc="landmarks (MTCNN)", enabled=show_progress,
                                           unit="batch")):
            chunk = missing[start : start + batch_size]
            images = []
            for _, p in chunk:
                with Image.open(p) as img:
                    images.append(np.asarray(img.convert("RGB")))
            for (k, _), pts in zip(chunk, detect_landmarks(images, mtcnn), strict=True):
                known[k] = pts
            if n % 20 == 19:
                _write_sidecar(sidecar, known)
        _write_sidecar(sidecar, known)
    return np.stack([known[k] for k in keys]).astype(np.float32) if keys else np.zeros((0, 5, 2), np.float32)


__all__ = ["DETECT_SIZE", "LANDMARK_NAMES", "cached_landmarks", "detect_landmarks"]
