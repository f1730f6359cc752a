"""The frontier's report: rows from each run's outputs, the Pareto front, the pick, a plot, and the
*Robustness–accuracy frontier* section of RESULTS.md (between :data:`START` and :data:`END`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from deepshield.contracts.rows import SweepRow
from deepshield.evaluation.results import EvalResult
from deepshield.io import write_text_atomic
from deepshield.training.trainer import history_of

START = "<!-- frontier:start (scripts/frontier.py writes this section) -->"
END = "<!-- frontier:end -->"
PLOT = Path("docs/frontier.png")
SHIP_MIN_AUC = 0.80  # the bar for a shipped robust model


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _result(path: Path) -> EvalResult | None:
    """An evaluation's results.json, or None when it has not run."""
    d = _load(path)
    return None if d is None else EvalResult.from_json(d, source=str(path), out=path.parent)


def _row(res: EvalResult | None, key: str) -> SweepRow | None:
    """The sweep row ``attack@eps`` (worst-case rows too) of an evaluation, or None."""
    if res is None:
        return None
    return next((r for r in [*res.sweep.robust, *res.sweep.worst_case] if r.key == key), None)


def _metric(row: SweepRow | None, name: str) -> float | None:
    """A metric of a row (``acc``, ``fake_acc`` ...), None without the row."""
    return row.metrics.get(name) if row is not None else None


def _median_margin(res: EvalResult | None) -> float | None:
    """Median log-odds of the true class on the evaluated faces (how far they sit from the boundary)."""
    if res is None or "clean" not in res.sweep.samples.scores:
        return None
    labels, probs = res.sweep.samples.labels, res.sweep.samples.scores["clean"]
    margins = sorted(math.log(max(p, 1e-7) / max(1 - p, 1e-7)) * (1 if y else -1)
                     for y, p in zip(labels, probs, strict=True))
    return margins[len(margins) // 2] if margins else None


def collect(out: Path, runs) -> list[dict]:
    """One dict of figures per run that has its evaluations."""
    rows = []
    for run in runs:
        d = out / run.name
        clean = _result(d / "eval_clean" / "results.json")
        robust = _result(d / "eval_robust" / "results.json")
        cfg, hist = _load(d / "config.json") or {}, history_of(d, [])
        if not clean or not robust or not hist:
            continue
        best = max(hist, key=lambda m: m.get(cfg.get("best_metric") or "", m.get("val_robust_score",
                                                                               m.get("val_auc", 0))))
        val = _result(d / "eval_val" / "results.json")
        c = clean.sweep.clean
        row = {"name": run.name, "question": run.question, "controlled": run.controlled,
               "adv": cfg.get("adv"), "eps_255": cfg.get("eps", 0) * 255,
               "image_size": cfg.get("image_size"), "epochs": len(hist), "best_epoch": best["epoch"],
               "train_acc": hist[-1].get("train_acc"), "images_per_s": hist[-1].get("images_per_s"),
               "clean_auc": c.auc, "clean_acc": c.acc, "clean_fakes": c.fake_acc, "clean_reals": c.real_acc,
               "margin": _median_margin(clean), "val_pgd10": best.get("val_pgd_acc"),
               "val_pgd20": _metric(_row(val, f"pgd@{cfg.get('eps', 0) * 255:g}/255"), "acc"),
               "checks_pass": all(check.passed for check in robust.checks),
               "failed_checks": [check.name for check in robust.checks if not check.passed],
               "n_robust": robust.sweep.n}
        for e in ("0.5", "1", "2"):
            pgd, worst = _row(robust, f"pgd@{e}/255"), _row(robust, f"worst-case@{e}/255")
            row |= {f"pgd_acc_{e}": _metric(pgd, "acc"), f"pgd_auc_{e}": _metric(pgd, "auc"),
                    f"worst_{e}": _metric(worst, "acc"), f"worst_fakes_{e}": _metric(worst, "fake_acc"),
                    f"worst_reals_{e}": _metric(worst, "real_acc"), f"worst_auc_{e}": _metric(worst, "auc")}
        rows.append(row)
    return rows


def pareto(rows: list[dict], y: str) -> set[str]:
    """Names of the runs no other run beats on both clean AUC and ``y`` (higher is better); a run whose
    sanity checks fail is neither on the front nor beats anyone (its robust numbers are suspect)."""
    rows = [r for r in rows if r.get("checks_pass", True)]
    front = set()
    for r in rows:
        dominated = any(o["clean_auc"] >= r["clean_auc"] and (o[y] or 0) >= (r[y] or 0)
                        and (o["clean_auc"], o[y] or 0) != (r["clean_auc"], r[y] or 0) for o in rows)
        if not dominated:
            front.add(r["name"])
    return front


RULE = (("sanity checks pass", lambda r: r["checks_pass"]),
        (f"clean AUC ≥ {SHIP_MIN_AUC}", lambda r: r["clean_auc"] >= SHIP_MIN_AUC),
        ("robust in both directions at 1/255 and 2/255",
         lambda r: all((r[f"worst_{d}_{e}"] or 0) > 0 for d in ("fakes", "reals") for e in ("1", "2"))))


def pick(rows: list[dict], strict: bool = True) -> dict | None:
    """The run to ship as ``robust``: adversarially trained and meeting every condition of :data:`RULE`
    (``strict=False``: the sanity checks only); the highest mean worst-case accuracy at 1 and 2/255, then
    clean AUC."""
    conditions = RULE if strict else RULE[:1]
    ok = [r for r in rows if r["adv"] != "none" and all(test(r) for _, test in conditions)]
    return max(ok, key=lambda r: ((r["worst_1"] + r["worst_2"]) / 2, r["clean_auc"]), default=None)


def missed(row: dict) -> list[str]:
    """The conditions of :data:`RULE` that ``row`` misses."""
    return [name for name, test in RULE if not test(row)]


def _f(v, digits: int = 3) -> str:
    return "—" if v is None or v != v else f"{v:.{digits}f}"


def table(rows: list[dict]) -> list[str]:
    front = pareto(rows, "worst_1") | pareto(rows, "worst_2")
    lines = ["| run | what changed | px | epochs (best) | train adv acc | clean AUC | clean fakes / reals | "
             "median margin | PGD-20 acc 0.5 / 1 / 2 /255 | AUC under PGD-20 1 / 2 | worst-case acc 1 / 2 | "
             "worst-case fakes / reals at 1/255 | at 2/255 | val PGD-10 → PGD-20 | checks |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mark = (" ★" if r["name"] in front else "") + ("" if r.get("controlled", True) else " †")
        train_adv = _f(r["train_acc"]) if r["adv"] != "none" else "—"
        lines.append(
            f"| {r['name']}{mark} | {r['question']} | {r['image_size']} | "
            f"{r['epochs']} ({r['best_epoch']}) | "
            f"{train_adv} | {_f(r['clean_auc'])} | {_f(r['clean_fakes'])} / {_f(r['clean_reals'])} | "
            f"{_f(r['margin'], 2)} | "
            f"{_f(r['pgd_acc_0.5'])} / {_f(r['pgd_acc_1'])} / {_f(r['pgd_acc_2'])} | "
            f"{_f(r['pgd_auc_1'])} / {_f(r['pgd_auc_2'])} | {_f(r['worst_1'])} / {_f(r['worst_2'])} | "
            f"{_f(r['worst_fakes_1'])} / {_f(r['worst_reals_1'])} | {_f(r['worst_fakes_2'])} / "
            f"{_f(r['worst_reals_2'])} | {_f(r['val_pgd10'])} → {_f(r['val_pgd20'])} | "
            f"{'pass' if r['checks_pass'] else 'FAIL: ' + '; '.join(r['failed_checks'])} |")
    return lines


def plot(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("pgd_acc_1", "PGD-20 accuracy, ε = 1/255"), ("pgd_acc_2", "PGD-20 accuracy, ε = 2/255"),
              ("pgd_auc_1", "AUC under PGD-20, ε = 1/255"), ("pgd_auc_2", "AUC under PGD-20, ε = 2/255")]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    for ax, (key, title) in zip(axes.flat, panels, strict=True):
        front = sorted((r for r in rows if r["name"] in pareto(rows, key)), key=lambda r: r["clean_auc"])
        for r in rows:
            on = r["name"] in {f["name"] for f in front}
            color = "tab:red" if on else ("tab:blue" if r["checks_pass"] else "none")
            ax.scatter(r["clean_auc"], r[key] or 0, s=40, c=color, edgecolors="tab:gray" if color == "none"
                       else color, zorder=3)
            ax.annotate(r["name"], (r["clean_auc"], r[key] or 0), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.step([f["clean_auc"] for f in front], [f[key] or 0 for f in front], where="post", c="tab:red",
                lw=1, alpha=0.6, label="Pareto front")
        ax.set(xlabel="clean test AUC (hollow: sanity checks failed, numbers suspect)", ylabel=title,
               title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle("deepshield robustness–accuracy frontier (DFDC test faces, controlled fine-tunes)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


INTRO = " ".join([
    "`make frontier` (`scripts/frontier.py`, resumable). Every run fine-tunes the bundled `default` detector",
    "with `recipes/frontier-base.yaml` — same 4,000-video training subset, seed, schedule and budget — and",
    "changes one thing (*what changed*). Clean figures: the whole DFDC test split (groups never seen in",
    "development). Under attack: FGSM, PGD-20 and APGD-CE (L∞, early stop) on {n} seeded, label-balanced",
    "test faces; *worst case* counts a face as robust only if every attack failed; *fakes / reals*: accuracy",
    "on fakes (the evasion direction) and on reals (the framing direction). *median margin*: the median",
    "log-odds of the true class on the clean test faces (how far from the boundary a face sits).",
    "*val PGD-10 → PGD-20*: the trainer's validation attack at the training ε on its validation subset at",
    "the best epoch, and PGD-20 on the same faces. ★: on the Pareto front of clean AUC and worst-case",
    "accuracy at 1/255 or 2/255, among the runs whose sanity checks pass. *checks*: the sanity checks",
    "of the robust sweep (Square, 80 steps × 2 restarts, huge ε, non-zero gradients, monotone in ε).",
    "†: not a controlled run (changes more than one thing).",
])


def section(rows: list[dict], findings: list[str]) -> list[str]:
    chosen = pick(rows)
    n = rows[0]["n_robust"] if rows else 0
    lines = [START, "## Robustness–accuracy frontier", "",
             INTRO.format(n=n), "",
             *table(rows), "", f"![frontier]({PLOT.as_posix()})", ""]
    rule = "; ".join(name for name, _ in RULE)
    fallback = chosen or pick(rows, strict=False)
    if fallback:
        short = "" if chosen else (f" No run meets the whole rule; this is the best run whose sanity checks "
                                   f"pass, and it misses: {'; '.join(missed(fallback))}.")
        lines += [f"**Pick** (rule: {rule}; then the highest mean worst-case accuracy at 1 and 2/255): "
                  f"`{fallback['name']}`, clean AUC {_f(fallback['clean_auc'])}, worst-case accuracy "
                  f"{_f(fallback['worst_1'])} at 1/255 and {_f(fallback['worst_2'])} at 2/255.{short}", ""]
    else:
        lines += [f"**Pick**: no adversarially trained run passes its sanity checks (rule: {rule}).", ""]
    return lines + findings + ["", END]


def write_report(out: Path, runs, root: Path, findings: list[str] | None = None) -> str:
    """Write frontier.json, frontier.md, the plot and the RESULTS.md section; returns a summary line."""
    rows = collect(out, runs)
    if not rows:
        return "frontier: no run has finished its evaluations yet"
    write_text_atomic(out / "frontier.json", json.dumps(rows, indent=1))
    plot(rows, root / PLOT)
    from frontier_findings import FINDINGS

    lines = section(rows, FINDINGS if findings is None else findings)
    write_text_atomic(out / "frontier.md", "\n".join(lines) + "\n")
    results = root / "RESULTS.md"
    text = results.read_text(encoding="utf-8") if results.is_file() else ""
    write_text_atomic(results, splice(text, "\n".join(lines)))
    chosen = pick(rows) or pick(rows, strict=False)
    return (f"frontier: {len(rows)} run(s) in RESULTS.md and {root / PLOT}; pick: "
            f"{chosen['name'] if chosen else 'none passes its sanity checks'}")


def splice(text: str, block: str) -> str:
    """``text`` with its frontier block replaced by ``block`` (appended before *Targets*, or at the end)."""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        return head + block + rest.split(END, 1)[1]
    anchor = "\n## Targets"
    if anchor in text:
        head, tail = text.split(anchor, 1)
        return head.rstrip("\n") + "\n\n" + block + "\n" + anchor + tail
    return text.rstrip("\n") + "\n\n" + block + "\n"


def kept_block(text: str) -> str | None:
    """The frontier block of an existing RESULTS.md (for ``make results`` to keep), or None."""
    if START in text and END in text:
        return START + text.split(START, 1)[1].split(END, 1)[0] + END
    return None
