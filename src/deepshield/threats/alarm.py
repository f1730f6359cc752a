"""Attack alarm: does an input look adversarially perturbed? (feature squeezing, Xu et al., NDSS 2018)

Adversarial perturbations are brittle: small input transformations (JPEG re-encoding, a median filter,
bit-depth reduction) undo much of them, so the fake probability of an attacked face moves a lot under
them, while a clean face's barely moves. The alarm scores each face crop by the largest change of
the log-odds of "fake", log(p / (1 - p)), over a few such *probes* (defense specs of
:mod:`deepshield.threats.defenses`), summarises a file by the mean over its faces, and flags it when
that exceeds a threshold calibrated on clean faces (:func:`calibrate`: the (1 - far) quantile of clean
scores, far = the false-alarm rate allowed). Log-odds, not probabilities: an attack pushes p(fake) to
0 or 1, where a probe's large effect on the evidence is a small change of p (on 80 DFDC validation
faces, PGD at 2/255: AUC 0.92 vs 0.94 but FGSM at 1/255: 0.98 vs 0.70 for |Δ p|).

    >>> alarm = AttackAlarm()                          # the bundled model's probes and threshold
    >>> report = alarm.check(score_fn, crops)          # score_fn: list of uint8 HxWx3 -> p(fake) array
    >>> report["flagged"], report["score"], report["threshold"]

It needs only p(fake) of crops, so it works with any scorer (torch or ONNX), at one extra forward pass
per probe and face. Measured (``benchmarks/attack_alarm.py``, bundled model, 200 DFDC test faces): 4 %
false alarms; PGD-10 at 1-4/255 flagged 75-85 % (early stop) and 99.5-100 % (all steps), FGSM 82.5 % at
1/255 but 35-36 % at 2-4/255. It is no defense against an attacker who knows it: one who takes the model
and every probe (BPDA through JPEG) just past the boundary with alike log-odds evades it (92 % of 64
faces fooled and unflagged at 2/255), and ``deepshield attack``'s videos, made to survive H.264
re-encoding, survive the probes too (unflagged, see the README).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from deepshield.contracts.alarm import AlarmReport
from deepshield.errors import ConfigError
from deepshield.threats.defenses import build_defense

ScoreFn = Callable[[list[np.ndarray]], np.ndarray]

# Chosen on DFDC validation faces (bits:5, resize_pad:0.9 and noise:0.01 added nothing or hurt).
DEFAULT_PROBES = ("jpeg:75", "median:3")
# The bundled model's threshold: 5 % false alarms per clean face, calibrated on 200 DFDC validation
# faces with benchmarks/attack_alarm.py (2.395; 4 % false alarms on 200 test faces; README "Attack alarm").
DEFAULT_THRESHOLD = 2.4
DEFAULT_FAR = 0.05
_P_CLIP = 1e-6  # log-odds within ±13.8: a float32 softmax saturates at 1.0


def log_odds(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)) of probabilities, clipped to [1e-6, 1 - 1e-6]."""
    p = np.clip(np.asarray(p, dtype=np.float64), _P_CLIP, 1 - _P_CLIP)
    return np.log(p / (1 - p))


def probe_crops(crops: Sequence[np.ndarray], spec: str, seed: int = 0) -> list[np.ndarray]:
    """``crops`` (uint8 HxWx3) through the defense ``spec`` (e.g. ``"jpeg:75"``), back as uint8."""
    if not crops:
        return []
    defense = build_defense(spec, seed=seed)
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)
    with torch.no_grad():
        y = defense(x)
    return list((y.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())


@dataclass(frozen=True)
class AttackAlarm:
    """Flags inputs whose faces' p(fake) is unstable under ``probes``.

    ``threshold``: on the mean per-face score (the largest |change of the log-odds of fake| over the
    probes, >= 0); ``DEFAULT_THRESHOLD`` is calibrated for the bundled model only: calibrate another
    checkpoint's with :func:`calibrate` on its clean validation faces. ``seed`` seeds random probes.
    """

    probes: tuple[str, ...] = DEFAULT_PROBES
    threshold: float = DEFAULT_THRESHOLD
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.probes:
            raise ConfigError("the attack alarm needs at least one probe, e.g. jpeg:75")
        for spec in self.probes:
            build_defense(spec)  # validates the spec

    def face_scores(self, score_fn: ScoreFn, crops: Sequence[np.ndarray],
                    p: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Per-face scores (max over probes of |Δ log-odds|) and each probe's p(fake) per face.

        ``p``: p(fake) of the unchanged crops when already known (saves one pass)."""
        crops = list(crops)
        p = np.asarray(score_fn(crops) if p is None else p, dtype=np.float64)
        probed = {spec: np.asarray(score_fn(probe_crops(crops, spec, self.seed + i)), dtype=np.float64)
                  for i, spec in enumerate(self.probes)}
        deltas = np.stack([np.abs(log_odds(q) - log_odds(p)) for q in probed.values()])
        return deltas.max(0), probed

    def check(self, score_fn: ScoreFn, crops: Sequence[np.ndarray],
              p: np.ndarray | None = None) -> AlarmReport:
        """The alarm's report on one input's face crops (mean per-face score, per-probe mean |Δ p(fake)|
        and |Δ log-odds|, the per-face scores)."""
        if not len(crops):
            raise ConfigError("the attack alarm needs at least one face crop")
        p = np.asarray(score_fn(list(crops)) if p is None else p, dtype=np.float64)
        faces, probed = self.face_scores(score_fn, crops, p)
        score = float(faces.mean())

        def mean_change(f) -> dict[str, float]:
            return {s: round(float(np.abs(f(q) - f(p)).mean()), 4) for s, q in probed.items()}

        return AlarmReport(score=round(score, 4), threshold=self.threshold, flagged=score > self.threshold,
                           probes=tuple(self.probes), mean_change_p=mean_change(lambda v: v),
                           mean_change_log_odds=mean_change(log_odds),
                           face_scores=tuple(round(float(v), 4) for v in faces))


def calibrate(clean_scores: Sequence[float] | np.ndarray, far: float = DEFAULT_FAR) -> float:
    """The threshold that flags a fraction ``far`` of ``clean_scores`` (their (1 - far) quantile)."""
    scores = np.asarray(clean_scores, dtype=np.float64)
    if scores.size == 0 or not 0 < far < 1:
        raise ConfigError(f"calibrate needs clean scores and a false-alarm rate in (0, 1), got "
                          f"{scores.size} scores, far={far}")
    return float(np.quantile(scores, 1 - far, method="higher"))


__all__ = ["DEFAULT_FAR", "DEFAULT_PROBES", "DEFAULT_THRESHOLD", "AlarmReport", "AttackAlarm", "ScoreFn",
           "calibrate", "log_odds", "probe_crops"]
