"""Evaluation rows and sanity checks: the typed records a results.json holds and the reports read.

    >>> m = Metrics.from_json(detection_metrics(labels, probs))      # n, acc, auc, ... per direction
    >>> row = SweepRow("pgd", 4 / 255, "linf", "pgd@4/255", m, seconds=1.5, attacked=120)
    >>> row.metrics.acc, row.eps_255, row.to_json()["acc"]
    >>> Check("huge_eps", "pgd at huge eps drives accuracy to ~0", acc <= 0.05, f"accuracy {acc:.3f}")

``to_json``/``from_json`` write and read the results.json dicts: each row's metrics sit flat at its top
level, next to what identifies the row. A metric is NaN where it is undefined (one class only); a file
stores NaN as null, which reads back as None (as the report always read it), and a metric a file does
not record (an older one) reads as None too. A row's other optional fields are None where its kind does
not record them; a success rate or a check's value stored as null (NaN when written) reads back as NaN,
so the row writes it again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from deepshield.errors import DataError

# The frame-level metrics of ``evaluation.metrics.binary_metrics``, in results.json order.
BINARY = ("n", "acc", "auc", "ap", "eer", "real_acc", "fake_acc", "tpr_at_1fpr", "threshold_1fpr")


def _need(d: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(d, Mapping) or key not in d:
        raise DataError(f"{where} has no {key!r}; is this a 'deepshield evaluate' results.json?")
    return d[key]


def _optional(d: Mapping[str, Any], key: str) -> Any:
    """An optional rate or value: absent -> None, stored as null (written as NaN) -> NaN."""
    if key not in d:
        return None
    return math.nan if d[key] is None else d[key]


@dataclass(frozen=True)
class Metrics:
    """Detection metrics of one set of P(fake) scores (``evaluation.metrics.detection_metrics``).

    Frame level: ``n`` faces, accuracy, ROC-AUC, average precision, EER, ``real_acc`` (accuracy on reals:
    the real->fake, framing direction), ``fake_acc`` (on fakes: the fake->real, evasion direction),
    ``tpr_at_1fpr`` (fakes caught at ``threshold_1fpr``, the threshold that flags 1% of reals).
    ``video``: {aggregation (``mean``, ``top50``): the same over videos}, with video ids; ``by_method``:
    {fake method: it against all reals; ``real``: the reals alone}, with methods (their ``video`` holds
    ``mean`` only). None: not measured. See the module docstring for NaN and None."""

    n: int
    acc: float | None
    auc: float | None = None
    ap: float | None = None
    eer: float | None = None
    real_acc: float | None = None
    fake_acc: float | None = None
    tpr_at_1fpr: float | None = None
    threshold_1fpr: float | None = None
    video: dict[str, Metrics] | None = None
    by_method: dict[str, Metrics] | None = None

    def get(self, name: str) -> float | None:
        """A frame-level metric by its results.json name (``fake_acc``)."""
        if name not in BINARY:
            raise KeyError(f"{name!r} is not a metric; choose from {', '.join(BINARY)}")
        return getattr(self, name)

    def to_json(self, flat_video: bool = False) -> dict[str, Any]:
        """The results.json dict; ``flat_video``: a per-method entry, whose ``video`` is the mean's."""
        d: dict[str, Any] = {k: getattr(self, k) for k in BINARY}
        if self.video is not None:
            d["video"] = (self.video["mean"].to_json() if flat_video else
                          {how: m.to_json() for how, m in self.video.items()})
        if self.by_method is not None:
            d["by_method"] = {name: m.to_json(flat_video=True) for name, m in self.by_method.items()}
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any], where: str = "metrics", flat_video: bool = False) -> Metrics:
        """Parse a metrics dict (results.json's, or ``detection_metrics``'s); DataError without ``n``."""
        video, by_method = d.get("video"), d.get("by_method")
        if video is not None:
            video = ({"mean": cls.from_json(video, f"{where} video")} if flat_video else
                     {how: cls.from_json(m, f"{where} video {how}") for how, m in video.items()})
        if by_method is not None:
            by_method = {name: cls.from_json(m, f"{where} {name}", flat_video=True)
                         for name, m in by_method.items()}
        return cls(int(_need(d, "n", where)), **{k: d.get(k) for k in BINARY[1:]}, video=video,
                   by_method=by_method)


@dataclass(frozen=True)
class SweepRow:
    """The metrics of the scores at one (``attack``, ``eps``), stored in ``Samples.scores[key]``
    (``pgd@4/255``); ε in ``norm`` units ([0, 1] pixel units for L∞). What else a row records depends on
    its kind (None where it does not apply):

    - attack rows (``SweepResult.robust``): ``seconds`` spent attacking, faces ``attacked``;
    - worst-case rows (attack ``worst-case``): the ``attacks`` it takes the worst of, per face;
    - re-encoded rows: the ``channel`` (``jpeg:75``) the faces passed through; for attacks, the share of
      attacked faces fooled before (``success_before``) and after (``success``) it; attack ``clean`` at
      ε 0: re-encoding alone;
    - transfer rows: the surrogate checkpoint they were crafted on (``transfer_from``) and ``success``.
    """

    attack: str
    eps: float
    norm: str
    key: str
    metrics: Metrics
    channel: str | None = None
    transfer_from: str | None = None
    seconds: float | None = None
    attacked: int | None = None
    attacks: tuple[str, ...] | None = None
    success_before: float | None = None
    success: float | None = None

    @property
    def eps_255(self) -> float:
        """ε in 1/255 steps, rounded to 3 decimals (results.json ``eps_255``)."""
        return round(self.eps * 255, 3)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"attack": self.attack, "eps": self.eps, "eps_255": self.eps_255,
                             "norm": self.norm, "key": self.key}
        for name in ("channel", "transfer_from"):
            if getattr(self, name) is not None:
                d[name] = getattr(self, name)
        d.update(self.metrics.to_json())
        for name in ("seconds", "attacked", "attacks", "success_before", "success"):
            value = getattr(self, name)
            if value is not None:
                d[name] = list(value) if name == "attacks" else value
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any], where: str = "row", norm: str = "linf") -> SweepRow:
        """Parse a results.json row; ``norm``: the sweep's, for rows that do not record theirs."""
        attacks = d.get("attacks")
        return cls(attack=str(_need(d, "attack", where)), eps=_need(d, "eps", where),
                   norm=str(d.get("norm", norm)), key=str(_need(d, "key", where)),
                   metrics=Metrics.from_json(d, where), channel=d.get("channel"),
                   transfer_from=d.get("transfer_from"), seconds=d.get("seconds"),
                   attacked=d.get("attacked"), attacks=None if attacks is None else tuple(attacks),
                   success_before=_optional(d, "success_before"), success=_optional(d, "success"))


@dataclass(frozen=True)
class CorruptionRow:
    """Clean metrics after one natural corruption (``name``: ``jpeg30``, ``blur1`` ...), no attacker."""

    name: str
    metrics: Metrics

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **self.metrics.to_json()}

    @classmethod
    def from_json(cls, d: Mapping[str, Any], where: str = "corruption row") -> CorruptionRow:
        return cls(name=str(_need(d, "name", where)), metrics=Metrics.from_json(d, where))


@dataclass(frozen=True)
class Check:
    """One sanity check against false robustness: a stable ``id`` (``huge_eps``, ``monotone:pgd``), what
    it asserts (``name``), whether it held, what was measured (``detail``), and the measured ``value``
    where one number says it. A failure means the robust accuracy is probably overestimated."""

    id: str
    name: str
    passed: bool
    detail: str = ""
    value: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "passed", bool(self.passed))  # numpy booleans from comparisons
        if self.value is not None:
            object.__setattr__(self, "value", float(self.value))

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "name": self.name, "passed": self.passed, "detail": self.detail}
        if self.value is not None:
            d["value"] = self.value
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any], where: str = "check") -> Check:
        return cls(id=str(d.get("id", "")), name=str(_need(d, "name", where)),
                   passed=_need(d, "passed", where), detail=str(d.get("detail", "")),
                   value=_optional(d, "value"))


@dataclass(frozen=True)
class GalleryItem:
    """One face of the report's gallery: its ``index`` in the evaluated data, its label (1 = fake), and
    P(fake) on the clean and on the attacked face."""

    index: int
    label: int
    p_clean: float
    p_adv: float

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "label": self.label, "p_clean": self.p_clean, "p_adv": self.p_adv}

    @classmethod
    def from_json(cls, d: Mapping[str, Any], where: str = "gallery item") -> GalleryItem:
        return cls(*(_need(d, k, where) for k in ("index", "label", "p_clean", "p_adv")))


@dataclass(frozen=True)
class Gallery:
    """The gallery's faces, attacked with ``attack`` at ``eps`` (``norm`` units); ``file``: the rendered
    PNG beside results.json, once drawn. The images themselves are not part of results.json."""

    attack: str
    eps: float
    norm: str
    items: tuple[GalleryItem, ...]
    file: str | None = None

    def with_file(self, file: str) -> Gallery:
        """This gallery once rendered to ``file`` (a name beside results.json)."""
        return replace(self, file=file)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"attack": self.attack, "eps": self.eps, "norm": self.norm,
                             "items": [it.to_json() for it in self.items]}
        if self.file is not None:
            d["file"] = self.file
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any], where: str = "gallery") -> Gallery:
        return cls(attack=str(_need(d, "attack", where)), eps=_need(d, "eps", where),
                   norm=str(d.get("norm", "linf")),
                   items=tuple(GalleryItem.from_json(it, f"{where} item {i}")
                               for i, it in enumerate(d.get("items", []))),
                   file=d.get("file"))


__all__ = ["BINARY", "Check", "CorruptionRow", "Gallery", "GalleryItem", "Metrics", "SweepRow"]
