"""Robust evaluation: clean metrics, an attack × ε sweep, and sanity checks against false robustness.

Robust accuracy follows the AutoAttack protocol: every sample is attacked, attacks stop early on a
sample once it is fooled (so misclassified samples cost one forward pass), and a sample counts as
robust only if no attack point fooled it. Sanity checks follow Carlini et al. 2019, "On Evaluating
Adversarial Robustness" (arXiv:1902.06705): accuracy must not rise with ε, a huge ε must drive it to
about 0, and more PGD steps and restarts must not raise it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from deepshield.attacks import build_attack
from deepshield.evaluation.metrics import binary_metrics
from deepshield.training.loops import Predictions, predict

HUGE_EPS = {"linf": 64 / 255, "l2": 16.0}


@dataclass(frozen=True)
class SweepSpec:
    """What to attack with: attack names, ε values (pixel units), norm, PGD steps/restarts."""

    attacks: tuple[str, ...] = ("fgsm", "pgd")
    eps: tuple[float, ...] = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
    norm: str = "linf"
    steps: int = 10
    restarts: int = 1
    seed: int = 0


def make_attack(name: str, eps: float, spec: SweepSpec, steps: int | None = None, restarts: int | None = None):
    """An attack from the registry configured for evaluation (early stop, α = 2.5ε/steps as in Madry)."""
    steps = steps or spec.steps
    kwargs = dict(eps=eps, norm=spec.norm, seed=spec.seed)
    if name != "fgsm":
        kwargs.update(steps=steps, alpha=2.5 * eps / steps if eps > 0 else None,
                      restarts=restarts or spec.restarts, early_stop=True)
    return build_attack(name, **kwargs)


def _row(attack: str, eps: float, preds: Predictions) -> dict:
    return {"attack": attack, "eps": eps, "eps_255": round(eps * 255, 3), **binary_metrics(preds.labels, preds.probs)}


def sweep(model: nn.Module, data: Dataset, spec: SweepSpec, device: torch.device, batch_size: int = 128,
          progress: bool = False) -> dict:
    """Clean metrics and one row per (attack, ε): robust accuracy, AUC, AP, EER under attack."""
    loader = DataLoader(data, batch_size=batch_size, shuffle=False)
    clean = predict(model, loader, device)
    rows = []
    for name in spec.attacks:
        for eps in sorted(spec.eps):
            preds = predict(model, loader, device, attack=make_attack(name, eps, spec), progress=progress,
                            desc=f"{name} eps={eps * 255:.3g}/255")
            rows.append(_row(name, eps, preds))
    results = {"clean": binary_metrics(clean.labels, clean.probs), "robust": rows, "spec": vars(spec).copy()}
    results["spec"]["attacks"] = list(spec.attacks)
    results["spec"]["eps"] = list(spec.eps)
    return results


def sanity_checks(model: nn.Module, data: Dataset, spec: SweepSpec, results: dict, device: torch.device,
                  batch_size: int = 128) -> list[dict]:
    """Run the checks; each is {"name", "passed", "detail"}. Tolerance: one standard error of accuracy."""
    n = max(1, results["clean"]["n"])
    tol = max(1.0 / n, math.sqrt(0.25 / n))
    loader = DataLoader(data, batch_size=batch_size, shuffle=False)
    checks = []
    for name in spec.attacks:
        accs = [(r["eps"], r["acc"]) for r in results["robust"] if r["attack"] == name]
        rises = [(a, b) for (_, a), (_, b) in zip(accs, accs[1:]) if b > a + tol]
        checks.append({"name": f"{name}: accuracy non-increasing in eps", "passed": not rises,
                       "detail": " -> ".join(f"{a:.3f}" for _, a in accs)})
    if {"fgsm", "pgd"} <= set(spec.attacks):
        by = {(r["attack"], r["eps"]): r["acc"] for r in results["robust"]}
        weaker = [e for e in spec.eps if by[("pgd", e)] > by[("fgsm", e)] + tol]
        checks.append({"name": "pgd is at least as strong as fgsm at every eps", "passed": not weaker,
                       "detail": ", ".join(f"{e * 255:.3g}/255: pgd {by[('pgd', e)]:.3f} vs fgsm "
                                           f"{by[('fgsm', e)]:.3f}" for e in sorted(spec.eps))})
    pgd = "pgd" if "pgd" in spec.attacks else spec.attacks[0]
    huge = HUGE_EPS[spec.norm]
    acc_huge = predict(model, loader, device, attack=make_attack(pgd, huge, spec, steps=max(spec.steps, 20))).acc
    checks.append({"name": f"{pgd} at huge eps={huge:.3g} ({spec.norm}) drives accuracy to ~0",
                   "passed": acc_huge <= 0.05, "detail": f"accuracy {acc_huge:.3f} (must be <= 0.05)",
                   "value": acc_huge})
    if "pgd" in spec.attacks:
        eps = max(spec.eps)
        base = next(r["acc"] for r in results["robust"] if r["attack"] == "pgd" and r["eps"] == eps)
        strong = predict(model, loader, device, attack=make_attack("pgd", eps, spec, steps=spec.steps * 4,
                                                                   restarts=max(2, spec.restarts))).acc
        checks.append({"name": f"pgd with 4x steps and restarts does not raise accuracy (eps={eps * 255:.3g}/255)",
                       "passed": strong <= base + tol,
                       "detail": f"{spec.steps} steps: {base:.3f}; {spec.steps * 4} steps x "
                                 f"{max(2, spec.restarts)} restarts: {strong:.3f}", "value": strong})
    return checks
