"""The server's one ``Predictor`` and its job queue: an uploaded file in, the page's JSON out.

No model logic here: faces, scores, Grad-CAM and the attack alarm all come from
``deepshield.predict.Predictor``. This module only watches the work (progress, time limit) and shapes
the answer (``deepshield.serve.payload``).
"""

from __future__ import annotations

import inspect
import threading
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from deepshield.config import PredictConfig, ServeConfig
from deepshield.data.video import IMAGE_EXTENSIONS
from deepshield.models.zoo import BUNDLED
from deepshield.serve.jobs import Job, JobFailed, JobQueue
from deepshield.serve.payload import model_info, result_json


class DetectorWatch:
    """Wraps the predictor's face detector: before each batch of frames, checks the running job's time
    limit; after it, counts the frames done (the page's progress bar)."""

    def __init__(self, detector: Any) -> None:
        self.inner = detector
        self.job: Job | None = None
        self.next_stage = "scoring the faces"   # shown once every sampled frame went through the detector

    def detect(self, images):
        job = self.job
        if job is not None:
            job.check_deadline()
        faces = self.inner.detect(images)
        if job is not None:
            job.frames_done += len(images)
            total = job.frames_total
            job.stage = self.next_stage if total and job.frames_done >= total else "finding faces"
        return faces

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def model_choices(cfg: ServeConfig) -> tuple[str, ...]:
    """The models a request may name: ``cfg.checkpoint`` first, then ``cfg.models`` (None: the bundled
    ones whose files are installed)."""
    if cfg.models is None:
        extra = tuple(name for name, path in BUNDLED.items() if path.is_file())
    else:
        extra = cfg.models
    return tuple(dict.fromkeys((cfg.checkpoint, *extra)))


def predict_config(cfg: ServeConfig, checkpoint: str | None = None) -> PredictConfig:
    """The ``deepshield predict`` settings the server runs ``checkpoint`` (default: cfg's) with."""
    known = {f.name for f in fields(PredictConfig)}
    extra = {"check_attack": cfg.check_attack} if "check_attack" in known else {}
    runtime = "torch" if cfg.explain else "auto"  # Grad-CAM overlays need the PyTorch model
    return PredictConfig(inputs=(), checkpoint=checkpoint or cfg.checkpoint, frames=cfg.frames,
                         device=cfg.device, runtime=runtime, **extra)


class UnknownModel(ValueError):
    """A request named a model this server does not offer."""


class Service:
    """The loaded ``Predictor`` of each model a request may pick (:func:`model_choices`; the first loaded at
    start, the others on first use; pass one in to share it, e.g. in tests), a ``JobQueue`` and the
    models' info."""

    def __init__(self, cfg: ServeConfig, predictor: Any | None = None) -> None:
        self.cfg = cfg
        self.choices = model_choices(cfg) if predictor is None else (cfg.checkpoint,)
        self.predictors: dict[str, Any] = {}
        self.watches: dict[str, DetectorWatch] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.queue = JobQueue(cfg.queue_limit, cfg.job_timeout)
        self._add(cfg.checkpoint, predictor)
        first = cfg.checkpoint
        self.predictor, self.watch = self.predictors[first], self.watches[first]
        self.model = self.models[first]
        accepted = inspect.signature(self.predictor.predict).parameters
        self.options = {k: v for k, v in (("keep_crops", True), ("explain", cfg.explain)) if k in accepted}

    def _add(self, name: str, predictor: Any | None = None) -> Any:
        if predictor is None:
            from deepshield.predict import Predictor

            predictor = Predictor(predict_config(self.cfg, name))
        detector = predictor.detector
        watch = DetectorWatch(detector.inner if isinstance(detector, DetectorWatch) else detector)
        predictor.detector = watch
        extras = [label for label, on in (("Grad-CAM", self.cfg.explain),
                                          ("the attack alarm", getattr(predictor.cfg, "check_attack", False)))
                  if on]
        watch.next_stage = "scoring the faces" + (f" ({', '.join(extras)})" if extras else "")
        self.predictors[name], self.watches[name] = predictor, watch
        self.models[name] = model_info(name, predictor.train_cfg,
                                       threshold=(predictor.threshold, predictor.threshold_source))
        return predictor

    def predictor_for(self, name: str | None) -> tuple[str, Any]:
        """(name, loaded predictor) of a model a request may pick (None: the server's first);
        ``UnknownModel`` for any other name."""
        name = name or self.cfg.checkpoint
        if name not in self.choices:
            raise UnknownModel(f"unknown model {name[:60]!r}; this server offers {', '.join(self.choices)}")
        with self._lock:
            return name, self.predictors.get(name) or self._add(name)

    @property
    def explains(self) -> bool:
        return bool(self.options.get("explain"))

    @property
    def checks_attack(self) -> bool:
        return bool(getattr(self.predictor.cfg, "check_attack", False))

    def analyse(self, job: Job, media: Path, filename: str, model: str | None = None) -> dict[str, Any]:
        """Run on the worker thread: predict ``media`` with ``model`` (None: the server's first) and shape
        the page's JSON (``JobFailed`` if the file cannot be read after all)."""
        start = time.perf_counter()
        job.stage = "loading the model"
        name, predictor = self.predictor_for(model)
        watch = self.watches[name]
        frames = getattr(getattr(predictor, "settings", None), "frames_per_video", None)
        job.frames_total = 1 if media.suffix in IMAGE_EXTENSIONS else frames
        job.stage = "reading the file"
        watch.job = job
        try:
            result = predictor.predict(media, **self.options)
        finally:
            watch.job = None
        if result.error:
            raise JobFailed(422, f"cannot read {filename}: {result.error}")
        job.stage = "preparing the result"
        # each model judges at its own threshold: the one calibrated for it, else 0.5
        return result_json(result, self.models[name], threshold=predictor.threshold,
                           threshold_source=predictor.threshold_source, filename=filename,
                           seconds=time.perf_counter() - start, warnings=list(predictor.warnings))

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "model": self.model, "models": list(self.choices),
                "max_upload_bytes": self.cfg.max_upload_bytes,
                "queue": {"active": self.queue.active, "limit": self.queue.limit},
                "job_timeout_s": self.cfg.job_timeout,
                "frames": getattr(getattr(self.predictor, "settings", None), "frames_per_video", None),
                "explain": self.explains, "check_attack": self.checks_attack}


__all__ = ["DetectorWatch", "Service", "UnknownModel", "predict_config"]
