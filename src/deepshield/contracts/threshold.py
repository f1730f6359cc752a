"""The operating threshold a model ships with: chosen on validation videos, recorded in the checkpoint.

A video is called fake when its score p(fake) >= the threshold (as everywhere in deepshield). Training
calibrates one on its validation videos (``TrainConfig.threshold_rule``), ``deepshield calibrate`` on any
datasets; both record it as ``config["threshold"]`` in the checkpoint (and an export's metadata), and
predict and serve use it unless ``--threshold`` is given. Scores shown to users stay probabilities.

    >>> t = calibrate(scores, labels, datasets, "eer", what="validation videos")
    >>> t.describe()                        # '0.372 (EER of the validation videos of dfdc, ffpp)'
    >>> Threshold.from_json(t.to_json()) == t
    >>> resolve_threshold(None, ckpt["config"].get("threshold"))  # (0.372, 'calibrated: EER of ...')

The rules (``THRESHOLD_RULES``):

- ``eer``: where the share of reals flagged (false-positive rate) equals the share of fakes missed. The
  candidates are the midpoints between neighbouring distinct scores (and the extremes); the one where the
  two rates are closest is taken (ties: the lower of the two rates' maximum, then the lowest threshold).
  The midpoint, not a score itself, so the split of the given videos does not hinge on one of them.
- ``fpr5`` / ``fpr1``: the lowest threshold that flags at most 5% / 1% of the reals of *every* dataset:
  per dataset, the midpoint between the real score that must no longer be flagged and the next higher
  score; the maximum over the datasets is taken.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from deepshield.errors import ConfigError, DataError
from deepshield.registry import Registry

DEFAULT_THRESHOLD = 0.5  # what a model without a calibrated threshold is judged at
# The float just above 1: the threshold that flags no score, where reals score exactly 1 (a saturated model).
ABOVE_ONE = float(np.nextafter(1.0, 2.0))


@dataclass(frozen=True)
class Threshold:
    """A calibrated threshold: ``value`` in [0, 1] (fake when p >= value; :data:`ABOVE_ONE` where only
    flagging nothing keeps the rule), the ``rule`` that chose it, the ``data`` it was chosen on (a phrase:
    "the validation videos of dfdc, ffpp") and its counts."""

    value: float
    rule: str
    data: str
    n_real: int
    n_fake: int

    @property
    def label(self) -> str:
        """The rule's short name for people: "EER", "5% FPR" (the rule itself for an unknown one)."""
        entry = THRESHOLD_RULES.get(self.rule)
        return entry.label if entry is not None else self.rule

    @property
    def source(self) -> str:
        """Where the value comes from, e.g. "calibrated: EER of the validation videos of dfdc, ffpp"."""
        return f"calibrated: {self.label} of {self.data}"

    def describe(self) -> str:
        """One line: "0.372 (EER of the validation videos of dfdc, ffpp)"."""
        return f"{self.value:.3f} ({self.label} of {self.data})"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Threshold:
        """Read back :meth:`to_json`; DataError naming what is wrong with a malformed record."""
        try:
            t = cls(value=float(d["value"]), rule=str(d["rule"]), data=str(d["data"]),
                    n_real=int(d["n_real"]), n_fake=int(d["n_fake"]))
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"threshold record {d!r} is malformed ({type(e).__name__}: {e}); calibrate "
                            "again with 'deepshield calibrate'") from None
        if not 0 <= t.value <= ABOVE_ONE:
            raise DataError(f"threshold {t.value} is outside [0, 1]; calibrate again with "
                            "'deepshield calibrate'")
        return t


@dataclass(frozen=True)
class ThresholdRule:
    """``pick(scores, labels, datasets) -> threshold``; ``label``: its name in one line of text."""

    label: str
    help: str
    pick: Callable[[np.ndarray, np.ndarray, np.ndarray], float]


THRESHOLD_RULES: Registry[ThresholdRule] = Registry("threshold rule", hint="e.g. --rule eer")


def _candidates(scores: np.ndarray) -> np.ndarray:
    """The lowest score, the midpoints between neighbouring distinct scores, and just above the highest."""
    u = np.unique(scores)
    return np.concatenate([u[:1], (u[:-1] + u[1:]) / 2, [np.nextafter(u[-1], np.inf)]])


def _flagged_share(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Share of ``scores`` >= each threshold."""
    s = np.sort(scores)
    return (len(s) - np.searchsorted(s, thresholds, side="left")) / len(s)


def eer_threshold(scores: np.ndarray, labels: np.ndarray, datasets: np.ndarray) -> float:
    c = _candidates(scores)
    fpr = _flagged_share(scores[labels == 0], c)
    fnr = 1 - _flagged_share(scores[labels == 1], c)
    order = np.lexsort((c, np.maximum(fpr, fnr), np.abs(fpr - fnr)))  # last key first
    return float(c[order[0]])


def fpr_threshold(rate: float) -> Callable[[np.ndarray, np.ndarray, np.ndarray], float]:
    """The rule that flags at most ``rate`` of the reals of every dataset (lowest such threshold)."""

    def pick(scores: np.ndarray, labels: np.ndarray, datasets: np.ndarray) -> float:
        every = np.unique(scores)
        out = 0.0
        for name in np.unique(datasets[labels == 0]):
            reals = np.sort(scores[(labels == 0) & (datasets == name)])[::-1]
            allowed = math.floor(rate * len(reals) + 1e-9)  # reals that may still be flagged
            keep_out = reals[allowed]                        # the highest real that must not be
            higher = every[every > keep_out]
            t = (keep_out + higher[0]) / 2 if len(higher) else float(np.nextafter(keep_out, np.inf))
            out = max(out, float(t))
        return out

    return pick


THRESHOLD_RULES.add("eer", ThresholdRule("EER", "equal error rate: reals flagged = fakes missed",
                                         eer_threshold))
THRESHOLD_RULES.add("fpr5", ThresholdRule("5% FPR", "at most 5% of the reals of every dataset flagged",
                                          fpr_threshold(0.05)))
THRESHOLD_RULES.add("fpr1", ThresholdRule("1% FPR", "at most 1% of the reals of every dataset flagged",
                                          fpr_threshold(0.01)))


def calibrate(scores: Sequence[float], labels: Sequence[int], datasets: Sequence[str], rule: str,
              what: str = "videos") -> Threshold:
    """The threshold ``rule`` picks for video ``scores`` (p(fake) in [0, 1]) with ``labels`` (1 = fake)
    from ``datasets`` (each sample's dataset name); ``what`` names the samples ("validation videos").
    ConfigError without reals or without fakes."""
    entry = THRESHOLD_RULES.lookup(rule)
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=int)
    d = np.asarray([str(x) for x in datasets], dtype=object)
    if not len(s) == len(y) == len(d):
        raise ConfigError(f"calibration needs one label and dataset per score: {len(s)} scores, "
                          f"{len(y)} labels, {len(d)} dataset names")
    if not np.isfinite(s).all():
        raise ConfigError(f"calibration: {int((~np.isfinite(s)).sum())} score(s) are not finite numbers")
    names = ", ".join(sorted(set(d.tolist()))) or "no dataset"
    n_real, n_fake = int((y == 0).sum()), int((y == 1).sum())
    if not n_real or not n_fake:
        missing = "real (label 0)" if not n_real else "fake (label 1)"
        raise ConfigError(f"cannot calibrate a threshold on the {what} of {names}: {n_real} real and "
                          f"{n_fake} fake; it needs both, and there is no {missing} one; add videos of "
                          "that label (or another dataset)")
    return Threshold(entry.pick(s, y, d), rule, f"the {what} of {names}", n_real, n_fake)


def resolve_threshold(override: float | None, recorded: Mapping[str, Any] | None) -> tuple[float, str]:
    """(threshold, where it comes from): ``override`` (``--threshold``), else the model's calibrated one
    (``config["threshold"]``), else :data:`DEFAULT_THRESHOLD`."""
    if override is not None:
        return float(override), "--threshold"
    if recorded:
        t = Threshold.from_json(recorded)
        return t.value, t.source
    return DEFAULT_THRESHOLD, f"default {DEFAULT_THRESHOLD}: the model has no calibrated threshold"


def rates_at(scores: Sequence[float], labels: Sequence[int], threshold: float) -> tuple[float, float]:
    """(FPR: share of reals flagged, TPR: share of fakes flagged) at ``threshold``; NaN for an absent
    class."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    flagged = s >= threshold
    fpr = float(flagged[y == 0].mean()) if (y == 0).any() else float("nan")
    tpr = float(flagged[y == 1].mean()) if (y == 1).any() else float("nan")
    return fpr, tpr


__all__ = ["ABOVE_ONE", "DEFAULT_THRESHOLD", "THRESHOLD_RULES", "Threshold", "ThresholdRule", "calibrate",
           "rates_at", "resolve_threshold"]
