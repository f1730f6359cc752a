"""Pure formatting shared by the console, markdown and HTML reports (no I/O, no other report module)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from deepshield.contracts.rows import Check, SweepRow
    from deepshield.evaluation.results import EvalResult, SweepResult


def eps_label(eps: float, norm: str) -> str:
    """``4/255`` for L∞ budgets, ``0.5`` for L2."""
    return f"{eps * 255:.3g}/255" if norm == "linf" else f"{eps:.3g}"


def row_key(attack: str, eps: float, norm: str) -> str:
    """The key of an (attack, ε) row in the per-sample scores: ``pgd@4/255``."""
    return f"{attack}@{eps_label(eps, norm)}"


def fmt(value: Any, digits: int = 3) -> str:
    """A metric to ``digits`` decimals; missing or NaN as an em dash."""
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def json_ready(o: Any) -> Any:
    """``o`` with numpy values as Python ones, paths as strings, NaN/inf as None (strict JSON)."""
    if isinstance(o, dict):
        return {str(k): json_ready(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [json_ready(v) for v in o]
    if isinstance(o, np.ndarray):
        return json_ready(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and (math.isnan(o) or math.isinf(o)):
        return None
    if isinstance(o, Path):
        return str(o)
    return o


def norm_of(runs: dict[str, EvalResult]) -> str:
    """The norm of the first run's sweep (all runs of a report share one)."""
    return next(iter(runs.values())).sweep.spec.norm


def headline_rows(sweep: SweepResult) -> list[SweepRow]:
    """The rows that summarize a sweep: worst case over attacks, or the single attack's rows."""
    return sweep.worst_case or sweep.robust


def reference_eps(sweep: SweepResult) -> float | None:
    """The ε a sweep is summarized at: 4/255 when evaluated (L∞), else the middle ε."""
    eps = sorted({r.eps for r in sweep.robust})
    if not eps:
        return None
    if sweep.spec.norm == "linf":
        near = [e for e in eps if abs(e * 255 - 4) < 1e-6]
        if near:
            return near[0]
    return eps[len(eps) // 2]


def failed(checks: list[Check]) -> list[Check]:
    """The sanity checks that did not pass."""
    return [c for c in checks if not c.passed]


__all__ = ["eps_label", "failed", "fmt", "headline_rows", "json_ready", "norm_of", "reference_eps", "row_key"]
