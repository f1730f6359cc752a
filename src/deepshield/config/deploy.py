"""Configs of the commands that act on a trained model: attack a video, serve, export, calibrate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deepshield.config.learn import default_alpha
from deepshield.errors import ConfigError


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
        return self.alpha if self.alpha is not None else default_alpha(self.eps)


@dataclass(frozen=True)
class ServeConfig:
    """Settings of ``deepshield serve``: a local web page and JSON API around ``deepshield predict``.

    ``max_upload_mb``: largest upload (MB = 10^6 bytes), enforced while it streams in. ``queue_limit``:
    jobs waiting or running at once; more are refused (503). ``job_timeout``: seconds a job may run.
    ``frames``: frames sampled per video (None: as ``deepshield predict``). ``explain``: Grad-CAM
    heatmaps of the face crops; ``check_attack``: the attack alarm (where predict offers them).
    ``models``: the checkpoints the page lets a user pick besides ``checkpoint`` (None: every bundled
    model; each is loaded on its first use)."""

    checkpoint: str = "default"
    models: tuple[str, ...] | None = None
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


@dataclass(frozen=True)
class CalibrateConfig:
    """Settings of ``deepshield calibrate``: choose ``checkpoint``'s operating threshold with ``rule``
    (eer | fpr5 | fpr1; ``deepshield.contracts.threshold``) on the videos of ``dataset`` (one or more
    ``catalog:PATH[:split]`` specs; frames aggregated per video with ``aggregate``; ``frames`` evenly spaced
    crops per video, None: all) and write a copy of the checkpoint with it to ``out``."""

    checkpoint: str = "default"
    dataset: tuple[str, ...] = ()
    rule: str = "eer"
    aggregate: str = "mean"
    frames: int | None = None
    out: str = ""
    batch_size: int = 128
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.dataset:
            raise ConfigError("calibrate needs at least one --dataset, e.g. "
                              "--dataset catalog:faces/catalog.csv:val")
        if not self.out:
            raise ConfigError("calibrate needs --out, the checkpoint to write, e.g. "
                              "--out runs/x/calibrated.pt")
        if Path(self.out).suffix in (".onnx", ".torchscript"):
            raise ConfigError(f"--out {self.out}: calibrate writes a checkpoint (.pt); export it afterwards "
                              "with 'deepshield export'")
