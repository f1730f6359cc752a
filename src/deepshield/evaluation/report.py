"""Reports: results.json -> report.md and a robust-accuracy-vs-ε plot (matplotlib, PNG)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def write_json(obj: dict, path: Path) -> Path:
    """Write JSON atomically (NaN kept as null for other tools)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(_clean(obj), indent=2))
    os.replace(tmp, path)
    return path


def _clean(o):
    if isinstance(o, float) and (math.isnan(o) or math.isinf(o)):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def plot_robust_accuracy(runs: dict[str, dict], path: Path) -> Path:
    """One line per (run, attack): accuracy vs ε/255, clean accuracy at ε = 0."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    styles = {"fgsm": "--", "pgd": "-"}
    for i, (run, res) in enumerate(runs.items()):
        color = f"C{i}"
        for attack in dict.fromkeys(r["attack"] for r in res["robust"]):
            rows = sorted((r for r in res["robust"] if r["attack"] == attack), key=lambda r: r["eps"])
            xs = [0.0] + [r["eps"] * 255 for r in rows]
            ys = [res["clean"]["acc"]] + [r["acc"] for r in rows]
            ax.plot(xs, ys, styles.get(attack, ":"), marker="o", color=color, label=f"{run} · {attack}")
    ax.set_xlabel("ε (× 1/255, L∞)" if _norm(runs) == "linf" else "ε (L2)")
    ax.set_ylabel("accuracy under attack")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("Robust accuracy vs ε")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _norm(runs: dict[str, dict]) -> str:
    return next(iter(runs.values())).get("spec", {}).get("norm", "linf")


def markdown_table(runs: dict[str, dict]) -> str:
    """Runs × (clean, attack@ε) accuracy table in markdown."""
    cols = [("clean", None)]
    for res in runs.values():
        for r in res["robust"]:
            if (r["attack"], r["eps"]) not in cols:
                cols.append((r["attack"], r["eps"]))
    head = ["model", "clean acc", "clean AUC"] + [f"{a} {e * 255:.3g}/255" for a, e in cols[1:]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run, res in runs.items():
        by = {(r["attack"], r["eps"]): r["acc"] for r in res["robust"]}
        cells = [run, f"{res['clean']['acc']:.3f}", f"{res['clean']['auc']:.3f}"]
        cells += [f"{by[c]:.3f}" if c in by else "—" for c in cols[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def checks_markdown(runs: dict[str, dict]) -> str:
    lines = []
    for run, res in runs.items():
        for c in res.get("checks", []):
            mark = "PASS" if c["passed"] else "**FAIL — robustness numbers are suspect**"
            lines.append(f"- {run}: {c['name']}: {mark} ({c['detail']})")
    return "\n".join(lines) or "- (no sanity checks run)"


def write_report(runs: dict[str, dict], out: Path, title: str = "deepshield robustness report") -> Path:
    """Write ``report.md`` and ``robust_accuracy.png`` under ``out``; returns the report path."""
    out = Path(out)
    plot = plot_robust_accuracy(runs, out / "robust_accuracy.png")
    failed = [c for res in runs.values() for c in res.get("checks", []) if not c["passed"]]
    warn = (f"\n> **WARNING: {len(failed)} sanity check(s) failed.** Robust accuracy may be overestimated "
            "(gradient masking or a broken attack); see below.\n" if failed else "")
    text = (f"# {title}\n{warn}\n## Accuracy under attack\n\n{markdown_table(runs)}\n\n"
            f"![robust accuracy vs eps]({plot.name})\n\n## Sanity checks (Carlini et al. 2019)\n\n"
            f"{checks_markdown(runs)}\n")
    path = out / "report.md"
    tmp = out / ".report.md.tmp"
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
