"""Typed results of a robust evaluation; ``to_json``/``from_json`` define the results.json schema.

    >>> result, images = sweep(model, data, spec, device)      # SweepResult, GalleryImages | None
    >>> result.robust[0].metrics.acc, result.worst_case[0].metrics.acc
    >>> evaluated = evaluate(cfg)                               # EvalResult
    >>> evaluated.out / "report.html", evaluated.to_json()["clean"]["auc"]

Rows, metrics, checks and the gallery are the records of :mod:`deepshield.contracts.rows`; the report
reads results.json files, so what a run writes and what ``deepshield report`` reads are the same
``to_json()`` dict. Gallery images are not part of it: they travel apart (``GalleryImages``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepshield.config import SweepSpec
from deepshield.contracts.rows import Check, CorruptionRow, Gallery, Metrics, SweepRow
from deepshield.errors import DataError


@dataclass
class Samples:
    """Per-sample labels, video ids, methods and P(fake) scores (``clean`` and one per row key)."""

    labels: list[int]
    video_ids: list[str] | None
    methods: list[str] | None
    scores: dict[str, list[float]]

    def to_json(self) -> dict[str, Any]:
        return {"labels": self.labels, "video_ids": self.video_ids, "methods": self.methods,
                "scores": self.scores}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Samples:
        return cls(labels=list(d.get("labels", [])), video_ids=d.get("video_ids"), methods=d.get("methods"),
                   scores=dict(d.get("scores", {})))


@dataclass(frozen=True)
class GalleryImages:
    """The gallery's clean and attacked images, [K, C, H, W] float arrays in [0, 1]."""

    clean: np.ndarray
    adv: np.ndarray


@dataclass
class SweepResult:
    """What :func:`deepshield.evaluation.robust.sweep` measured: clean metrics, one row per (attack, ε),
    per-ε worst-case rows, per-sample scores, and the gallery's metadata (``file`` once rendered)."""

    clean: Metrics
    robust: list[SweepRow]
    worst_case: list[SweepRow]
    spec: SweepSpec
    n: int
    seconds: float
    samples: Samples
    gallery: Gallery | None = None
    reencoded: list[SweepRow] = field(default_factory=list)      # rows after JPEG/H.264 re-encoding
    transfer: list[SweepRow] = field(default_factory=list)       # rows crafted on a surrogate model
    corruptions: list[CorruptionRow] = field(default_factory=list)  # clean rows under natural corruptions

    def to_json(self) -> dict[str, Any]:
        d = {"clean": self.clean.to_json(), "robust": _rows_json(self.robust),
             "worst_case": _rows_json(self.worst_case), "reencoded": _rows_json(self.reencoded),
             "transfer": _rows_json(self.transfer), "corruptions": _rows_json(self.corruptions),
             "spec": self.spec.to_dict(), "n": self.n, "seconds": self.seconds,
             "samples": self.samples.to_json()}
        if self.gallery is not None:
            d["gallery"] = self.gallery.to_json()
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any], source: str = "results.json") -> SweepResult:
        """Parse the sweep part of a results.json dict; ``DataError`` naming ``source`` if it is not one."""
        if not isinstance(d, dict) or "clean" not in d or "robust" not in d:
            raise DataError(f"{source} is not a 'deepshield evaluate' results.json (no clean/robust keys)")
        spec = SweepSpec.from_dict(d.get("spec", {}))

        def rows(key: str) -> list[SweepRow]:
            return [SweepRow.from_json(r, f"{source} {key}[{i}]", spec.norm)
                    for i, r in enumerate(d.get(key, []))]

        clean = Metrics.from_json(d["clean"], f"{source} clean")
        return cls(clean=clean, robust=rows("robust"), worst_case=rows("worst_case"), spec=spec,
                   n=int(d.get("n", clean.n)),
                   seconds=float(d.get("sweep_seconds", d.get("seconds", 0.0)) or 0.0),
                   samples=Samples.from_json(d.get("samples", {})),
                   gallery=Gallery.from_json(d["gallery"], f"{source} gallery") if d.get("gallery") else None,
                   reencoded=rows("reencoded"), transfer=rows("transfer"),
                   corruptions=[CorruptionRow.from_json(r, f"{source} corruptions[{i}]")
                                for i, r in enumerate(d.get("corruptions", []))])


def _rows_json(rows: list[SweepRow] | list[CorruptionRow]) -> list[dict[str, Any]]:
    return [r.to_json() for r in rows]


@dataclass
class DatasetEval:
    """One more dataset a checkpoint was scored on (``deepshield evaluate --dataset A B``): its spec, its
    ``domain`` (see :mod:`deepshield.evaluation.cross_dataset`) and clean metrics; ``sweep.robust`` is empty
    unless it was attacked too (``--cross-sweep``)."""

    dataset: str
    domain: str
    sweep: SweepResult

    @property
    def swept(self) -> bool:
        return bool(self.sweep.robust)

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "domain": self.domain, **self.sweep.to_json()}

    @classmethod
    def from_json(cls, d: dict[str, Any], source: str = "results.json") -> DatasetEval:
        if not isinstance(d, dict) or "dataset" not in d:
            raise DataError(f"{source} is not a cross-dataset entry (no 'dataset' key)")
        return cls(dataset=str(d["dataset"]), domain=str(d.get("domain", "")),
                   sweep=SweepResult.from_json(d, source))


@dataclass
class EvalResult:
    """One evaluated checkpoint: the sweep, its sanity checks, and where and how it ran. ``out`` is
    the folder holding results.json and the report (not saved in the JSON). ``domain``: whether
    ``dataset`` is the one the checkpoint was trained on; ``cross``: more datasets scored in the same run
    (results.json ``cross_dataset``, written only when there are some)."""

    sweep: SweepResult
    checks: list[Check] = field(default_factory=list)
    run: str = ""
    checkpoint: str = ""
    dataset: str = ""
    model: str = ""
    device: str = ""
    train_config: dict[str, Any] = field(default_factory=dict)
    threat: dict[str, Any] = field(default_factory=dict)   # defense, randomized, EOT draws
    seconds: float = 0.0
    created: str = ""
    out: Path | None = None
    domain: str = ""
    cross: list[DatasetEval] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The results.json dict (sweep fields at the top level, ``seconds`` = the whole evaluation)."""
        d = {**self.sweep.to_json(), "sweep_seconds": self.sweep.seconds,
             "checks": [c.to_json() for c in self.checks],
             "run": self.run, "checkpoint": self.checkpoint, "dataset": self.dataset, "model": self.model,
             "device": self.device, "train_config": self.train_config, "threat": self.threat,
             "seconds": self.seconds,
             "created": self.created}
        if self.domain:
            d["domain"] = self.domain
        if self.cross:
            d["cross_dataset"] = [c.to_json() for c in self.cross]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any], source: str = "results.json",
                  out: Path | None = None) -> EvalResult:
        sweep = SweepResult.from_json(d, source)
        checks = [Check.from_json(c, f"{source} checks[{i}]") for i, c in enumerate(d.get("checks", []))]
        return cls(sweep=sweep, checks=checks,
                   run=str(d.get("run", "")), checkpoint=str(d.get("checkpoint", "")),
                   dataset=str(d.get("dataset", "")), model=str(d.get("model", "")),
                   device=str(d.get("device", "")), train_config=dict(d.get("train_config", {})),
                   threat=dict(d.get("threat", {})),
                   seconds=float(d.get("seconds", 0.0) or 0.0), created=str(d.get("created", "")), out=out,
                   domain=str(d.get("domain", "")),
                   cross=[DatasetEval.from_json(c, f"{source} cross_dataset[{i}]")
                          for i, c in enumerate(d.get("cross_dataset") or [])])

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


__all__ = ["DatasetEval", "EvalResult", "GalleryImages", "Samples", "SweepResult"]
