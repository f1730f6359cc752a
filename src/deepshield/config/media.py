"""Configs of the commands that read videos and images: predict, preprocess, demo, report, merge."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deepshield.contracts.crops import CropSettings

_CROP = CropSettings()  # the one set of crop defaults (preprocess, datasets, predict, the checkpoint)


@dataclass(frozen=True)
class PredictConfig:
    """Settings of ``deepshield predict``. None: from the checkpoint's preprocessing settings
    (``config["preprocess"]``), else the preprocessing defaults (margin 1.3, size = image_size)."""

    inputs: tuple[str, ...]             # videos, images or folders of them
    checkpoint: str = "default"         # a run's best.pt, or "default" (the bundled detector)
    frames: int | None = None           # frames sampled evenly per video (default: as preprocessed, else 32)
    detector: str | None = None         # face detector name (default: checkpoint's, else mtcnn)
    margin: float | None = None         # crop side = margin x the face box's longer side
    shift: float | None = None          # crop centre moved down by this fraction of the face box
    size: int | None = None             # crop size before resizing to the model's image_size
    min_score: float | None = None      # detector confidence a face needs, in [0, 1]
    threshold: float | None = None      # FAKE at p(fake) >= this (None: the model's calibrated one, else 0.5)
    aggregate: str = "mean"             # frame -> video score: mean | top50 | median
    batch_size: int = 32
    device: str = "auto"
    as_json: bool = False
    defense: str | None = None          # input defenses before the model, e.g. "jpeg:75" (threats.defenses)
    explain: str | None = None          # folder for Grad-CAM overlays of the face crops + index.json
    check_attack: bool = False          # attack alarm (threats.alarm); flagged inputs are labelled ABSTAIN
    runtime: str = "auto"               # auto | torch | onnx | torchscript: what scores the crops
    detect_every: int = 1               # run the face detector on every N-th sampled frame, track between
    detector_runtime: str = "auto"      # auto | torch | onnx: what runs the face detector (MTCNN)
    out: str | None = None              # JSON lines, one per input as it finishes; a rerun skips those
    workers: int | None = None          # processes cutting faces for a folder (None: auto; 0: in this one)


@dataclass(frozen=True)
class PreprocessConfig:
    """Settings of ``deepshield preprocess``; fields mirror its flags.

    ``fps`` (frames per second of video) or ``frames_per_video`` (evenly spaced), not both; neither means
    32 frames per video. ``size``: crop side in px. ``margin``: crop side / face box side (>= 1).
    ``faces``: ``largest`` (one per frame) or ``all`` (tracked across frames). ``min_score``: detector
    confidence in [0, 1]. ``quality``: JPEG quality. ``compression`` (raw/c23/c40; None = all found) and
    ``splits`` (folder with the official train/val/test.json): FF++ only.
    ``shift``: crop centre moved down by this fraction of the face box (see ``deepshield.data.faces``).
    ``metadata``: ``--layout faces`` metadata CSV. ``split_ratios``: ``"train,val,test"`` fractions for
    videos the layout gives no split (assigned by group, see ``deepshield.data.splits.assign_split``;
    default 0.8,0.1,0.1). ``progress``: a progress bar (one line per stage off a terminal).
    ``shard``: ``"K/N"`` (K in 1..N) takes a fixed 1/N of the videos by hash of their id.
    ``max_side``: longest frame side (px) the detector's first stage sees. ``min_face_size``: the
    smallest face (px, full frame) the detector looks for; 40 rather than MTCNN's 20, since a smaller
    face holds too little for a detector and its search costs ~1.7x (see ``benchmarks/preprocess.py``).
    ``seed`` seeds torch in each
    process; the pipeline itself makes no random choice. ``keyframes``: sample the keyframes nearest the
    sampled instants (several sharing one take it and the frames after it): 3-6x faster decoding, at
    the cost of frame position (see ``deepshield.data.sampling.keyframe_positions``).
    """

    root: Path
    layout: str
    out: Path
    fps: float | None = None
    frames_per_video: int | None = None
    size: int = _CROP.size
    margin: float = _CROP.margin
    faces: str = _CROP.faces
    workers: int = 1
    min_score: float = _CROP.min_score
    format: str = "png"
    quality: int = 95
    compression: str | None = None
    splits: Path | None = None
    shard: str | None = None
    max_side: int = _CROP.max_side
    min_face_size: int = _CROP.min_face_size
    detector: str = _CROP.detector
    shift: float = _CROP.shift
    metadata: Path | None = None
    split_ratios: str | None = None
    seed: int = 0
    progress: bool = True
    keyframes: bool = False

    def __post_init__(self) -> None:
        for name in ("root", "out", "splits", "metadata"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value).expanduser().resolve())

    @property
    def crop_settings(self) -> CropSettings:
        """The detection and crop settings of this run (what preprocess.json hands to training)."""
        return CropSettings.from_json(self.to_json())

    @property
    def sampling(self) -> dict[str, Any]:
        """Keyword arguments for ``read_media``."""
        return self.crop_settings.sampling

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class DemoConfig:
    """Settings of ``deepshield demo`` (synthetic data, standard vs PGD-AT SmallCNN)."""

    out: str = "runs/demo"
    n_train: int = 2000
    n_test: int = 500
    epochs: int = 3
    seed: int = 0
    progress: bool = True


@dataclass(frozen=True)
class ReportConfig:
    """Settings of ``deepshield report``: evaluated runs in, one comparison report out."""

    runs: tuple[str, ...]
    out: str | None = None              # default: report/ beside the runs
    title: str = "deepshield robustness comparison"


@dataclass(frozen=True)
class MergeConfig:
    """Settings of ``deepshield catalog merge``: shard output folders joined into one catalog."""

    action: str
    out: str
    parts: tuple[str, ...]
