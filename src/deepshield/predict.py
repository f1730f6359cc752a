"""``deepshield predict``: videos, images or folders of them -> fake probability per video (and frame).

The faces are found and cropped the way ``deepshield preprocess`` made the training crops (same
detector, confidence threshold, face selection, margin and crop size, read from the checkpoint's
``config["preprocess"]`` when training recorded it, else the preprocessing defaults with crop size =
the model's image size), resized to the model's input size as the datasets do, and scored. A video's
probability aggregates its face crops (``mean`` by default; see ``contracts.aggregate``). It is called
FAKE at p(fake) >= the threshold: ``--threshold``, else the one calibrated for the model and recorded in
its checkpoint (``deepshield.contracts.threshold``), else 0.5; ``Predictor.threshold_source`` says which.

    >>> results = predict_files(PredictConfig(inputs=("clip.mp4",), checkpoint="runs/x/best.pt"))
    >>> results[0].p_fake, results[0].label          # 0.93, "FAKE"

Exit codes (``exit_code``): 0 every input scored; 3 no face found in some input; 2 an input could not
be read; 4 (``--check-attack``) the attack alarm flagged some input, labelled ``ABSTAIN``: it looks
adversarially perturbed, so its score is not trusted (``p_fake`` is still reported). Everything runs
offline (MTCNN's weights ship with facenet-pytorch, and as ONNX in this package). ``--explain DIR`` writes
Grad-CAM overlays of the face crops (``deepshield.explain``; needs the torch model).

Start-up: with ONNX Runtime scoring the crops and running the face detector (``--runtime auto`` and
``--detector-runtime auto``, the defaults for the bundled models on a CPU), predict never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from deepshield.config import PredictConfig, TrainConfig
from deepshield.contracts.aggregate import AGGREGATIONS
from deepshield.contracts.alarm import AlarmReport
from deepshield.contracts.crops import DEFAULT_FRAMES_PER_VIDEO, CropSettings
from deepshield.contracts.threshold import resolve_threshold
from deepshield.data.faces import DETECT_BATCH, CropGeometry, build_selector
from deepshield.data.mtcnn_onnx import build_face_detector
from deepshield.data.tracking import tracked_faces
from deepshield.data.video import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    Frame,
    VideoError,
    prefetched,
    read_media,
)
from deepshield.errors import ConfigError, DataError, MissingFileError
from deepshield.export import EXPORT_FORMATS
from deepshield.registry import Registry
from deepshield.runtime import cpu_threads, select_device, single_thread

if TYPE_CHECKING:
    import torch

EXIT_OK, EXIT_UNREADABLE, EXIT_NO_FACE, EXIT_ABSTAIN = 0, 2, 3, 4
LABEL_ABSTAIN = "ABSTAIN"  # --check-attack: the input looks adversarially perturbed; no verdict
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | IMAGE_EXTENSIONS


def face_settings(cfg: PredictConfig, train_config: dict, image_size: int) -> CropSettings:
    """Command-line values, else the checkpoint's ``preprocess`` settings, else the crop defaults (with
    crop size = the model's ``image_size``); ConfigError on a bad margin, shift, size or min score."""
    settings = CropSettings.from_json(train_config.get("preprocess"), size=image_size).override(
        detector=cfg.detector, margin=cfg.margin, shift=cfg.shift, size=cfg.size, min_score=cfg.min_score)
    if cfg.frames is not None:
        settings = replace(settings, fps=None, frames_per_video=cfg.frames)
    elif settings.fps is None:
        settings = replace(settings, frames_per_video=settings.frames_per_video or DEFAULT_FRAMES_PER_VIDEO)
    CropGeometry.of(settings)  # validates --margin/--shift/--size
    return settings


def setting_warnings(cfg: PredictConfig, train_config: dict) -> list[str]:
    """Flags that override the crop settings the model was trained with, and a checkpoint without any."""
    pre = train_config.get("preprocess")
    if not pre:
        return ["the checkpoint records no preprocessing settings (trained on synthetic data or an old run); "
                "faces are cropped with the defaults, which may not match its training crops"]
    flags = {"detector": cfg.detector, "margin": cfg.margin, "shift": cfg.shift, "size": cfg.size,
             "min_score": cfg.min_score}
    return [f"--{k.replace('_', '-')} {v} overrides the {pre[k]} the model was trained with; its crops will "
            "differ from the training crops" for k, v in flags.items()
            if v is not None and pre.get(k) is not None and v != pre[k]]


@dataclass
class FaceScore:
    """One face crop: where it came from and its fake probability."""

    frame_index: int
    timestamp_s: float
    face_index: int
    box: tuple[float, float, float, float]
    face_score: float
    p_fake: float


@dataclass
class MediaResult:
    """One input file: its fake probability (None without faces), label, and the per-face scores.

    ``no_face_frames``: (frame index, timestamp in s) of sampled frames without a face. ``crops``
    (uint8 HxWx3, in the order of ``faces``) and ``heatmaps`` (Grad-CAM of "fake", float [H, W] in
    [0, 1], same order) are kept in memory only when asked for (``Predictor.predict(keep_crops=True,
    explain=True)``), never in ``to_dict``. ``alarm``: the attack alarm's report (``--check-attack``);
    a flagged input is labelled ``ABSTAIN``.
    """

    path: str
    frames_sampled: int = 0
    faces: list[FaceScore] = field(default_factory=list)
    p_fake: float | None = None
    label: str | None = None
    error: str | None = None
    no_face_frames: list[tuple[int, float]] = field(default_factory=list)
    crops: list[np.ndarray] | None = field(default=None, repr=False)
    heatmaps: list[np.ndarray] | None = field(default=None, repr=False)
    alarm: AlarmReport | None = None

    @property
    def status(self) -> str:
        return "error" if self.error else "no_face" if self.p_fake is None else "ok"

    def to_dict(self, frames: bool = True) -> dict:
        d = {"path": self.path, "status": self.status, "p_fake": self.p_fake, "label": self.label,
             "frames_sampled": self.frames_sampled, "faces_found": len(self.faces), "error": self.error}
        if self.alarm is not None:
            d["alarm"] = self.alarm.to_json()
        if frames:
            d["faces"] = [asdict(f) for f in self.faces]
            d["no_face_frames"] = [list(f) for f in self.no_face_frames]
        return d


def collect_inputs(inputs: tuple[str, ...] | list[str]) -> list[Path]:
    """Files as given, and every video/image under each folder (recursively, sorted)."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS)
            if not found:
                raise DataError(f"{path} holds no videos or images ({', '.join(sorted(MEDIA_EXTENSIONS))})")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise MissingFileError(f"{path} not found; pass a video, an image or a folder of them")
    return files


class FaceCutter:
    """Decode a file, find its faces (the detector on every ``detect_every``-th sampled frame, tracked
    between) and cut them as preprocessing cut the training crops, resized to ``image_size``. Holds no
    model, so a worker process can run it (see :mod:`deepshield.stream`). ``detector_runtime``: auto |
    torch | onnx (:func:`deepshield.data.mtcnn_onnx.build_face_detector`); ``threads``: the ONNX
    detector's (default: the cores)."""

    def __init__(self, settings: CropSettings, image_size: int, detect_every: int = 1,
                 detector_runtime: str = "auto", threads: int | None = None) -> None:
        self.settings, self.image_size, self.detect_every = settings, image_size, detect_every
        self.geometry = CropGeometry.of(settings)
        self.detector_runtime = detector_runtime
        self.detector = build_face_detector(settings.detector, detector_runtime, max_side=settings.max_side,
                                            min_face_size=settings.min_face_size,
                                            threads=threads or cpu_threads())

    def cut(self, path: str | Path) -> tuple[MediaResult, list[np.ndarray]]:
        """The file's result so far (faces, sampled frames; ``error`` for unreadable media, never raises)
        and its face crops, uint8 [S, S, 3] in the order of ``result.faces``."""
        result = MediaResult(str(path))
        crops: list[np.ndarray] = []
        try:
            for frame, face_index, face, crop in self._faces(Path(path), result):
                box = tuple(round(float(v), 1) for v in face.box)
                result.faces.append(FaceScore(frame.index, round(frame.timestamp_s, 3), face_index, box,
                                              float(face.score), 0.0))
                crops.append(crop)
        except VideoError as err:
            result.error = str(err)
            crops = []
        return result, crops

    def _faces(self, path: Path, result: MediaResult) -> Iterator[tuple[Frame, int, object, np.ndarray]]:
        s, every = self.settings, self.detect_every
        selector = build_selector(s.faces)
        chunk = max(DETECT_BATCH, 4 * every)  # tracked: enough frames between key frames to save detections
        batch: list[Frame] = []
        frames = prefetched(read_media(path, **s.sampling), depth=chunk)  # decoding overlaps detection
        while True:
            frame = next(frames, None)
            if frame is not None:
                batch.append(frame)
                result.frames_sampled += 1
            if batch and (frame is None or len(batch) == chunk):
                # one thread, as preprocess: MTCNN's many small ops ran ~3x slower on 2 (busy 2-core machine)
                with single_thread():
                    images = [f.image for f in batch]
                    kept = tracked_faces(images, self.detector, selector, s.min_score, every)
                for fr, faces in zip(batch, kept, strict=True):
                    if not faces:
                        result.no_face_frames.append((fr.index, round(fr.timestamp_s, 3)))
                    for face_index, face in faces:
                        yield fr, face_index, face, self.crop(fr.image, face.box)
                batch = []
            if frame is None:
                return

    def crop(self, image: np.ndarray, box) -> np.ndarray:
        crop = self.geometry.crop(image, box)
        size = self.image_size
        if crop.shape[0] != size:  # as the datasets resize stored crops (PIL bilinear)
            crop = np.asarray(Image.fromarray(crop).resize((size, size), Image.BILINEAR))
        return crop


class Predictor:
    """A loaded checkpoint, its face cutter and settings; call :meth:`predict` per file."""

    def __init__(self, cfg: PredictConfig) -> None:
        AGGREGATIONS.lookup(cfg.aggregate)  # an unknown name fails before any model loads
        self.cfg = cfg
        self.scorer = RUNTIMES.lookup(cfg.runtime)(cfg)
        self.model, raw = self.scorer.model, self.scorer.raw
        self.train_cfg = TrainConfig.from_dict(raw)
        self.settings = face_settings(cfg, raw, self.train_cfg.image_size)
        self.warnings = setting_warnings(cfg, raw)
        self.threshold, self.threshold_source = resolve_threshold(cfg.threshold, raw.get("threshold"))
        self.cutter = FaceCutter(self.settings, self.train_cfg.image_size, cfg.detect_every,
                                 cfg.detector_runtime)
        self.geometry = self.cutter.geometry
        self.attack_alarm = _attack_alarm(cfg, self.warnings) if cfg.check_attack else None

    @property
    def device(self) -> torch.device:
        """The torch device of the model (the CPU for an exported one); imports torch when asked."""
        return self.scorer.device or select_device("cpu")

    @property
    def detector(self):
        return self.cutter.detector

    @detector.setter
    def detector(self, value) -> None:  # the web app wraps it to report progress
        self.cutter.detector = value

    def predict(self, path: str | Path, keep_crops: bool = False, explain: bool = False) -> MediaResult:
        """Score one video or image; unreadable media give a result with ``error`` set, never raise.

        ``keep_crops``: keep the face crops in ``result.crops``; ``explain``: Grad-CAM heatmaps in
        ``result.heatmaps`` (and the crops too). With ``check_attack`` set, ``result.alarm`` holds
        the attack alarm's report and a flagged input is labelled ``ABSTAIN``.
        """
        return self.judge(*self.cutter.cut(path), keep_crops=keep_crops, explain=explain)

    def judge(self, result: MediaResult, crops: list[np.ndarray], keep_crops: bool = False,
              explain: bool = False) -> MediaResult:
        """Score the crops :meth:`FaceCutter.cut` gave for ``result``: p(fake) per face, the video's
        aggregate and label, the attack alarm."""
        if result.error is not None:
            return result
        if crops:
            probs = self._score(crops)
            for f, p in zip(result.faces, probs, strict=True):
                f.p_fake = float(p)
            result.p_fake = AGGREGATIONS[self.cfg.aggregate](probs)
            result.label = "FAKE" if result.p_fake >= self.threshold else "REAL"
            if self.cfg.check_attack:
                result.alarm = self.attack_alarm.check(self._score, crops, probs)
                if result.alarm.flagged:
                    result.label = LABEL_ABSTAIN
        if keep_crops or explain:
            result.crops = crops
        if explain:
            result.heatmaps = self._explain(crops)
        return result

    def _explain(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        """Grad-CAM of "fake" per crop (needs the torch model)."""
        import torch

        from deepshield.explain import gradcam

        if self.model is None:
            raise ConfigError("Grad-CAM explanations need the torch model; drop --explain or run with the "
                              "torch runtime")
        if not crops:
            return []
        x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).to(self.device, torch.float32).div_(255.0)
        return list(gradcam(self.model, x, target=1, batch_size=self.cfg.batch_size))

    def _crop(self, image: np.ndarray, box) -> np.ndarray:
        return self.cutter.crop(image, box)

    def _score(self, crops: list[np.ndarray]) -> np.ndarray:
        n = self.cfg.batch_size
        return np.concatenate([self.scorer.score(np.stack(crops[i:i + n])) for i in range(0, len(crops), n)])


# --- scorers (--runtime): face crops -> fake probabilities ---------------------------------------------


@dataclass
class Scorer:
    """``score(crops)``: uint8 crops [B, S, S, 3] -> p(fake) [B]; ``raw``: the checkpoint's config dict
    (with its ``preprocess`` crop settings); ``model`` and ``device``: the PyTorch model and where it runs
    (torch runtime only)."""

    score: Callable[[np.ndarray], np.ndarray]
    raw: dict
    model: torch.nn.Module | None = None
    device: torch.device | None = None


RUNTIMES: Registry[Callable[[PredictConfig], Scorer]] = Registry("runtime")


@RUNTIMES.register("torch")
def torch_scorer(cfg: PredictConfig) -> Scorer:
    """The checkpoint's model in PyTorch on ``cfg.device`` (behind ``--defense`` when given)."""
    import torch

    from deepshield.models.loading import load_model_and_config
    from deepshield.runtime import probs_of

    device = select_device(cfg.device)
    model, _, raw = load_model_and_config(cfg.checkpoint, device)
    if cfg.defense:
        from deepshield.threats.defenses import DefendedModel, parse_defenses

        model = DefendedModel(model, parse_defenses(cfg.defense), adaptive=False).eval()

    def score(crops: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(crops).permute(0, 3, 1, 2).to(device, torch.float32).div_(255.0)
            return probs_of(model(x)).cpu().numpy()

    return Scorer(score, raw, model, device)


def exported_scorer(cfg: PredictConfig, format: str) -> Scorer:
    """An exported file (``--checkpoint x.onnx``), or the checkpoint exported once into the cache
    (``deepshield.export.exported_file``), run on the CPU's cores."""
    from deepshield.export import exported_file, load_exported

    needs_torch = [flag for flag, on in (("--defense", cfg.defense), ("--explain", cfg.explain)) if on]
    if needs_torch:
        raise ConfigError(f"{' and '.join(needs_torch)} need the PyTorch model; use --runtime torch "
                          f"(or drop {' and '.join(needs_torch)})")
    if cfg.device not in ("auto", "cpu"):
        raise ConfigError(f"--runtime {format} runs on the CPU; drop --device {cfg.device} or use "
                          "--runtime torch")
    model = load_exported(exported_file(cfg.checkpoint, format))

    def score(crops: np.ndarray) -> np.ndarray:
        x = crops.transpose(0, 3, 1, 2).astype(np.float32)
        return model(np.divide(x, np.float32(255.0), out=x))[:, 1]

    return Scorer(score, model.train_config)


for _format in EXPORT_FORMATS:
    RUNTIMES.add(_format, partial(exported_scorer, format=_format))


def fast_runtime(cfg: PredictConfig) -> str:
    """What ``--runtime auto`` runs: ONNX Runtime when an export with checked parity is at hand (a bundled
    model's shipped .onnx, or an .onnx checkpoint) and nothing needs the PyTorch model (``--defense``,
    ``--explain``, ``--device cuda``); else torch. Never exports on the fly, so the first call is not
    slow. ``--device auto`` scores on the CPU here (six face crops take ~10 ms with ONNX Runtime, less
    than a GPU's start-up; the face detector runs on the CPU either way); ``--device cuda`` for the GPU."""
    from deepshield.models.zoo import bundled_export

    needs_torch = cfg.defense or cfg.explain or cfg.device not in ("auto", "cpu")
    has_export = bundled_export(cfg.checkpoint) is not None or str(cfg.checkpoint).endswith(".onnx")
    return "onnx" if has_export and not needs_torch else "torch"


@RUNTIMES.register("auto")
def auto_scorer(cfg: PredictConfig) -> Scorer:
    """The fastest runtime that agrees with the model (:func:`fast_runtime`)."""
    return RUNTIMES.lookup(fast_runtime(cfg))(cfg)


def _attack_alarm(cfg: PredictConfig, warnings: list[str]):
    """The attack alarm (threshold calibrated for the bundled model; a warning for other checkpoints)."""
    from deepshield.threats.alarm import AttackAlarm

    if cfg.checkpoint != "default":
        warnings.append("--check-attack's threshold is calibrated for the bundled model (--checkpoint "
                        "default); with another checkpoint its false-alarm rate is unknown (calibrate it "
                        "with benchmarks/attack_alarm.py --checkpoint ...)")
    return AttackAlarm()


def predict_files(cfg: PredictConfig) -> list[MediaResult]:
    """Score every input of ``cfg`` (folders expanded)."""
    files = collect_inputs(cfg.inputs)
    predictor = Predictor(cfg)
    return [predictor.predict(f) for f in files]


def exit_code(results: list[MediaResult]) -> int:
    """2 if an input could not be read, else 3 if an input had no face, else 4 if the attack alarm
    made one ABSTAIN, else 0."""
    statuses = {r.status for r in results}
    if "error" in statuses or "no_face" in statuses:
        return EXIT_UNREADABLE if "error" in statuses else EXIT_NO_FACE
    return EXIT_ABSTAIN if any(r.label == LABEL_ABSTAIN for r in results) else EXIT_OK


def problem_lines(results: list[MediaResult], settings: CropSettings | None = None) -> list[str]:
    """One-line messages (for stderr) for inputs without a score."""
    lines = []
    how = f" (detector {settings.detector}, min score {settings.min_score})" if settings else ""
    for r in results:
        if r.status == "no_face":
            lines.append(f"no face found in {r.path}: {r.frames_sampled} sampled frame(s) had no face{how}; "
                         "use a video or image where a face is clearly visible (or lower --min-score)")
        elif r.status == "error":
            lines.append(f"cannot read {r.path}: {r.error}")
    return lines


def format_header(width: int) -> str:
    return f"{'label':<5}  {'p(fake)':>7}  {'file':<{width}}  faces"


def format_row(r: MediaResult, width: int) -> str:
    """One input's line of the text table."""
    if r.status == "ok":
        faces = f"{len(r.faces)} in {r.frames_sampled} frame(s)"
        return f"{r.label:<5}  {r.p_fake:>7.3f}  {r.path:<{width}}  {faces}"
    return f"{'-':<5}  {'-':>7}  {r.path:<{width}}  {'no face' if r.status == 'no_face' else 'unreadable'}"


def threshold_line(threshold: float, source: str) -> str:
    """The text output's last line: "(FAKE when p(fake) >= 0.372; calibrated: EER of ...)"."""
    return f"(FAKE when p(fake) >= {threshold:.4g}; {source})"


def format_text(results: list[MediaResult], threshold: float = 0.5, source: str = "default 0.5") -> str:
    """A human-readable table: label, fake probability, file, faces found; then the threshold line."""
    width = max([len(r.path) for r in results] + [4])
    lines = [format_header(width), *(format_row(r, width) for r in results)]
    lines.append(threshold_line(threshold, source))
    return "\n".join(lines)


def to_json(results: list[MediaResult], cfg: PredictConfig, settings: CropSettings | None,
            threshold: tuple[float, str] | None = None) -> dict:
    """The ``--json`` output; ``threshold``: the (value, source) the labels used (default: resolved from
    ``cfg`` alone, i.e. ``--threshold`` or 0.5)."""
    value, source = threshold or resolve_threshold(cfg.threshold, None)
    return {"checkpoint": cfg.checkpoint, "threshold": value, "threshold_source": source,
            "aggregate": cfg.aggregate, "face_settings": settings.to_json() if settings else None,
            "results": [r.to_dict(frames=True) for r in results]}


__all__ = ["RUNTIMES", "CropSettings", "FaceCutter", "FaceScore", "MediaResult", "Predictor", "Scorer",
           "collect_inputs", "exit_code", "exported_scorer", "face_settings", "format_header", "format_row",
           "format_text", "predict_files", "problem_lines", "setting_warnings", "threshold_line", "to_json",
           "torch_scorer"]
