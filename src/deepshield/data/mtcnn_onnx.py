"""MTCNN without PyTorch: facenet-pytorch's P/R/O-nets exported to ONNX, run by ONNX Runtime.

The same detector as :class:`deepshield.data.faces.MTCNNDetector` (same nets, pyramid, thresholds, NMS
and box regression), with the glue in numpy: MTCNN's "area" resizing (PyTorch's adaptive average
pooling) is read off an integral image, all crops of a stage at once, instead of one interpolation per
crop. ``predict`` and ``serve`` use it by default (``--detector-runtime auto``): importing torch and
facenet-pytorch (which pulls in torchvision) costs ~2.5 s of start-up that a face image need not pay.

    >>> detector = OnnxMTCNN(max_side=640, min_face_size=40)
    >>> detector.detect([frame])            # [[Face(box=(x0, y0, x1, y1), score=0.99...)]]

The nets ship in the package (``mtcnn_nets/*.onnx``), written by :func:`export_nets` (``python
scripts/bundle.py --mtcnn``), which refuses a file whose outputs differ from PyTorch's by more than
``PARITY_TOL``. ``benchmarks/predict_tracking.py`` measures the box and verdict agreement with the PyTorch
detector on the 96 FF++ dev clips: 100% of boxes, 96/96 verdicts, 1.47x less detector time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from deepshield.data.faces import (
    NET_CHUNK,
    Face,
    FaceDetector,
    MTCNNSettings,
    area_resize,
    build_detector,
    pyramid_levels,
)
from deepshield.errors import ConfigError, MissingFileError
from deepshield.registry import Registry

NETS_DIR = Path(__file__).resolve().parent / "mtcnn_nets"
NETS = ("pnet", "rnet", "onet")
PARITY_TOL = 1e-4  # max |onnx - torch| of any output an exported net must meet on its check inputs


# --- the nets as ONNX -------------------------------------------------------------------------------


def nets_available(nets_dir: Path = NETS_DIR) -> bool:
    """Whether the three exported nets and ONNX Runtime are installed."""
    import importlib.util

    installed = importlib.util.find_spec("onnxruntime") is not None
    return installed and all((nets_dir / f"{n}.onnx").is_file() for n in NETS)


def _session(path: Path, threads: int):
    import onnxruntime as ort

    if not path.is_file():
        raise MissingFileError(f"{path} not found: the MTCNN nets as ONNX; write them with "
                               "'python scripts/bundle.py --mtcnn' or use --detector-runtime torch")
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # No memory arena: P-Net sees another image size per frame size and pyramid level, R/O-Net another
    # batch per frame, and the arena kept every size it ever served. Measured over 120 FF++ clips in one
    # process: 413 -> 459 MB and growing with it, 198 -> 212 MB without; ~5% slower R/O-Net.
    options.enable_cpu_mem_arena = False
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_nets(out_dir: Path = NETS_DIR) -> dict[str, float]:
    """Export facenet-pytorch's P/R/O-nets to ``out_dir/{pnet,rnet,onet}.onnx`` (batch, and for P-Net
    the image size, dynamic); each is checked against PyTorch on random inputs of two sizes before it is
    moved into place. Returns each net's max |onnx - torch| over its outputs."""
    import warnings

    import torch
    from facenet_pytorch import MTCNN

    nets = MTCNN().eval()
    shapes = {"pnet": [(1, 3, 97, 131), (3, 3, 12, 12)], "rnet": [(5, 3, 24, 24), (1, 3, 24, 24)],
              "onet": [(5, 3, 48, 48), (1, 3, 48, 48)]}
    outputs = {"pnet": ["reg", "prob"], "rnet": ["reg", "prob"], "onet": ["reg", "landmarks", "prob"]}
    out_dir.mkdir(parents=True, exist_ok=True)
    diffs = {}
    for name in NETS:
        net, path = getattr(nets, name), out_dir / f"{name}.onnx"
        tmp = path.with_name(f".{name}.{os.getpid()}.onnx")
        axes = {0: "n", 2: "h", 3: "w"} if name == "pnet" else {0: "n"}
        generator = torch.Generator().manual_seed(0)
        checks = [torch.rand(s, generator=generator) * 2 - 1 for s in shapes[name]]
        with warnings.catch_warnings():  # the TorchScript-based exporter: dynamic H, W for P-Net
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (checks[0],), str(tmp), input_names=["image"], output_names=outputs[name],
                              dynamic_axes={"image": axes, **{o: axes for o in outputs[name]}},
                              dynamo=False, opset_version=17)
        session = _session(tmp, 1)
        worst = 0.0
        with torch.inference_mode():
            for x in checks:
                for a, b in zip(session.run(None, {"image": x.numpy()}), net(x), strict=True):
                    worst = max(worst, float(np.abs(a - b.numpy()).max()))
        if worst > PARITY_TOL:
            tmp.unlink()
            raise RuntimeError(f"{name}: ONNX differs from PyTorch by {worst:.1e} > {PARITY_TOL}")
        os.replace(tmp, path)
        diffs[name] = worst
    return diffs


# --- numpy glue -------------------------------------------------------------------------------------


def integral(image: np.ndarray) -> np.ndarray:
    """Summed-area table of an HxWxC uint8 image, zero-padded: shape (H+1, W+1, C); int32 (exact up to
    8.4 M pixels, 4K), int64 beyond."""
    dtype = np.int32 if image.shape[0] * image.shape[1] * 255 < 2**31 else np.int64
    table = np.zeros((image.shape[0] + 1, image.shape[1] + 1, image.shape[2]), dtype=dtype)
    table[1:, 1:] = image
    np.cumsum(table, axis=1, out=table)  # in place on the contiguous table: 2x faster than into a view
    for row in range(2, table.shape[0]):  # row by row: 2x faster than numpy's cumsum down axis 0
        np.add(table[row], table[row - 1], out=table[row])
    return table


def _bins(start: np.ndarray, length: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive pooling's bins: output i of ``n`` averages [start + floor(i L / n),
    start + ceil((i+1) L / n))."""
    i = np.arange(n)
    lo = start[:, None] + (i[None, :] * length[:, None]) // n
    hi = start[:, None] + -((-(i[None, :] + 1) * length[:, None]) // n)
    return lo, hi


def area_crops(table: np.ndarray, x0, y0, x1, y1, size: int) -> np.ndarray:
    """Crops [y0:y1, x0:x1] of the image behind ``table`` (:func:`integral`), each resized to size x size
    by area averaging (PyTorch's ``interpolate(mode="area")``), as float32 [N, C, size, size]."""
    x0, y0, x1, y1 = (np.asarray(v, dtype=np.int64) for v in (x0, y0, x1, y1))
    rlo, rhi = _bins(y0, y1 - y0, size)
    clo, chi = _bins(x0, x1 - x0, size)
    r_lo, r_hi, c_lo, c_hi = rlo[:, :, None], rhi[:, :, None], clo[:, None, :], chi[:, None, :]
    sums = table[r_hi, c_hi] - table[r_lo, c_hi] - table[r_hi, c_lo] + table[r_lo, c_lo]
    area = ((r_hi - r_lo) * (c_hi - c_lo))[..., None]
    return (sums / area).astype(np.float32).transpose(0, 3, 1, 2)


def clusters(x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray) -> list[np.ndarray]:
    """Indices of the boxes in each group of (transitively) overlapping boxes: the crops of a stage
    crowd around the faces, with strays elsewhere, so summed-area tables over each group's bounding box
    cover far less than the frame."""
    overlap = ((np.minimum(x1[:, None], x1[None]) > np.maximum(x0[:, None], x0[None]))
               & (np.minimum(y1[:, None], y1[None]) > np.maximum(y0[:, None], y0[None])))
    label = np.arange(len(x0))
    while True:  # each box takes the smallest label among those it overlaps, until nothing changes
        new = np.where(overlap, label[None, :], len(x0)).min(axis=1)
        if np.array_equal(new, label):
            break
        label = new
    return [np.nonzero(label == k)[0] for k in np.unique(label)]


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS as torchvision's ``nms``: indices kept, by decreasing score; a box goes when its IoU
    (areas without MTCNN's +1) with a kept one exceeds ``threshold``."""
    order = np.argsort(-scores, kind="stable")
    x0, y0, x1, y1 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x1 - x0) * (y1 - y0)
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.clip(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0, None)
        h = np.clip(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0, None)
        inter = w * h
        order = rest[inter / (areas[i] + areas[rest] - inter) <= threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, owner: np.ndarray, threshold: float) -> np.ndarray:
    """NMS within each owner (frame) only: the boxes of different frames never suppress each other."""
    if not len(boxes):
        return np.zeros(0, dtype=np.int64)
    offset = owner[:, None].astype(np.float64) * (float(boxes[:, :4].max()) + 1.0)
    keep = nms(boxes[:, :4] + offset, scores, threshold)
    return keep[np.argsort(-scores[keep], kind="stable")]


def nms_min(boxes: np.ndarray, scores: np.ndarray, owner: np.ndarray, threshold: float) -> np.ndarray:
    """MTCNN's last NMS (facenet-pytorch's ``batched_nms_numpy(..., "Min")``): +1 areas, overlap over
    the smaller box, per owner; indices kept."""
    kept = []
    for who in np.unique(owner):
        idx = np.nonzero(owner == who)[0]
        b, s = boxes[idx], scores[idx]
        area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
        order = np.argsort(s, kind="stable")
        pick = []
        while order.size:
            i, rest = order[-1], order[:-1]
            pick.append(i)
            w = np.maximum(0.0, np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]) + 1)
            h = np.maximum(0.0, np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]) + 1)
            order = rest[(w * h) / np.minimum(area[i], area[rest]) <= threshold]
        kept.extend(idx[pick])
    return np.asarray(sorted(kept), dtype=np.int64)


def square(boxes: np.ndarray) -> np.ndarray:
    """MTCNN's rerec: each box grown to a square on its longer side, same centre (a new array)."""
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2], out[:, 3] = out[:, 0] + side, out[:, 1] + side
    return out


def regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """MTCNN's bbreg: boxes moved by the net's offsets, in units of the (+1) box side (a new array)."""
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    out[:, :4] = boxes[:, :4] + reg[:, :4] * np.stack([w, h, w, h], axis=1)
    return out


def _candidates(reg: np.ndarray, prob: np.ndarray, level: float, threshold: float):
    """P-Net's map -> candidate squares (x0, y0, x1, y1, score, 4 offsets) and their frame index, as
    facenet-pytorch's ``generateBoundingBox`` (stride 2, cell 12)."""
    frame, yy, xx = np.nonzero(prob >= threshold)
    score = prob[frame, yy, xx]
    offsets = reg[frame, :, yy, xx]
    cells = np.stack([xx, yy], axis=1).astype(np.float32)
    q1 = np.floor((2 * cells + 1) / level)
    q2 = np.floor((2 * cells + 12) / level)
    return np.concatenate([q1, q2, score[:, None], offsets], axis=1), frame


# --- the detector -----------------------------------------------------------------------------------


class OnnxMTCNN(MTCNNSettings):
    """MTCNN with its nets on ONNX Runtime: the settings and results of ``MTCNNDetector`` (``faces.py``).

    P-Net runs on the frames downscaled to ``max_side`` (each pyramid level of a batch of equal frames in
    one call); R-Net and O-Net score full-resolution crops. ``threads``: ONNX Runtime's intra-op threads.
    """

    def __init__(
        self,
        max_side: int = 640,
        min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        batch_size: int = 8,
        threads: int = 1,
        nets_dir: Path = NETS_DIR,
    ) -> None:
        super().__init__(max_side, min_face_size, thresholds, factor, batch_size)
        self.pnet, self.rnet, self.onet = (_session(nets_dir / f"{n}.onnx", threads) for n in NETS)

    def refine(self, images: Sequence[np.ndarray], boxes: Sequence[Sequence[float]]) -> list[Face | None]:
        """O-Net's face box for a proposal box per image (any sizes), or None where O-Net finds no face
        there: the last stage of :meth:`detect` without the frame-wide search."""
        proposal = square(np.array([[*b, 1.0] for b in boxes], dtype=np.float32).reshape(-1, 5))
        found, owner, reg = self._stage(list(images), proposal, np.arange(len(images)), self.onet, 48,
                                        self.thresholds[2])
        found = regress(found, reg)
        out: list[Face | None] = [None] * len(images)
        for row, k in zip(found.astype(float), owner.tolist(), strict=True):
            out[k] = Face(box=tuple(row[:4].tolist()), score=float(row[4]))
        return out

    def _detect_batch(self, frames: list[np.ndarray]) -> list[list[Face]]:
        boxes, owner = self._propose(frames)
        boxes, owner, reg = self._stage(frames, boxes, owner, self.rnet, 24, self.thresholds[1])
        if len(boxes):
            boxes = square(regress(boxes, reg))
            boxes, owner, reg = self._stage(frames, boxes, owner, self.onet, 48, self.thresholds[2])
        if len(boxes):
            boxes = regress(boxes, reg)
            keep = nms_min(boxes[:, :4], boxes[:, 4], owner, 0.7)
            boxes, owner = boxes[keep], owner[keep]
        found: list[list[Face]] = [[] for _ in frames]
        for row, i in zip(boxes.astype(float), owner.tolist(), strict=True):
            found[i].append(Face(box=tuple(row[:4].tolist()), score=float(row[4])))
        return [sorted(faces, key=lambda f: -f.score) for faces in found]

    def _propose(self, frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """P-Net over the pyramid of the downscaled frames: candidate squares in full-resolution pixels."""
        height, width = frames[0].shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        small = frames
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = [np.asarray(area_resize(Image.fromarray(f), size)) for f in frames]
        sh, sw = small[0].shape[:2]
        tables = [integral(f) for f in small]
        found, owners = [], []
        for level in pyramid_levels(min(sh, sw), scale, self.min_face_size, self.factor):
            ph, pw = int(sh * level + 1), int(sw * level + 1)
            pyramid = np.concatenate([_resize_whole(t, sh, sw, ph, pw) for t in tables])
            reg, prob = self.pnet.run(None, {"image": (pyramid - 127.5) * np.float32(0.0078125)})
            cand, owner = _candidates(reg, prob[:, 1], level, self.thresholds[0])
            keep = batched_nms(cand, cand[:, 4], owner, 0.5)
            found.append(cand[keep])
            owners.append(owner[keep])
        if not found:
            return np.zeros((0, 5), dtype=np.float32), np.zeros(0, dtype=np.int64)
        cand, owner = np.concatenate(found), np.concatenate(owners)
        keep = batched_nms(cand, cand[:, 4], owner, 0.7)
        cand, owner = cand[keep], owner[keep]
        w, h = cand[:, 2] - cand[:, 0], cand[:, 3] - cand[:, 1]
        boxes = np.stack([cand[:, 0] + cand[:, 5] * w, cand[:, 1] + cand[:, 6] * h,
                          cand[:, 2] + cand[:, 7] * w, cand[:, 3] + cand[:, 8] * h, cand[:, 4]], axis=1)
        boxes[:, :4] /= scale
        return square(boxes.astype(np.float32)), owner

    def _stage(self, frames: list[np.ndarray], boxes: np.ndarray, owner: np.ndarray, net, size: int,
               threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score full-resolution crops of ``boxes`` with R-Net or O-Net; keep those above ``threshold``."""
        sizes = np.array([f.shape[:2] for f in frames], dtype=np.int64).reshape(-1, 2)[owner]
        # MTCNN's pad(): 1-based inclusive boxes, clipped to their frame.
        x0 = np.maximum(np.trunc(boxes[:, 0]).astype(np.int64), 1) - 1
        y0 = np.maximum(np.trunc(boxes[:, 1]).astype(np.int64), 1) - 1
        x1 = np.minimum(np.trunc(boxes[:, 2]).astype(np.int64), sizes[:, 1])
        y1 = np.minimum(np.trunc(boxes[:, 3]).astype(np.int64), sizes[:, 0])
        valid = np.nonzero((x1 > x0) & (y1 > y0))[0]
        empty = (np.zeros((0, 5), np.float32), np.zeros(0, np.int64), np.zeros((0, 4), np.float32))
        if not len(valid):
            return empty
        boxes, owner, x0, y0, x1, y1 = (a[valid] for a in (boxes, owner, x0, y0, x1, y1))
        crops = np.empty((len(boxes), 3, size, size), dtype=np.float32)
        for who in np.unique(owner):  # a summed-area table per cluster of overlapping crops of a frame
            mine = np.nonzero(owner == who)[0]
            for sel in clusters(x0[mine], y0[mine], x1[mine], y1[mine]):
                sel = mine[sel]
                left, top = int(x0[sel].min()), int(y0[sel].min())
                table = integral(frames[who][top : int(y1[sel].max()), left : int(x1[sel].max())])
                crops[sel] = area_crops(table, x0[sel] - left, y0[sel] - top, x1[sel] - left, y1[sel] - top,
                                        size)
        crops = (crops - 127.5) * np.float32(0.0078125)
        outs = [net.run(None, {"image": crops[i : i + NET_CHUNK]}) for i in range(0, len(crops), NET_CHUNK)]
        reg = np.concatenate([o[0] for o in outs])
        score = np.concatenate([o[-1] for o in outs])[:, 1]
        keep = score > threshold
        boxes = np.concatenate([boxes[keep, :4], score[keep, None]], axis=1)
        owner, reg = owner[keep], reg[keep]
        if net is self.rnet and len(boxes):
            nms_keep = batched_nms(boxes, boxes[:, 4], owner, 0.7)
            boxes, owner, reg = boxes[nms_keep], owner[nms_keep], reg[nms_keep]
        return boxes, owner, reg


def _resize_whole(table: np.ndarray, height: int, width: int, out_h: int, out_w: int) -> np.ndarray:
    """The whole image behind ``table`` resized to out_h x out_w by area averaging: [1, C, out_h, out_w]."""
    rlo, rhi = _bins(np.zeros(1, np.int64), np.full(1, height), out_h)
    clo, chi = _bins(np.zeros(1, np.int64), np.full(1, width), out_w)
    r_lo, r_hi, c_lo, c_hi = rlo[0][:, None], rhi[0][:, None], clo[0][None, :], chi[0][None, :]
    sums = table[r_hi, c_hi] - table[r_lo, c_hi] - table[r_hi, c_lo] + table[r_lo, c_lo]
    return (sums / ((r_hi - r_lo) * (c_hi - c_lo))[..., None]).astype(np.float32).transpose(2, 0, 1)[None]


# --- which implementation runs MTCNN ----------------------------------------------------------------

DETECTOR_RUNTIMES: Registry[Callable[..., FaceDetector]] = Registry("--detector-runtime")


@DETECTOR_RUNTIMES.register("torch")
def _torch_detector(name: str, threads: int | None = None, **kwargs: object) -> FaceDetector:
    return build_detector(name, **kwargs)  # its callers set torch's threads (runtime.single_thread)


@DETECTOR_RUNTIMES.register("onnx")
def _onnx_detector(name: str, threads: int | None = None, **kwargs: object) -> FaceDetector:
    if name != "mtcnn":
        raise ConfigError(f"--detector-runtime onnx runs MTCNN only, not {name!r}; use --detector-runtime "
                          "torch")
    return OnnxMTCNN(threads=threads or 1, **kwargs)  # type: ignore[arg-type]


def detector_runtime(name: str, runtime: str = "auto") -> str:
    """What ``--detector-runtime auto`` runs: ``onnx`` for MTCNN when its nets are installed, else torch."""
    if runtime != "auto":
        DETECTOR_RUNTIMES.lookup(runtime)
        return runtime
    return "onnx" if name == "mtcnn" and nets_available() else "torch"


def build_face_detector(name: str, runtime: str = "auto", **kwargs: object) -> FaceDetector:
    """The detector ``name`` (``build_detector``'s arguments) on ``runtime``: auto | torch | onnx."""
    return DETECTOR_RUNTIMES.lookup(detector_runtime(name, runtime))(name, **kwargs)


__all__ = ["DETECTOR_RUNTIMES", "NETS_DIR", "PARITY_TOL", "OnnxMTCNN", "area_crops", "batched_nms",
           "build_face_detector", "detector_runtime", "export_nets", "integral", "nets_available", "nms",
           "nms_min", "regress", "square"]
