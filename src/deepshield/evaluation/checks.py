"""Sanity checks against false robustness (Carlini et al. 2019, "On Evaluating Adversarial Robustness",
arXiv:1902.06705, §5), run after every robust sweep and stored with its results.

Each check is a :class:`~deepshield.contracts.rows.Check` (id, name, passed, detail, value); a failure
means the robust accuracy is probably overestimated (gradient masking, a broken or too weak attack) and
is flagged in the report and on the console. The checks:

- ``monotone:<attack>``: accuracy does not rise with ε (a larger ball contains the smaller one); for
  iterative and black-box attacks (one FGSM step of size ε overshoots at large ε);
- ``iterative_vs_single_step``: the iterative attacks (PGD/APGD) are at least as strong as the
  single-step one (FGSM);
- ``blackbox_vs_whitebox``: the black-box attack (Square, gradient-free) does not beat the best
  gradient attack; if it does, the gradients are lying (masking). The reference black-box attack is
  run on a subset when the sweep included none;
- ``more_steps``: the reference iterative attack (PGD) with 4x the steps and more restarts does not
  raise accuracy;

Which attack is which comes from the attack registry (each attack's ``kind``), not from names here.
- ``huge_eps``: at ε = 64/255 (L∞) or 16 (L2) accuracy is about 0 (the image can be made anything);
- ``nonzero_gradients``: the loss has a non-zero input gradient for (almost) every sample.

"More than noise" is one binomial standard error at p = 0.5 times 1.5 (:func:`noise_tolerance`).
The extra attacks run on the first ``spec.sanity_n`` samples, compared on those same samples. The sweep
attacks those samples independently (a fresh start per attack and ε, no reuse of fooling points, no warm
start; ``robust._Reuse``), so the checks that compare rows (monotone, iterative vs single-step, black-box
vs white-box) compare independent runs on them, not the cascade that is monotone by construction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from deepshield.attacks import BLACK_BOX, ITERATIVE, SINGLE_STEP, attacks_of_kind, reference_attack
from deepshield.config import SweepSpec
from deepshield.contracts.rows import Check
from deepshield.evaluation.formatting import eps_label, failed, row_key
from deepshield.evaluation.results import SweepResult
from deepshield.evaluation.robust import attack_correct, make_attack, robust_mask
from deepshield.progress import progress
from deepshield.runtime import eval_mode
from deepshield.training.loops import split_batch

HUGE_EPS = {"linf": 64 / 255, "l2": 16.0}
HUGE_EPS_MAX_ACC = 0.05
ZERO_GRAD_MAX_FRACTION = 0.05


def noise_tolerance(n: int, z: float = 1.5) -> float:
    """How much two accuracies on the same ``n`` samples may differ by chance: z binomial SEs at p=0.5."""
    n = max(1, n)
    return max(1.0 / n, z * math.sqrt(0.25 / n))


class _Subset:
    """The first ``spec.sanity_n`` samples: their labels, sweep scores, and extra attacks run on them."""

    def __init__(self, model, data, spec: SweepSpec, results: SweepResult, device, batch_size,
                 log: Callable[[str], None] | None = None, attack_model=None):
        n = min(len(data), spec.sanity_n, results.n)
        self.model, self.spec, self.device, self.n, self.log = model, spec, device, n, log
        self.attack_model = attack_model if attack_model is not None else model
        # Small batches: the progress line can estimate the time left, and Square stops per batch.
        self.loader = DataLoader(Subset(data, range(n)), batch_size=min(batch_size, 32), shuffle=False)
        self.labels = np.asarray(results.samples.labels[:n], dtype=int)
        self.scores = {k: np.asarray(v[:n]) for k, v in results.samples.scores.items()}

    def robust(self, key: str) -> np.ndarray:
        return robust_mask(self.labels, self.scores[key])

    def run(self, attack) -> np.ndarray:
        """Per-sample robustness of this subset under ``attack`` (correct samples attacked, early stop)."""
        if self.log is not None:  # these runs can take minutes on a CPU: say which one is running
            budget = ", ".join(f"{k} {getattr(attack, k)}" for k in ("steps", "restarts", "queries")
                               if hasattr(attack, k))
            self.log(f"  sanity check: {attack.name} at ε = {eps_label(attack.eps, attack.norm)} ({budget}) "
                     f"on {self.n} images")
        out = []
        for batch in progress(self.loader, desc=f"  {attack.name}", enabled=self.log is not None, leave=False,
                              unit="batch"):
            x, y, _ = split_batch(batch)
            x, y = x.to(self.device), y.to(self.device)
            _, p = attack_correct(self.model, x, y, attack, attack_model=self.attack_model)
            out.append(((p >= 0.5).long() == y).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=bool)

    def zero_gradient_fraction(self) -> float:
        zero, total = 0, 0
        for batch in self.loader:
            x, y, _ = split_batch(batch)
            x = x.to(self.device).requires_grad_(True)
            with torch.enable_grad():
                logits = self.attack_model(x).float()  # the gradients the attacks see
                loss = nn.functional.cross_entropy(logits, y.to(self.device), reduction="sum")
                (grad,) = torch.autograd.grad(loss, x)
            zero += int((grad.flatten(1).abs().amax(1) == 0).sum())
            total += len(x)
        return zero / max(1, total)


def sanity_checks(model: nn.Module, data: Dataset, spec: SweepSpec, results: SweepResult,
                  device: torch.device, batch_size: int = 128,
                  log: Callable[[str], None] | None = None,
                  attack_model: nn.Module | None = None) -> list[Check]:
    """Run every check that applies to ``spec`` on a ``sweep`` result; see the module docstring.
    ``log`` gets a line before each extra attack runs; ``attack_model`` is what the sweep's attacks
    differentiated (see ``robust.attack_correct``)."""
    with eval_mode(model):
        return _run_checks(model, data, spec, results, device, batch_size, log, attack_model)


def first_look_note(spec: SweepSpec) -> str | None:
    """What ``--thorough`` would add to the sanity checks of ``spec``; None if it has the full budget."""
    full = spec.thorough()
    if full == spec:
        return None
    return (f"first look: {spec.sanity_n} independently attacked images, Square {spec.square_queries} "
            f"queries; --thorough attacks {full.sanity_n} images independently with Square at "
            f"{full.square_queries} queries (tighter checks; several times longer)")


def _run_checks(model, data, spec, results, device, batch_size, log=None, attack_model=None) -> list[Check]:
    sub = _Subset(model, data, spec, results, device, batch_size, log, attack_model)
    note = first_look_note(spec)
    if log is not None and note:
        log("  " + note)
    eps_list = sorted(set(spec.eps))
    if spec.reuse and spec.early_stop and results.n > sub.n:
        # Beyond the subset the sweep reused fooling points across ε and attacks (monotone by
        # construction); compare the independent runs on the subset instead.
        tol = noise_tolerance(sub.n)
        by = {(a, e): float(sub.robust(row_key(a, e, spec.norm)).mean())
              for a in spec.attacks for e in eps_list}
    else:
        tol = noise_tolerance(max(1, results.n))
        by = {(r.attack, r.eps): r.metrics.acc for r in results.robust}
    checks = []
    # A single step of size ε overshoots at large ε, so FGSM's accuracy may rise with ε without any
    # masking; the check applies to the attacks robust accuracy is claimed by (iterative, black-box).
    for name in [a for a in spec.attacks if a not in attacks_of_kind(SINGLE_STEP, spec.attacks)]:
        accs = [(e, by[(name, e)]) for e in eps_list]
        rises = [(e, a, b) for (_, a), (e, b) in zip(accs, accs[1:], strict=False) if b > a + tol]
        checks.append(Check(f"monotone:{name}", f"{name}: accuracy does not rise with eps", not rises,
                            " -> ".join(f"{a:.3f}" for _, a in accs) + f" (tolerance {tol:.3f})"))
    white = attacks_of_kind(ITERATIVE, spec.attacks)
    single = attacks_of_kind(SINGLE_STEP, spec.attacks)
    if white and single:
        bad = [e for e in eps_list if min(by[(w, e)] for w in white) > by[(single[0], e)] + tol]
        checks.append(Check(
            "iterative_vs_single_step", f"{'/'.join(white)} at least as strong as {single[0]}", not bad,
            ", ".join(f"{eps_label(e, spec.norm)}: {min(by[(w, e)] for w in white):.3f} vs "
                      f"{by[(single[0], e)]:.3f}" for e in eps_list)))
    checks.append(_blackbox_check(sub, spec, by, white, eps_list, tol))
    checks.append(_more_steps_check(sub, spec, white, eps_list))
    huge, ref = HUGE_EPS[spec.norm], reference_attack(ITERATIVE)
    steps = max(spec.steps, 20)
    acc_huge = float(sub.run(make_attack(ref, huge, replace(spec, early_stop=True), steps=steps)).mean())
    checks.append(Check("huge_eps", f"{ref}-{steps} at huge eps {eps_label(huge, spec.norm)} drives "
                        "accuracy to ~0", acc_huge <= HUGE_EPS_MAX_ACC,
                        f"accuracy {acc_huge:.3f} on {sub.n} samples (must be <= {HUGE_EPS_MAX_ACC})",
                        value=acc_huge))
    frac = sub.zero_gradient_fraction()
    checks.append(Check("nonzero_gradients", "input gradients are non-zero", frac <= ZERO_GRAD_MAX_FRACTION,
                        f"{frac:.1%} of {sub.n} samples have an all-zero loss gradient "
                        f"(must be <= {ZERO_GRAD_MAX_FRACTION:.0%})", value=frac))
    return checks


def _blackbox_check(sub: _Subset, spec: SweepSpec, by: dict[tuple[str, float], float], white: list[str],
                    eps_list: list[float], tol: float) -> Check:
    """The black-box attack vs the best gradient attack, per ε in the sweep (``by``: (attack, ε) ->
    accuracy), or on the subset at the largest ε."""
    black = next(iter(attacks_of_kind(BLACK_BOX, spec.attacks)), None) or reference_attack(BLACK_BOX)
    name = f"black-box ({black}) does not beat white-box attacks"
    if black in spec.attacks and white:
        parts, bad = [], []
        for e in eps_list:
            wb = min(by[(w, e)] for w in white)
            bb = by[(black, e)]
            parts.append(f"{eps_label(e, spec.norm)}: {black} {bb:.3f} vs {'/'.join(white)} {wb:.3f}")
            if bb < wb - tol:
                bad.append(e)
        return Check("blackbox_vs_whitebox", name, not bad, "; ".join(parts) + f" (tolerance {tol:.3f})")
    eps, ref = max(eps_list), reference_attack(ITERATIVE)
    white_robust = (np.logical_and.reduce([sub.robust(row_key(w, eps, spec.norm)) for w in white]) if white
                    else sub.run(make_attack(ref, eps, spec)))
    robust_black = (sub.robust(row_key(black, eps, spec.norm)) if black in spec.attacks
                    else sub.run(make_attack(black, eps, spec)))
    sub_tol = noise_tolerance(sub.n)
    wb, bb = float(white_robust.mean()), float(robust_black.mean())
    only_black = int((white_robust & ~robust_black).sum())
    return Check("blackbox_vs_whitebox", name, bb >= wb - sub_tol,
                 f"{eps_label(eps, spec.norm)} on {sub.n} samples: {black} {bb:.3f} vs "
                 f"{'/'.join(white) or ref} {wb:.3f}; {only_black} samples fooled only by {black} "
                 f"({spec.square_queries} queries; tolerance {sub_tol:.3f})", value=bb)


def _more_steps_check(sub: _Subset, spec: SweepSpec, white: list[str], eps_list: list[float]) -> Check:
    eps, ref = max(eps_list), reference_attack(ITERATIVE)
    steps, restarts = spec.steps * 4, max(2, spec.restarts)
    if ref in spec.attacks:
        base = sub.robust(row_key(ref, eps, spec.norm))
    else:
        base = sub.run(make_attack(ref, eps, spec))
    strong = sub.run(make_attack(ref, eps, spec, steps=steps, restarts=restarts))
    tol = noise_tolerance(sub.n)
    a, b = float(base.mean()), float(strong.mean())
    return Check("more_steps", f"{ref} with {steps} steps x {restarts} restarts does not raise accuracy",
                 b <= a + tol, f"{eps_label(eps, spec.norm)} on {sub.n} samples: {spec.steps} steps "
                 f"{a:.3f}; {steps} steps x {restarts} restarts {b:.3f} (tolerance {tol:.3f})", value=b)


def format_checks(checks: list[Check]) -> str:
    """Console lines: PASS/FAIL per check, and a loud banner when any failed."""
    lines = [f"{'PASS' if c.passed else 'FAIL'}  {c.name}: {c.detail}" for c in checks]
    bad = failed(checks)
    if bad:
        bar = "!" * 78
        lines += [bar, f"!! {len(bad)} SANITY CHECK(S) FAILED: the robust accuracy above is probably "
                  "OVERESTIMATED", "!! (gradient masking or a broken/weak attack); do not report it as is.",
                  bar]
    return "\n".join(lines)
