"""Face detectors behind one small interface, and face selection/tracking across frames.

    >>> detector = build_detector("mtcnn", max_side=640)
    >>> faces_per_frame = detector.detect([frame0, frame1])      # HxWx3 uint8 RGB arrays
    >>> kept = faces_in([frame0, frame1], detector, build_selector("largest"), min_score=0.9)

Boxes are ``(x0, y0, x1, y1)`` in pixels of the full-resolution frame, whatever resolution the detector
worked at. How a crop is cut around a box is :mod:`deepshield.data.crops` (its names are re-exported
here, where preprocess and predict import them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from deepshield.data.crops import CropGeometry, crop_face, fit_ratio, fit_square, square_box
from deepshield.errors import ConfigError
from deepshield.registry import Registry

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Face:
    """A detected face: box (x0, y0, x1, y1) in full-resolution pixels and detector confidence in [0, 1]."""

    box: tuple[float, float, float, float]
    score: float

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


DETECT_BATCH = 8  # frames decoded and detected together (preprocess, predict); bounds memory at 1080p


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces in a batch of HxWx3 uint8 RGB frames (one list of faces per frame)."""

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]: ...


DETECTORS: Registry[Callable[..., FaceDetector]] = Registry("face detector")


def register_detector(name: str) -> Callable[[Callable[..., FaceDetector]], Callable[..., FaceDetector]]:
    """Class decorator adding a detector backend to ``DETECTORS`` under ``name`` (taken name: an error)."""
    return DETECTORS.register(name)


def build_detector(name: str, **kwargs: object) -> FaceDetector:
    """A detector from the registry, e.g. ``build_detector("mtcnn", max_side=640)``."""
    return DETECTORS.lookup(name)(**kwargs)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


# --- which faces to keep -----------------------------------------------------------------------------


class LargestFace:
    """Keeps the largest face of each frame (ties: the most confident) as face 0."""

    def update(self, faces: Sequence[Face]) -> list[tuple[int, Face]]:
        if not faces:
            return []
        return [(0, max(faces, key=lambda f: (f.area, f.score)))]


class IoUTracker:
    """Keeps every face, with a ``face_index`` that follows the same face across frames.

    Each face is matched greedily (highest IoU first) to the box a track had when last seen; unmatched
    faces open new tracks, numbered in order of appearance (within a frame: largest first).
    """

    def __init__(self, min_iou: float = 0.3) -> None:
        self.min_iou = min_iou
        self.tracks: list[tuple[float, float, float, float]] = []

    def update(self, faces: Sequence[Face]) -> list[tuple[int, Face]]:
        pairs = sorted(
            (
                (box_iou(face.box, last), i, t)
                for i, face in enumerate(faces)
                for t, last in enumerate(self.tracks)
            ),
            reverse=True,
        )
        assigned: dict[int, int] = {}
        used: set[int] = set()
        for iou, i, t in pairs:
            if iou >= self.min_iou and i not in assigned and t not in used:
                assigned[i] = t
                used.add(t)
        for i in sorted(set(range(len(faces))) - set(assigned), key=lambda i: -faces[i].area):
            assigned[i] = len(self.tracks)
            self.tracks.append(faces[i].box)
        for i, t in assigned.items():
            self.tracks[t] = faces[i].box
        return sorted(((t, faces[i]) for i, t in assigned.items()), key=lambda item: item[0])


FACE_SELECTORS: Registry[Callable[[], LargestFace | IoUTracker]] = Registry("--faces mode")
FACE_SELECTORS.add("largest", LargestFace)
FACE_SELECTORS.add("all", IoUTracker)


def faces_in(
    images: Sequence[np.ndarray], detector: FaceDetector, selector: LargestFace | IoUTracker, min_score: float
) -> list[list[tuple[int, Face]]]:
    """The faces kept in each image, as ``(face_index, face)``: detect, drop those under ``min_score``,
    then let the per-video ``selector`` choose (largest) or track (all). Preprocessing and predict both
    go through here, so they cannot drift apart."""
    found = detector.detect(list(images))
    return [selector.update([f for f in faces if f.score >= min_score]) for faces in found]


def build_selector(mode: str) -> LargestFace | IoUTracker:
    """A fresh per-video face selector: ``largest`` (one face per frame) or ``all`` (tracked faces)."""
    return FACE_SELECTORS.lookup(mode)()


# --- MTCNN -----------------------------------------------------------------------------------------


NET_CHUNK = 256  # R-Net/O-Net crops per forward pass


class MTCNNSettings:
    """What both MTCNN runtimes share (this class, and ``mtcnn_onnx.OnnxMTCNN``): the settings, and
    :meth:`detect` running ``_detect_batch`` on batches of up to ``batch_size`` frames of equal size."""

    def __init__(self, max_side: int, min_face_size: int, thresholds: tuple[float, float, float],
                 factor: float, batch_size: int) -> None:
        if max_side < 48:
            raise ConfigError(f"max_side must be >= 48 pixels, got {max_side}")
        self.max_side, self.min_face_size = max_side, min_face_size
        self.thresholds, self.factor, self.batch_size = tuple(thresholds), factor, batch_size

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces in each HxWx3 uint8 RGB image, most confident first; boxes in full-resolution pixels."""
        results: list[list[Face]] = [[] for _ in images]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(i)
        for indices in by_shape.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                for i, faces in zip(chunk, self._detect_batch([images[i] for i in chunk]), strict=True):
                    results[i] = faces
        return results

    def _detect_batch(self, frames: list[np.ndarray]) -> list[list[Face]]:
        raise NotImplementedError


@register_detector("mtcnn")
class MTCNNDetector(MTCNNSettings):
    """MTCNN (Zhang et al., 2016) with facenet-pytorch's P/R/O-nets; the weights ship in its wheel.

    MTCNN's cost grows with the frame area (the P-Net image pyramid, and the candidates it yields), so
    P-Net runs on the frames downscaled to at most ``max_side`` pixels on their longer side, in batches
    of up to ``batch_size`` frames of equal size. Its pyramid keeps the scales facenet-pytorch's MTCNN
    uses on the full frame (``12 / min_face_size * factor**k`` of the full resolution), dropping those
    that would look for faces under ``min_face_size`` pixels *at the downscaled size*: P-Net sees each
    face at the scales it would on the full frame, which makes the boxes agree with full-resolution
    MTCNN far better than a ladder restarted at the downscaled size. R-Net and O-Net then score and
    regress the candidates from full-resolution crops, so the boxes are placed as on the full frame.
    ``thresholds``: the three stages' score thresholds (facenet-pytorch's defaults).
    """

    def __init__(
        self,
        max_side: int = 640,
        min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        batch_size: int = 8,
        device: str = "cpu",
    ) -> None:
        import torch
        from facenet_pytorch import MTCNN

        super().__init__(max_side, min_face_size, thresholds, factor, batch_size)
        # channels-last: same outputs (to 1e-6), 1.5-2.5x faster convolutions and pooling on CPU
        nets = MTCNN(device=device).eval().to(memory_format=torch.channels_last)
        self.pnet, self.rnet, self.onet = nets.pnet, nets.rnet, nets.onet
        self.device = device

    def _detect_batch(self, frames: list[np.ndarray]) -> list[list[Face]]:
        import torch
        from facenet_pytorch.models.utils.detect_face import batched_nms_numpy, bbreg

        with torch.inference_mode():
            full = torch.from_numpy(np.stack(frames)).to(self.device).permute(0, 3, 1, 2)
            small, scale = self._downscale(frames)
            boxes, owner = self._propose(small, scale)
            boxes, owner, reg = self._stage(full, boxes, owner, self.rnet, 24, self.thresholds[1])
            if len(boxes):
                boxes = _square(bbreg(boxes, reg))
                boxes, owner, reg = self._stage(full, boxes, owner, self.onet, 48, self.thresholds[2])
            if len(boxes):
                boxes = bbreg(boxes, reg)
                keep = batched_nms_numpy(boxes[:, :4], boxes[:, 4], owner, 0.7, "Min")
                boxes, owner = boxes[keep], owner[keep]
            found: list[list[Face]] = [[] for _ in frames]
            for row, i in zip(boxes.cpu().numpy().astype(float), owner.cpu().tolist(), strict=True):
                found[i].append(Face(box=tuple(row[:4].tolist()), score=float(row[4])))
        return [sorted(faces, key=lambda f: -f.score) for faces in found]

    def refine(self, images: Sequence[np.ndarray], boxes: Sequence[Sequence[float]]) -> list[Face | None]:
        """O-Net's face box for a proposal box per image (a tracked face's predicted place), or None where
        O-Net finds no face there: the last stage of :meth:`detect` without the frame-wide search."""
        import torch
        from facenet_pytorch.models.utils.detect_face import bbreg

        out: list[Face | None] = [None] * len(images)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(i)
        with torch.inference_mode():
            for indices in by_shape.values():
                stacked = np.stack([images[i] for i in indices])
                full = torch.from_numpy(stacked).to(self.device).permute(0, 3, 1, 2)
                proposal = torch.tensor([[*boxes[i], 1.0] for i in indices], dtype=torch.float32,
                                        device=self.device)
                owner = torch.arange(len(indices), device=self.device)
                found, owner, reg = self._stage(full, _square(proposal), owner, self.onet, 48,
                                                self.thresholds[2])
                if len(found):
                    found = bbreg(found, reg)
                for row, k in zip(found.cpu().numpy().astype(float), owner.cpu().tolist(), strict=True):
                    out[indices[k]] = Face(box=tuple(row[:4].tolist()), score=float(row[4]))
        return out

    def _downscale(self, frames: list[np.ndarray]) -> tuple[torch.Tensor, float]:
        """Frames (equal sizes) as float NCHW, downscaled so the longer side is at most ``max_side`` by
        area averaging (PIL's box filter on uint8: 3x faster than torch's on float); and the scale."""
        import torch

        height, width = frames[0].shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            frames = [np.asarray(area_resize(Image.fromarray(f), size)) for f in frames]
        return torch.from_numpy(np.stack(frames)).to(self.device).permute(0, 3, 1, 2).float(), scale

    def _propose(self, small: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """P-Net over the pyramid of the downscaled frames: candidate squares in full-resolution pixels."""
        import torch
        from facenet_pytorch.models.utils.detect_face import generateBoundingBox, imresample
        from torchvision.ops import batched_nms

        sh, sw = small.shape[2:]
        found, owners = [], []
        for level in pyramid_levels(min(sh, sw), scale, self.min_face_size, self.factor):
            pyramid = (imresample(small, (int(sh * level + 1), int(sw * level + 1))) - 127.5) * 0.0078125
            pyramid = pyramid.contiguous(memory_format=torch.channels_last)
            reg, probs = self.pnet(pyramid)
            cand, owner = generateBoundingBox(reg, probs[:, 1], level, self.thresholds[0])
            keep = batched_nms(cand[:, :4], cand[:, 4], owner, 0.5)
            found.append(cand[keep])
            owners.append(owner[keep])
        if not found:
            return small.new_zeros((0, 5)), torch.zeros(0, dtype=torch.long, device=small.device)
        cand, owner = torch.cat(found), torch.cat(owners)
        keep = batched_nms(cand[:, :4], cand[:, 4], owner, 0.7)
        cand, owner = cand[keep], owner[keep]
        w, h = cand[:, 2] - cand[:, 0], cand[:, 3] - cand[:, 1]
        boxes = torch.stack(
            [
                cand[:, 0] + cand[:, 5] * w,
                cand[:, 1] + cand[:, 6] * h,
                cand[:, 2] + cand[:, 7] * w,
                cand[:, 3] + cand[:, 8] * h,
                cand[:, 4],
            ],
            dim=1,
        )
        boxes[:, :4] /= scale
        return _square(boxes), owner

    def _stage(
        self,
        full: torch.Tensor,
        boxes: torch.Tensor,
        owner: torch.Tensor,
        net: torch.nn.Module,
        size: int,
        threshold: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Score full-resolution crops of ``boxes`` with R-Net or O-Net; keep those above ``threshold``."""
        import torch
        from facenet_pytorch.models.utils.detect_face import imresample
        from torchvision.ops import batched_nms

        # MTCNN's pad(): 1-based inclusive boxes, clipped to the frame.
        height, width = full.shape[2:]
        x0 = boxes[:, 0].trunc().int().clamp(min=1) - 1
        y0 = boxes[:, 1].trunc().int().clamp(min=1) - 1
        x1 = boxes[:, 2].trunc().int().clamp(max=width)
        y1 = boxes[:, 3].trunc().int().clamp(max=height)
        valid = ((x1 > x0) & (y1 > y0)).nonzero().flatten()
        if len(valid) == 0:
            return boxes[:0], owner[:0], boxes[:0, :4]
        boxes, owner = boxes[valid], owner[valid]
        crops = torch.cat(
            [
                imresample(full[owner[k], :, y0[v] : y1[v], x0[v] : x1[v]].unsqueeze(0).float(), (size, size))
                for k, v in enumerate(valid.tolist())
            ]
        )
        crops = ((crops - 127.5) * 0.0078125).contiguous(memory_format=torch.channels_last)
        # In chunks whose activations stay in cache: 2-3x faster than one batch of ~1000 R-Net crops.
        outs = [net(crops[i : i + NET_CHUNK]) for i in range(0, len(crops), NET_CHUNK)]
        reg, score = torch.cat([o[0] for o in outs]), torch.cat([o[-1] for o in outs])[:, 1]
        keep = score > threshold
        boxes = torch.cat([boxes[keep, :4], score[keep, None]], dim=1)
        owner, reg = owner[keep], reg[keep]
        if net is self.rnet and len(boxes):
            nms = batched_nms(boxes[:, :4], boxes[:, 4], owner, 0.7)
            boxes, owner, reg = boxes[nms], owner[nms], reg[nms]
        return boxes, owner, reg


def pyramid_levels(small_side: int, scale: float, min_face_size: int, factor: float) -> list[float]:
    """MTCNN's pyramid scales relative to frames downscaled by ``scale``: facenet-pytorch's full-frame
    ladder ``12 / min_face_size * factor**k`` divided by ``scale``, from the first that does not exceed
    ``12 / min_face_size`` (no face under ``min_face_size`` px at the downscaled size) down to a 12 px
    image."""
    top = 12.0 / min_face_size
    level = top
    while level / scale > top * (1 + 1e-9):
        level *= factor
    levels = []
    level /= scale
    while small_side * level >= 12:
        levels.append(level)
        level *= factor
    return levels


def area_resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` shrunk to ``size`` (w, h) by averaging: ``reduce`` for a whole factor (2x faster), else
    a box-filter resize; both average exactly the source pixels each output pixel covers."""
    factor = image.width // size[0]
    if factor > 1 and (image.width, image.height) == (size[0] * factor, size[1] * factor):
        return image.reduce(factor)
    return image.resize(size, Image.Resampling.BOX)


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """MTCNN's rerec: grow each box to a square on its longer side, same centre (in place)."""
    from facenet_pytorch.models.utils.detect_face import rerec

    return rerec(boxes)


__all__ = [
    "DETECT_BATCH",
    "DETECTORS",
    "FACE_SELECTORS",
    "CropGeometry",
    "Face",
    "FaceDetector",
    "IoUTracker",
    "LargestFace",
    "MTCNNDetector",
    "MTCNNSettings",
    "NET_CHUNK",
    "area_resize",
    "box_iou",
    "build_detector",
    "build_selector",
    "crop_face",
    "faces_in",
    "pyramid_levels",
    "fit_ratio",
    "fit_square",
    "register_detector",
    "square_box",
]
