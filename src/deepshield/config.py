"""Frozen dataclass configs, one per command; the CLI flags mirror these fields one-to-one.

    >>> cfg = config_from_mapping(EvalConfig, {"checkpoint": "best.pt", "eps": (2/255,), "steps": 20})
    >>> cfg.sweep.steps
    20
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepshield.errors import ConfigError

if TYPE_CHECKING:
    from deepshield.data.faces import CropGeometry


@dataclass(frozen=True)
class TrainConfig:
    """Settings of ``deepshield train``. ε, α in [0, 1] pixel units."""

    dataset: str = "synthetic"          # synthetic | catalog:PATH[:split]
    backbone: str = "small_cnn"
    pretrained: str | None = None       # local state-dict path, "imagenet" (offline weights), or "timm"
    image_size: int = 64
    adv: str = "none"                   # none | pgd | fgsm-rs | trades | mart
    eps: float = 4 / 255
    alpha: float | None = None          # default ε/4
    steps: int = 7
    trades_beta: float = 6.0
    adv_warmup_epochs: int = 0
    epochs: int = 5
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 5e-4
    seed: int = 0
    out: str = "runs/train"
    resume: bool = False
    tensorboard: bool = False
    smoke: bool = False
    workers: int = 0
    amp: bool | None = None             # None: auto (CUDA bf16/fp16; CPU bf16 only with native bf16)
    probe: bool = True                  # measure threads, precision and layout (training.precision)
    compile: bool = False               # torch.compile the training forward
    device: str = "auto"
    n_train: int = 4000                 # synthetic dataset sizes
    n_val: int = 1000
    frames_per_video: int = 8
    freeze_epochs: int = 0
    unfreeze_every: int = 1
    backbone_lr_scale: float = 0.1      # backbone LR = lr * scale when fine-tuning pretrained weights
    cache: bool = True                  # memory-mapped decoded-crop cache for catalog datasets
    cache_dir: str | None = None        # default: OUT/cache
    balance: bool = False               # class-balanced frame sampling
    val_attack_steps: int = 10
    best_metric: str | None = None      # default: val_robust_score (clean+PGD) if adversarial, else val_auc
    augment: str = "faces"              # training augmentation: faces | none (see data.transforms.AUGMENTS)
    max_train: int | None = None        # catalog: at most this many training videos (a seeded subset)
    pseudo_fakes: str | None = None     # catalog: self-blended fakes from the reals (sbi; data.pseudo_fakes)
    pseudo_fake_ratio: float = 1.0      # fraction of fake samples that are pseudo-fakes; 1 = reals only
    config: str | None = None           # the recipe (YAML) the run was started from
    progress: bool = True

    @property
    def pgd_alpha(self) -> float:
        return self.alpha if self.alpha is not None else self.eps / 4

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def parse_fraction(text: str) -> float:
    """``"2/255"``, ``"1.25/255"`` or ``"0.008"`` -> float; ValueError otherwise."""
    num, _, den = text.strip().partition("/")
    value = float(num) / float(den) if den else float(num)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{text!r} is not a finite number")
    return value


class RecipeError(ConfigError):
    """A recipe file that cannot be used; the message names the file and the key."""


def load_recipe(path: str | Path) -> dict[str, Any]:
    """A training recipe (YAML mapping of TrainConfig fields; dashes or underscores) -> field values.

    ``eps`` and ``alpha`` may be written as fractions ("2/255"). Raises ``RecipeError`` naming an
    unknown key or a file that is missing or not a mapping.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe {path}: not found; pass a YAML file such as "
                          "recipes/dfdc-faces-standard.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe {path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {path}: expected a mapping of settings (key: value)")
    names = {f.name: f for f in fields(TrainConfig)}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in names or name in ("config", "resume"):
            raise RecipeError(f"recipe {path}: unknown key {key!r}; valid keys are the train flags: "
                              + ", ".join(sorted(n for n in names if n not in ("config", "resume"))))
        if name in ("eps", "alpha") and isinstance(value, str):
            try:
                value = parse_fraction(value)
            except (ValueError, ZeroDivisionError):
                raise RecipeError(f"recipe {path}: {key}: {value!r} is not a number like 2/255") from None
        out[name] = value
    return out


# The full budget ``deepshield evaluate --thorough`` restores (the defaults are a first look).
THOROUGH = {"square_queries": 1000, "sanity_n": 256}


@dataclass(frozen=True)
class SweepSpec:
    """What ``deepshield evaluate`` attacks with. ε in [0, 1] pixel units (L∞) or L2 pixel units.

    ``steps``/``restarts``: iterative attacks' budget; ``square_queries``: Square's model queries per
    sample; ``early_stop``: attack only correct samples and stop once fooled (AutoAttack protocol);
    ``sanity_n``: samples the sanity checks' extra attacks use; ``gallery``: faces kept for the report;
    ``seed``: attacks' random starts and the evaluated subset; ``options``: extra per-attack settings
    as ``(attack, key, value)`` triples (``--attack-option square.p_init=0.5``), so a new attack's
    hyper-parameter needs no new field here. ``reuse`` (with ``early_stop``): beyond the first
    ``sanity_n`` samples, a face already fooled at a smaller ε or by a cheaper attack is not attacked
    again (its fooling point lies inside the larger ball), so each row counts a face as fooled by this
    attack or a cheaper one at ≤ ε;
    the first ``sanity_n`` faces are attacked independently, for the sanity checks. The defaults are a
    first look (minutes on a CPU); :meth:`thorough` is the full budget (``deepshield evaluate --thorough``).
    """

    attacks: tuple[str, ...] = ("fgsm", "pgd")
    eps: tuple[float, ...] = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
    norm: str = "linf"
    steps: int = 10
    restarts: int = 1
    seed: int = 0
    square_queries: int = 200
    early_stop: bool = True
    sanity_n: int = 128
    gallery: int = 6
    options: tuple[tuple[str, str, Any], ...] = ()
    reuse: bool = True

    def __post_init__(self) -> None:
        if not self.eps:
            raise ConfigError("--eps needs at least one budget, e.g. --eps 1/255,4/255")
        for e in self.eps:
            if e < 0:
                raise ConfigError(f"--eps {e}: ε must be >= 0")
            if self.norm == "linf" and e > 1:
                raise ConfigError(f"--eps {e:g}: L∞ ε is in [0, 1] pixel units; did you mean {e:g}/255?")
        if not self.attacks:
            raise ConfigError("--attacks needs at least one attack, e.g. --attacks fgsm,pgd")

    def thorough(self) -> SweepSpec:
        """This spec with at least the full budget of the sanity checks (``THOROUGH``)."""
        return replace(self, **{k: max(getattr(self, k), v) for k, v in THOROUGH.items()})

    def options_for(self, attack: str) -> dict[str, Any]:
        """The ``--attack-option`` settings given for ``attack``."""
        return {key: value for name, key, value in self.options if name == attack}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(attacks=list(self.attacks), eps=list(self.eps), options=[list(o) for o in self.options])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SweepSpec:
        names = {f.name for f in fields(cls)}
        kept = {k: v for k, v in d.items() if k in names}
        kept.update(attacks=tuple(kept.get("attacks", cls.attacks)), eps=tuple(kept.get("eps", cls.eps)),
                    options=tuple(tuple(o) for o in kept.get("options", ())))
        return cls(**kept)


@dataclass(frozen=True)
class EvalConfig:
    """Settings of ``deepshield evaluate``: what to evaluate, on what, and the attack sweep."""

    checkpoint: str
    dataset: str = "synthetic"          # synthetic | catalog:PATH[:split]
    cross_dataset: tuple[str, ...] = () # more datasets scored clean (evaluation.cross_dataset)
    cross_sweep: bool = False           # also run the attack sweep on cross_dataset
    sweep: SweepSpec = field(default_factory=SweepSpec)
    batch_size: int = 128
    n_test: int = 1000                  # synthetic test images
    max_videos: int | None = None       # catalog: a seeded, label-balanced subset of this many videos
    out: str | None = None              # default: next to the checkpoint (eval/ or eval_<catalog>/)
    device: str = "auto"
    sanity: bool = True
    progress: bool = True
    reencode: tuple[str, ...] = ("jpeg:75", "h264:23")  # score clean and adversarial faces after these
    surrogate: str | None = None        # also craft on this checkpoint and score the evaluated one (transfer)
    corruptions: bool = True            # rows under natural corruptions (JPEG, blur, noise, downscale)
    defense: str | None = None          # input defenses, e.g. "jpeg:75,median:3" (threats.defenses)
    adaptive: bool = True               # attack defenses adaptively (BPDA / EOT); False: flagged
    eot: int | None = None              # EOT samples for attacks; None: 8 when the model is randomized
    ensemble: tuple[str, ...] = ()      # more checkpoints averaged with --checkpoint
    thorough: bool = False              # the full sanity-check budget (SweepSpec.thorough), not a first look

    def __post_init__(self) -> None:
        if self.thorough:
            object.__setattr__(self, "sweep", self.sweep.thorough())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sweep"] = self.sweep.to_dict()
        return d


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
    threshold: float = 0.5              # fake probability above which a video is called FAKE
    aggregate: str = "mean"             # frame -> video score: mean | top50 | median
    batch_size: int = 32
    device: str = "auto"
    as_json: bool = False
    defense: str | None = None          # input defenses before the model, e.g. "jpeg:75" (threats.defenses)
    explain: str | None = None          # folder for Grad-CAM overlays of the face crops + index.json
    check_attack: bool = False          # attack alarm (threats.alarm); flagged inputs are labelled ABSTAIN
    runtime: str = "torch"              # torch | onnx | torchscript: what scores the face crops (see export)


DEFAULT_FRAMES_PER_VIDEO = 32


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
    ``max_side``: longest frame side (px) the detector's first stage sees. ``seed`` seeds torch in each
    process; the pipeline itself makes no random choice. ``keyframes``: sample the keyframes nearest the
    sampled instants (several sharing one take it and the frames after it): 3-6x faster decoding, at
    the cost of frame position (see ``deepshield.data.video.keyframe_positions``).
    """

    root: Path
    layout: str
    out: Path
    fps: float | None = None
    frames_per_video: int | None = None
    size: int = 224
    margin: float = 1.3
    faces: str = "largest"
    workers: int = 1
    min_score: float = 0.9
    format: str = "png"
    quality: int = 95
    compression: str | None = None
    splits: Path | None = None
    shard: str | None = None
    max_side: int = 640
    detector: str = "mtcnn"
    shift: float = 0.0
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
    def sampling(self) -> dict[str, Any]:
        """Keyword arguments for ``read_media``."""
        if self.fps is not None:
            return {"fps": self.fps, "num_frames": None}
        return {"fps": None, "num_frames": self.frames_per_video or DEFAULT_FRAMES_PER_VIDEO}

    @property
    def geometry(self) -> CropGeometry:
        from deepshield.data.faces import CropGeometry

        return CropGeometry(self.size, self.margin, self.shift)

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


@dataclass(frozen=True)
class VideoAttackConfig:
    """Settings of ``deepshield attack``: an adversarial video file against a detector's pipeline.

    ``eps``, ``alpha``: L∞ budget and step in [0, 1] pixel units of the frames (α None: ε/4).
    ``target``: the verdict to reach: ``real`` (evasion), ``fake`` (framing) or ``auto`` (the opposite
    of the detector's verdict on the input). ``eot``: random transformations (re-encoding, rescale,
    shift) averaged per step. ``crf``: x264 constant rate factor of the written mp4. ``surrogate``: craft
    on this checkpoint, judge with ``checkpoint`` (a transfer attack). ``attack_frames``: ``all`` (the
    perturbation of the nearest sampled frame is carried to every frame) or ``sampled`` (only the frames
    the detector samples)."""

    video: str
    out: str
    checkpoint: str = "default"
    surrogate: str | None = None
    eps: float = 4 / 255
    alpha: float | None = None
    steps: int = 50
    eot: int = 4
    target: str = "auto"
    attack_frames: str = "all"
    crf: int = 23
    frames: int | None = None
    seed: int = 0
    device: str = "auto"
    as_json: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        checks = [
            (0 < self.eps <= 1, f"--eps {self.eps:g}: must be in (0, 1] pixel units, e.g. 4/255"),
            (self.alpha is None or 0 < self.alpha <= 1, f"--alpha {self.alpha}: must be in (0, 1]"),
            (self.steps >= 1 and self.eot >= 1, "--steps and --eot must be >= 1"),
            (self.target in ("auto", "real", "fake"), f"--target {self.target!r}: choose auto, real or fake"),
            (self.attack_frames in ("all", "sampled"),
             f"--attack-frames {self.attack_frames!r}: choose all or sampled"),
            (0 <= self.crf <= 51, f"--crf {self.crf}: must be in 0..51 (x264; 23 is its default)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if Path(self.out).expanduser().resolve() == Path(self.video).expanduser().resolve():
            raise ConfigError(f"--out {self.out} is the input video; write the adversarial video elsewhere")

    @property
    def step_size(self) -> float:
        return self.alpha if self.alpha is not None else self.eps / 4


@dataclass(frozen=True)
class ServeConfig:
    """Settings of ``deepshield serve``: a local web page and JSON API around ``deepshield predict``.

    ``max_upload_mb``: largest upload (MB = 10^6 bytes), enforced while it streams in. ``queue_limit``:
    jobs waiting or running at once; more are refused (503). ``job_timeout``: seconds a job may run.
    ``frames``: frames sampled per video (None: as ``deepshield predict``). ``explain``: Grad-CAM
    heatmaps of the face crops; ``check_attack``: the attack alarm (where predict offers them)."""

    checkpoint: str = "default"
    host: str = "127.0.0.1"
    port: int = 8000
    frames: int | None = None
    max_upload_mb: float = 200.0
    queue_limit: int = 4
    job_timeout: float = 120.0
    explain: bool = True
    check_attack: bool = True
    device: str = "auto"

    def __post_init__(self) -> None:
        checks = [
            (1 <= self.port <= 65535, f"--port {self.port}: must be in 1..65535, e.g. 8000"),
            (self.max_upload_mb > 0, f"--max-upload-mb {self.max_upload_mb:g}: must be > 0, e.g. 200"),
            (self.queue_limit >= 1, f"--queue-limit {self.queue_limit}: must be >= 1"),
            (self.job_timeout > 0, f"--job-timeout {self.job_timeout:g}: must be > 0 seconds, e.g. 120"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)


@dataclass(frozen=True)
class ExportConfig:
    """Settings of ``deepshield export``: a checkpoint ("default": the bundled model) -> a ``format`` file
    (onnx | torchscript; ``deepshield.export.EXPORT_FORMATS``) at ``out`` (None: beside the checkpoint,
    ``./default.onnx`` for the bundled model)."""

    checkpoint: str = "default"
    format: str = "onnx"
    out: str | None = None


def _nested(cls: type) -> dict[str, type]:
    """Fields of ``cls`` that are themselves config dataclasses: {field name: class}."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls) if is_dataclass(hints[f.name])}


def config_fields(cls: type) -> set[str]:
    """Every setting of a config, nested configs flattened (what the command's flags must cover)."""
    nested = _nested(cls)
    names: set[str] = set()
    for f in fields(cls):
        names |= config_fields(nested[f.name]) if f.name in nested else {f.name}
    return names


def config_from_mapping(cls: type, values: Mapping[str, Any]) -> Any:
    """Build config ``cls`` from flat ``values`` (e.g. parsed flags): each field takes the value of its
    name, nested configs take theirs from the same mapping; lists become tuples; absent names keep
    their defaults."""
    nested = _nested(cls)
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name in nested:
            kwargs[f.name] = config_from_mapping(nested[f.name], values)
        elif f.name in values:
            value = values[f.name]
            kwargs[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)
