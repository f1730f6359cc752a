"""Figures of a robustness report (matplotlib, PNG): accuracy vs ε, ROC clean vs attacked, per-method
bars, and a gallery of clean / adversarial / amplified-perturbation faces (with their Grad-CAM maps
when given).

Every function takes ``runs`` = {run name: :class:`~deepshield.evaluation.results.EvalResult`} (the
gallery: its images and :class:`~deepshield.contracts.rows.Gallery`) and writes one PNG atomically,
returning its path (or None when there is nothing to draw).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from deepshield.evaluation.formatting import eps_label, headline_rows, norm_of, reference_eps  # noqa: E402
from deepshield.evaluation.metrics import roc_points  # noqa: E402
from deepshield.io import atomic_write  # noqa: E402

if TYPE_CHECKING:
    from deepshield.contracts.rows import Gallery, Metrics
    from deepshield.evaluation.results import EvalResult

ATTACK_COLORS = {"fgsm": "#f28e2b", "pgd": "#4e79a7", "apgd": "#b07aa1", "square": "#59a14f",
                 "worst-case": "#222222"}
ATTACK_STYLES = {"fgsm": ":", "pgd": "--", "apgd": "-.", "square": (0, (6, 2, 1, 2, 1, 2)), "worst-case": "-"}
RUN_COLORS = ["#4e79a7", "#e15759", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2", "#edc948", "#9c755f"]
STYLE = {
    "font.size": 10, "axes.titlesize": 11, "axes.titleweight": "bold", "axes.spines.top": False,
    "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.25, "legend.frameon": False,
    "figure.facecolor": "white", "savefig.facecolor": "white", "savefig.bbox": "tight", "savefig.dpi": 130,
}


def save(fig: plt.Figure, path: Path) -> Path:
    """Save a figure atomically and close it."""
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)


def eps_axis(eps: float, norm: str) -> float:
    return eps * 255 if norm == "linf" else eps


def eps_axis_label(norm: str) -> str:
    return "ε (L∞, in 1/255 pixel steps)" if norm == "linf" else "ε (L2, pixel units)"


def plot_robust_accuracy(runs: dict[str, EvalResult], path: Path) -> Path:
    """Accuracy vs ε: one run: a colour per attack, the worst case dashed; several runs: a colour per
    run, its headline (worst case) thick and each attack thin in its own line style."""
    norm = norm_of(runs)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(8.2, 4.4))
        styles_used: list[str] = []
        single = len(runs) == 1
        for i, (run, res) in enumerate(runs.items()):
            sweep = res.sweep
            attacks = list(dict.fromkeys(r.attack for r in sweep.robust))
            groups = [(a, [r for r in sweep.robust if r.attack == a]) for a in attacks]
            if sweep.worst_case:
                groups.append(("worst-case", sweep.worst_case))
            for attack, rows in groups:
                rows = sorted(rows, key=lambda r: r.eps)
                xs = [0.0] + [eps_axis(r.eps, norm) for r in rows]
                ys = [sweep.clean.acc] + [r.metrics.acc for r in rows]
                headline = attack == "worst-case" or len(groups) == 1
                if single:
                    color = ATTACK_COLORS.get(attack) or f"C{(5 + len(attack)) % 10}"
                    ax.plot(xs, ys, "--" if attack == "worst-case" else "-", marker="o", ms=5,
                            lw=2.6 if headline else 1.8, color=color, label=attack,
                            zorder=3 if headline else 2)
                else:
                    color = RUN_COLORS[i % len(RUN_COLORS)]
                    style = "-" if headline else ATTACK_STYLES.get(attack, ":")
                    ax.plot(xs, ys, ls=style, marker="o" if headline else None, ms=5,
                            lw=2.6 if headline else 1.2, alpha=1 if headline else 0.55, color=color,
                            label=f"{run} ({attack})" if headline else None)
                    if not headline and attack not in styles_used:
                        styles_used.append(attack)
        for attack in styles_used:  # legend entries for the thin per-attack lines
            ax.plot([], [], ls=ATTACK_STYLES.get(attack, ":"), color="grey", lw=1.2, label=attack)
        ticks = sorted({0.0} | {eps_axis(r.eps, norm) for res in runs.values() for r in res.sweep.robust})
        ax.set_xticks(ticks, [f"{t:.3g}" for t in ticks])
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.text(ax.get_xlim()[0], 0.515, " coin flip", va="bottom", ha="left", fontsize=8, color="grey")
        ax.set_xlabel(eps_axis_label(norm))
        ax.set_ylabel("accuracy under attack")
        ax.set_ylim(-0.03, 1.03)
        ax.set_title("Robust accuracy vs attack budget ε  (ε = 0: clean)")
        ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        return save(fig, path)


def plot_roc(runs: dict[str, EvalResult], path: Path) -> Path | None:
    """ROC per run: clean, and the headline attack at every ε (from the per-sample scores)."""
    runs = {k: v for k, v in runs.items() if "clean" in v.sweep.samples.scores}
    if not runs:
        return None
    norm = norm_of(runs)
    cols = min(3, len(runs))
    rows_n = (len(runs) + cols - 1) // cols
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(rows_n, cols, figsize=(4.3 * cols, 4.1 * rows_n), squeeze=False)
        for ax, (run, res) in zip(axes.flat, runs.items(), strict=False):
            labels = res.sweep.samples.labels
            scores = res.sweep.samples.scores
            curve = roc_points(labels, scores["clean"])
            ax.plot(curve["fpr"], curve["tpr"], color="black", lw=2.4,
                    label=f"clean  AUC {res.sweep.clean.auc:.3f}")
            rows = sorted(headline_rows(res.sweep), key=lambda r: r.eps)
            cmap = plt.get_cmap("plasma")
            for j, r in enumerate(rows):
                curve = roc_points(labels, scores[r.key])
                color = cmap(0.15 + 0.7 * j / max(1, len(rows) - 1))
                eps = eps_label(r.eps, norm)
                ax.plot(curve["fpr"], curve["tpr"], color=color, lw=1.7,
                        label=f"{eps}  AUC {r.metrics.auc:.3f}")
            ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=0.8)
            ax.set_xlabel("false positive rate (reals called fake)")
            ax.set_ylabel("true positive rate (fakes caught)")
            attack = rows[0].attack if rows else ""
            ax.set_title(f"{run}: clean vs {attack}")
            ax.set_aspect("equal")
            ax.legend(fontsize=8, loc="lower right")
        for ax in list(axes.flat)[len(runs):]:
            ax.axis("off")
        fig.tight_layout()
        return save(fig, path)


def _method_auc(m: Metrics, method: str) -> float | None:
    """AUC of ``method`` against all reals in ``m``; NaN when ``m`` has no entry for it."""
    entry = (m.by_method or {}).get(method)
    return entry.auc if entry is not None else np.nan


def plot_methods(runs: dict[str, EvalResult], path: Path) -> Path | None:
    """Per-method AUC (each fake method vs all reals), clean and under the headline attack at the
    reference ε; None when no run has per-method results."""
    runs = {k: v for k, v in runs.items() if v.sweep.clean.by_method}
    if not runs:
        return None
    methods = sorted({m for res in runs.values() for m in res.sweep.clean.by_method if m != "real"})
    norm = norm_of(runs)
    width = 0.8 / (2 * len(runs))
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(methods) * max(1, len(runs)) ** 0.5 + 2), 4.2))
        x = np.arange(len(methods))
        for i, (run, res) in enumerate(runs.items()):
            color = RUN_COLORS[i % len(RUN_COLORS)]
            ref = reference_eps(res.sweep)
            row = next((r for r in headline_rows(res.sweep) if r.eps == ref), None)
            clean = [_method_auc(res.sweep.clean, m) for m in methods]
            attacked = [_method_auc(row.metrics, m) if row else np.nan for m in methods]
            off = (2 * i - len(runs)) * width + width / 2
            name = f"{run}: " if len(runs) > 1 else ""
            ax.bar(x + off, clean, width, color=color, label=f"{name}clean")
            if row is not None:
                eps = eps_label(ref, norm)
                ax.bar(x + off + width, attacked, width, color=color, alpha=0.4, hatch="///", edgecolor=color,
                       label=f"{name}{row.attack} at ε={eps}")
            for xi, (c, a) in enumerate(zip(clean, attacked, strict=True)):
                for val, dx in ((c, 0), (a, width)):
                    if np.isfinite(val):
                        ax.text(xi + off + dx, val + 0.01, f"{val:.2f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, methods)
        ax.set_ylim(0, 1.1)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_ylabel("AUC (method vs all reals)")
        ax.set_title("Per manipulation method: clean vs under attack")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
        return save(fig, path)


def _heat_panel(ax: plt.Axes, image: np.ndarray, heat: np.ndarray) -> None:
    ax.imshow(image, interpolation="nearest")
    ax.imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="bilinear",
              extent=(-0.5, image.shape[1] - 0.5, image.shape[0] - 0.5, -0.5))
    ax.set_xticks([])
    ax.set_yticks([])


def _to_image(chw: np.ndarray) -> np.ndarray:
    return np.clip(np.transpose(chw, (1, 2, 0)), 0, 1)


def plot_gallery(clean: np.ndarray, adv: np.ndarray, meta: Gallery, path: Path, title: str = "",
                 heat_clean: np.ndarray | None = None, heat_adv: np.ndarray | None = None) -> Path:
    """Columns of faces: clean, adversarial, and the perturbation scaled so ±ε spans the full range;
    with ``heat_clean`` and ``heat_adv`` ([K, H, W] in [0, 1], ``deepshield.explain.gradcam`` of
    "fake"), two more rows: each face with its Grad-CAM map on top (jet: red = most evidence)."""
    items = meta.items
    eps = float(meta.eps)
    n = len(items)
    norm = meta.norm
    eps_text = eps_label(eps, norm) + ("" if norm == "linf" else " (L2)")
    heats = [heat_clean, heat_adv] if heat_clean is not None and heat_adv is not None else []
    with plt.rc_context({**STYLE, "axes.grid": False}):
        fig, axes = plt.subplots(3 + len(heats), n, figsize=(1.9 * n + 0.6, 7.4 + 2.3 * len(heats)),
                                 squeeze=False)
        for j, item in enumerate(items):
            delta = adv[j] - clean[j]
            scale = max(float(np.abs(delta).max()), 1e-12) if norm == "l2" else eps
            truth = "FAKE" if item.label == 1 else "REAL"
            fooled = (item.p_adv >= 0.5) != (item.label == 1)
            panels = [
                (_to_image(clean[j]), f"{truth}\np(fake) = {item.p_clean:.2f}", "#2e7d32"),
                (_to_image(adv[j]), f"p(fake) = {item.p_adv:.2f}\n{'FOOLED' if fooled else 'holds'}",
                 "#c62828" if fooled else "#2e7d32"),
                (_to_image(delta / (2 * scale) + 0.5), f"δ × {0.5 / scale:.0f}", "#555555"),
            ]
            for i, (img, text, color) in enumerate(panels):
                ax = axes[i, j]
                ax.imshow(img, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                for side in ax.spines.values():
                    side.set_visible(True)
                    side.set_color(color if i < 2 else "#cccccc")
                    side.set_linewidth(2.5 if i < 2 else 0.8)
                ax.set_title(text, fontsize=9, color=color, fontweight="bold" if i < 2 else "normal")
            for i, (faces, heat) in enumerate(zip((clean, adv), heats, strict=False), start=3):
                _heat_panel(axes[i, j], _to_image(faces[j]), heat[j])
        rows = ("clean", "adversarial", "perturbation", "Grad-CAM clean", "Grad-CAM adversarial")
        for i, label in enumerate(rows[:3 + len(heats)]):
            axes[i, 0].set_ylabel(label, fontsize=10)
        fig.suptitle(title or f"{meta.attack} at ε = {eps_text}", fontsize=12, fontweight="bold")
        fig.tight_layout(h_pad=1.6)
        return save(fig, path)
