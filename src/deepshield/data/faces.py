"""Face detectors behind one small interface, face selection/tracking across frames, and crop geometry.

    >>> detector = build_detector("mtcnn", max_side=640)
    >>> faces_per_frame = detector.detect([frame0, frame1])      # HxWx3 uint8 RGB arrays
    >>> crop = crop_face(frame0, faces_per_frame[0][0].box, size=224, margin=1.3)

Boxes are ``(x0, y0, x1, y1)`` in pixels of the full-resolution frame, whatever resolution the detector
worked at. The crop geometry (:class:`CropGeometry`) is the same for video frames and still images:

* a square of ``margin`` x the box's longer side, centred on the box, its centre moved down by
  ``shift`` x that side (``margin`` < 1 zooms into the face: 0.72 with shift 0.1 frames the inner face
  from brows to chin, the framing of the DFDC face crops);
* where the square leaves the image it is moved back inside it ("fit"); a square larger than the
  image's shorter side is reduced to that side. Crops never hold padding, so a tight face photo and a
  face in a video frame give the same kind of crop (the alternative, black padding, gave crops of a
  tight face photo that were ~60% black);
* the square is resized (bicubic) to ``size`` x ``size``, never squashed.

:func:`fit_ratio` says how much of the wanted square an image could hold (1.0 = all of it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from PIL import Image

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


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces in a batch of HxWx3 uint8 RGB frames (one list of faces per frame)."""

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]: ...


DETECTORS: dict[str, Callable[..., FaceDetector]] = {}


def register_detector(name: str) -> Callable[[Callable[..., FaceDetector]], Callable[..., FaceDetector]]:
    """Class decorator adding a detector backend to ``DETECTORS`` under ``name``."""

    def add(factory: Callable[..., FaceDetector]) -> Callable[..., FaceDetector]:
        DETECTORS[name] = factory
        return factory

    return add


def build_detector(name: str, **kwargs: object) -> FaceDetector:
    """A detector from the registry, e.g. ``build_detector("mtcnn", max_side=640)``."""
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; choose from {sorted(DETECTORS)}")
    return DETECTORS[name](**kwargs)


# --- crop geometry -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CropGeometry:
    """How a crop is cut around a face box: side = ``margin`` x the box's longer side, centre moved down
    by ``shift`` x that side, resized to ``size`` px. ``margin`` in (0, 4], ``shift`` in [-1, 1]."""

    size: int = 224
    margin: float = 1.3
    shift: float = 0.0

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"crop size {self.size}: must be >= 8 pixels")
        if not 0 < self.margin <= 4:
            raise ValueError(f"crop margin {self.margin}: must be in (0, 4] (1.3 = 30% context around "
                             "the face)")
        if not -1 <= self.shift <= 1:
            raise ValueError(f"crop shift {self.shift}: must be in [-1, 1] (0.1 = centre 10% of the box "
                             "lower)")

    def crop(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """``size`` x ``size`` RGB crop of ``image`` around ``box``; see the module docstring."""
        return crop_face(image, box, self.size, self.margin, self.shift)


def square_box(box: Sequence[float], margin: float, shift: float = 0.0) -> tuple[int, int, int, int]:
    """Integer square (x0, y0, x1, y1) of side ``margin`` x the box's longer side, centred on the box
    and moved down by ``shift`` x that side. It may extend past the image; see :func:`fit_square`."""
    x0, y0, x1, y1 = (float(v) for v in box)
    longer = max(x1 - x0, y1 - y0)
    side = max(1, int(round(margin * longer)))
    left = int(round((x0 + x1) / 2 - side / 2))
    top = int(round((y0 + y1) / 2 + shift * longer - side / 2))
    return left, top, left + side, top + side


def fit_square(square: Sequence[int], width: int, height: int) -> tuple[int, int, int, int]:
    """``square`` moved inside a ``width`` x ``height`` image; reduced (about its centre) to the image's
    shorter side first when it is larger."""
    left, top, right, bottom = (int(v) for v in square)
    side = right - left
    if side > min(width, height):
        cx, cy, side = (left + right) / 2, (top + bottom) / 2, min(width, height)
        left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    left = min(max(left, 0), width - side)
    top = min(max(top, 0), height - side)
    return left, top, left + side, top + side


def fit_ratio(box: Sequence[float], width: int, height: int, margin: float, shift: float = 0.0) -> float:
    """Side of the crop an image can give / side of the wanted square (1.0: the full margin fits)."""
    left, top, right, _ = square_box(box, margin, shift)
    return min(1.0, min(width, height) / (right - left))


def crop_face(image: np.ndarray, box: Sequence[float], size: int, margin: float,
              shift: float = 0.0) -> np.ndarray:
    """``size`` x ``size`` RGB crop of the margin square around ``box``, fitted inside the image."""
    height, width = image.shape[:2]
    left, top, right, bottom = fit_square(square_box(box, margin, shift), width, height)
    canvas = np.ascontiguousarray(image[top:bottom, left:right])
    if right - left == size:
        return canvas
    return np.asarray(Image.fromarray(canvas).resize((size, size), Image.Resampling.BICUBIC))


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


FACE_SELECTORS: dict[str, Callable[[], LargestFace | IoUTracker]] = {
    "largest": LargestFace,
    "all": IoUTracker,
}


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
    if mode not in FACE_SELECTORS:
        raise ValueError(f"unknown --faces mode {mode!r}; choose from {sorted(FACE_SELECTORS)}")
    return FACE_SELECTORS[mode]()


# --- MTCNN -----------------------------------------------------------------------------------------


@register_detector("mtcnn")
class MTCNNDetector:
    """MTCNN (Zhang et al., 2016) with facenet-pytorch's P/R/O-nets; the weights ship in its wheel.

    MTCNN's cost grows with the frame area (the P-Net image pyramid, and the candidates it yields), so
    P-Net runs on the frames downscaled to at most ``max_side`` pixels on their longer side, in batches
    of up to ``batch_size`` frames of equal size. R-Net and O-Net then score and regress the candidates
    from full-resolution crops, so the boxes are placed as on the full frame. Faces under
    ``min_face_size`` pixels *at the downscaled size* are not searched for. ``thresholds``: the three
    stages' score thresholds (facenet-pytorch's defaults).
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

        if max_side < 48:
            raise ValueError(f"max_side must be >= 48 pixels, got {max_side}")
        self.max_side, self.min_face_size = max_side, min_face_size
        self.thresholds, self.factor, self.batch_size = tuple(thresholds), factor, batch_size
        # channels-last: same outputs (to 1e-6), 1.5-2.5x faster convolutions and pooling on CPU
        nets = MTCNN(device=device).eval().to(memory_format=torch.channels_last)
        self.pnet, self.rnet, self.onet = nets.pnet, nets.rnet, nets.onet
        self.device = device

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
        import torch
        from facenet_pytorch.models.utils.detect_face import batched_nms_numpy, bbreg

        with torch.inference_mode():
            full = torch.from_numpy(np.stack(frames)).to(self.device).permute(0, 3, 1, 2)
            small, scale = self._downscale(full)
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

    def _downscale(self, full: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Frames as float, area-downscaled so the longer side is at most ``max_side``; and the scale."""
        from facenet_pytorch.models.utils.detect_face import imresample

        height, width = full.shape[2:]
        scale = min(1.0, self.max_side / max(height, width))
        small = full.float()
        if scale < 1.0:
            small = imresample(small, (max(1, round(height * scale)), max(1, round(width * scale))))
        return small, scale

    def _propose(self, small: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """P-Net over the pyramid of the downscaled frames: candidate squares in full-resolution pixels."""
        import torch
        from facenet_pytorch.models.utils.detect_face import generateBoundingBox, imresample
        from torchvision.ops import batched_nms

        sh, sw = small.shape[2:]
        level, found, owners = 12.0 / self.min_face_size, [], []
        while min(sh, sw) * level >= 12:
            pyramid = (imresample(small, (int(sh * level + 1), int(sw * level + 1))) - 127.5) * 0.0078125
            pyramid = pyramid.contiguous(memory_format=torch.channels_last)
            reg, probs = self.pnet(pyramid)
            cand, owner = generateBoundingBox(reg, probs[:, 1], level, self.thresholds[0])
            keep = batched_nms(cand[:, :4], cand[:, 4], owner, 0.5)
            found.append(cand[keep])
            owners.append(owner[keep])
            level *= self.factor
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
        out = net(((crops - 127.5) * 0.0078125).contiguous(memory_format=torch.channels_last))
        reg, score = out[0], out[-1][:, 1]
        keep = score > threshold
        boxes = torch.cat([boxes[keep, :4], score[keep, None]], dim=1)
        owner, reg = owner[keep], reg[keep]
        if net is self.rnet and len(boxes):
            nms = batched_nms(boxes[:, :4], boxes[:, 4], owner, 0.7)
            boxes, owner, reg = boxes[nms], owner[nms], reg[nms]
        return boxes, owner, reg


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """MTCNN's rerec: grow each box to a square on its longer side, same centre (in place)."""
    from facenet_pytorch.models.utils.detect_face import rerec

    return rerec(boxes)


__all__ = [
    "DETECTORS",
    "FACE_SELECTORS",
    "CropGeometry",
    "Face",
    "FaceDetector",
    "IoUTracker",
    "LargestFace",
    "MTCNNDetector",
    "box_iou",
    "build_detector",
    "build_selector",
    "crop_face",
    "faces_in",
    "fit_ratio",
    "fit_square",
    "register_detector",
    "square_box",
]
