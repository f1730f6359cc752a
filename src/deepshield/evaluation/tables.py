"""Text tables of evaluation results (results.json dicts): console, markdown, and the rows the HTML
report renders. Pure functions: no files, no plots, no other report module."""

from __future__ import annotations

from deepshield.evaluation.formatting import eps_label, failed, fmt, headline_rows, norm_of, reference_eps

SEVERITY_NOTE = ("Robust accuracy may be overestimated (gradient masking or a broken/weak attack); "
                 "do not report these numbers before the failure is understood.")


def columns(runs: dict[str, dict]) -> list[tuple[str, float]]:
    cols: list[tuple[str, float]] = []
    for res in runs.values():
        for r in [*res["robust"], *res.get("worst_case", [])]:
            if (r["attack"], r["eps"]) not in cols:
                cols.append((r["attack"], r["eps"]))
    return cols


def markdown_table(runs: dict[str, dict]) -> str:
    """Runs × (clean, attack@ε) accuracy table in markdown (worst case over attacks included)."""
    norm = norm_of(runs)
    cols = columns(runs)
    head = ["model", "clean acc", "clean AUC"] + [f"{a} {eps_label(e, norm)}" for a, e in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run, res in runs.items():
        by = {(r["attack"], r["eps"]): r["acc"] for r in [*res["robust"], *res.get("worst_case", [])]}
        cells = [run, fmt(res["clean"]["acc"]), fmt(res["clean"].get("auc"))]
        cells += [fmt(by.get(c)) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_table(runs: dict[str, dict]) -> str:
    """One line per run: clean accuracy/AUC (video AUC when there are videos) and the headline robust
    accuracy (worst case over attacks, or the single attack) at each ε."""
    norm = norm_of(runs)
    eps = sorted({r["eps"] for res in runs.values() for r in headline_rows(res)})
    video = any(res["clean"].get("video") for res in runs.values())
    head = ["model", "dataset", "clean acc", "clean AUC"] + (["video AUC"] if video else [])
    head += [f"robust {eps_label(e, norm)}" for e in eps]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run, res in runs.items():
        by = {r["eps"]: r["acc"] for r in headline_rows(res)}
        cells = [run, str(res.get("dataset", "?")), fmt(res["clean"]["acc"]), fmt(res["clean"].get("auc"))]
        if video:
            cells.append(fmt(res["clean"].get("video", {}).get("mean", {}).get("auc")))
        cells += [fmt(by.get(e)) for e in eps]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def console_summary(run: str, res: dict) -> str:
    """Terminal lines: clean metrics, then accuracy and AUC per attack and ε (worst case last)."""
    norm = res.get("spec", {}).get("norm", "linf")
    c = res["clean"]
    video = c.get("video", {}).get("mean")
    head = (f"{run} on {res.get('dataset', '?')}, {res.get('n', c['n'])} images: clean acc {fmt(c['acc'])}, "
            f"AUC {fmt(c.get('auc'))}" + (f", video AUC {fmt(video.get('auc'))}" if video else ""))
    rows = [*res["robust"], *res.get("worst_case", [])]
    width = max([len(f"{r['attack']} {eps_label(r['eps'], norm)}") for r in rows] + [0])
    lines = [f"  {r['attack'] + ' ' + eps_label(r['eps'], norm):<{width}}  acc {fmt(r['acc'])}  "
             f"AUC {fmt(r['auc'])}" for r in rows]
    return "\n".join([head, *lines])


def attack_grid(res: dict) -> tuple[list[str], list[float], dict]:
    rows = [*res["robust"], *res.get("worst_case", [])]
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    eps = sorted({r["eps"] for r in rows})
    return attacks, eps, {(r["attack"], r["eps"]): r for r in rows}


def detail_markdown(run: str, res: dict) -> str:
    """Attack × ε grid of one run: accuracy / AUC, and how long each took."""
    norm = res.get("spec", {}).get("norm", "linf")
    attacks, eps, by = attack_grid(res)
    head = ["attack"] + [eps_label(e, norm) for e in eps]
    lines = [f"**{run}** — accuracy / AUC under attack (clean: {fmt(res['clean']['acc'])} / "
             f"{fmt(res['clean'].get('auc'))})", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for a in attacks:
        cells = [a] + [f"{fmt(by[(a, e)]['acc'])} / {fmt(by[(a, e)]['auc'])}" if (a, e) in by else "—"
                       for e in eps]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def video_markdown(runs: dict[str, dict]) -> str:
    lines = []
    for run, res in runs.items():
        video = res["clean"].get("video")
        if not video:
            continue
        if not lines:
            lines = ["| model | level | n | acc | AUC | AP | EER |", "|---|---|---|---|---|---|---|"]
        c = res["clean"]
        lines.append(f"| {run} | frame | {c['n']} | {fmt(c['acc'])} | {fmt(c['auc'])} | {fmt(c['ap'])} | "
                     f"{fmt(c['eer'])} |")
        for how, m in video.items():
            lines.append(f"| {run} | video ({how}) | {m['n']} | {fmt(m['acc'])} | {fmt(m['auc'])} | "
                         f"{fmt(m['ap'])} | {fmt(m['eer'])} |")
    return "\n".join(lines)


def method_rows(res: dict) -> tuple[dict | None, list[tuple]]:
    """(headline row at the reference ε, [(method, faces, clean acc, clean AUC, attacked acc, attacked AUC)]).

    Accuracy is on the method's own faces (reals: called real; a fake method: called fake); AUC is the
    method against all reals.
    """
    by_method = res["clean"].get("by_method") or {}
    ref = reference_eps(res)
    row = next((r for r in headline_rows(res) if r["eps"] == ref), None)
    n_real = by_method.get("real", {}).get("n", 0)
    out = []
    for m, met in by_method.items():
        own = "real_acc" if m == "real" else "fake_acc"
        adv = row["by_method"].get(m, {}) if row else {}
        out.append((m, met["n"] if m == "real" else met["n"] - n_real, met.get(own), met.get("auc"),
                    adv.get(own), adv.get("auc")))
    return row, out


def methods_markdown(runs: dict[str, dict]) -> str:
    lines = []
    for run, res in runs.items():
        row, rows = method_rows(res)
        if not rows:
            continue
        norm = res.get("spec", {}).get("norm", "linf")
        if not lines:
            lines = ["| model | method | faces | clean acc | clean AUC | attacked acc | attacked AUC |",
                     "|---|---|---|---|---|---|---|"]
        for m, n, acc, auc, adv_acc, adv_auc in rows:
            lines.append(f"| {run} | {m} | {n} | {fmt(acc)} | {fmt(auc)} | {fmt(adv_acc)} | {fmt(adv_auc)} |")
        if row:
            lines.append(f"| | *attacked = {row['attack']} at ε = {eps_label(row['eps'], norm)}* | | | | | |")
    if lines:
        lines.append("\n*acc*: on the method's own faces; *AUC*: the method against all real faces.")
    return "\n".join(lines)


def checks_markdown(runs: dict[str, dict]) -> str:
    lines = []
    for run, res in runs.items():
        for c in res.get("checks", []):
            mark = "PASS" if c["passed"] else "**FAIL — robustness numbers are suspect**"
            lines.append(f"- {run}: {c['name']}: {mark} ({c['detail']})")
    return "\n".join(lines) or "- (no sanity checks run)"



def failed_runs(runs: dict[str, dict]) -> list[tuple[str, dict]]:
    return [(run, c) for run, res in runs.items() for c in failed(res.get("checks", []))]


def settings_line(res: dict) -> str:
    spec = res.get("spec", {})
    norm = spec.get("norm", "linf")
    items = [f"checkpoint `{res.get('checkpoint', '?')}`", f"dataset `{res.get('dataset', '?')}`",
             f"{res.get('n', res['clean'].get('n'))} images", f"norm {norm}",
             f"eps {', '.join(eps_label(e, norm) for e in spec.get('eps', []))}",
             f"attacks {', '.join(spec.get('attacks', []))}", f"PGD/APGD steps {spec.get('steps')}",
             f"restarts {spec.get('restarts')}", f"square queries {spec.get('square_queries')}",
             f"early stop {spec.get('early_stop')}"]
    if res.get("seconds") is not None:
        items.append(f"{res['seconds']:.0f} s")
    return ", ".join(items)
