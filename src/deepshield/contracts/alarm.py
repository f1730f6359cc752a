"""The attack alarm's verdict on one input: what ``threats.alarm`` computes and predict, serve and the CLI
show (``predict --check-attack``; a flagged input is labelled ABSTAIN).

    >>> report = AttackAlarm().check(score_fn, crops)         # AlarmReport
    >>> report.flagged, report.score, report.to_json()["details"]["face_scores"]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AlarmReport:
    """``score``: mean over the faces of the largest |change of log-odds(fake)| over the probes (>= 0);
    ``flagged``: score > ``threshold``; ``probes``: the input transformations tried (e.g. ``jpeg:75``);
    ``mean_change_p`` / ``mean_change_log_odds``: per probe, the mean |change| over the faces;
    ``face_scores``: each face's score."""

    score: float
    threshold: float
    flagged: bool
    probes: tuple[str, ...]
    mean_change_p: dict[str, float]
    mean_change_log_odds: dict[str, float]
    face_scores: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        """The JSON form predict (``--json``) and the web API report."""
        return {"score": self.score, "threshold": self.threshold, "flagged": self.flagged,
                "probes": list(self.probes),
                "details": {"mean_change_p": dict(self.mean_change_p),
                            "mean_change_log_odds": dict(self.mean_change_log_odds),
                            "face_scores": list(self.face_scores)}}

    def line(self, path: str) -> str:
        """One line for the terminal: the input, its score against the threshold, the decision."""
        verdict = ("ABSTAIN: looks adversarially perturbed, its score is not trusted" if self.flagged
                   else "no sign of an attack")
        op = ">" if self.flagged else "<="
        return f"attack alarm: {path}: score {self.score:.3f} {op} {self.threshold:.3f}: {verdict}"


__all__ = ["AlarmReport"]
