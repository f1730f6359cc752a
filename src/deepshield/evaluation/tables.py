"""Text tables of evaluation results (:class:`~deepshield.evaluation.results.EvalResult`): console,
markdown, and the rows the HTML report renders. Pure functions: no files, no plots, no other report
module."""

from __future__ import annotations

from typing import NamedTuple

from deepshield.contracts.rows import Check, Metrics, SweepRow
from deepshield.evaluation.formatting import eps_label, failed, fmt, headline_rows, norm_of, reference_eps
from deepshield.evaluation.results import DatasetEval, EvalResult, SweepResult

SEVERITY_NOTE = ("Robust accuracy may be overestimated (gradient masking or a broken/weak attack); "
                 "do not report these numbers before the failure is understood.")
DIRECTION_NOTE = ("fakes: accuracy on fakes, the fake→real (evasion) direction; reals: accuracy on reals, "
                  "the real→fake (framing) direction; TPR@1%FPR: share of fakes caught at the threshold "
                  "that flags 1% of reals")


def attack_rows(sweep: SweepResult) -> list[SweepRow]:
    """The white-box sweep's rows (robust, then worst case), without re-encoded or transfer rows."""
    return [r for r in [*sweep.robust, *sweep.worst_case] if r.channel is None and r.transfer_from is None]


DIRECTIONS = (("fakes", "fake_acc"), ("reals", "real_acc"), ("TPR@1%FPR", "tpr_at_1fpr"))
METRICS = (("acc", "acc"), ("AUC", "auc"), *DIRECTIONS)


def directions(m: Metrics, sep: str = "  ") -> str:
    """``fakes 0.120  reals 0.910  TPR@1%FPR 0.050`` for metrics (a row's or clean)."""
    return sep.join(f"{label} {fmt(m.get(key))}" for label, key in DIRECTIONS)


class ThreatTable(NamedTuple):
    """One extra table of a run: ``rows`` of cells under ``header``; the first ``keys`` cells name the row,
    the rest are metrics."""

    title: str
    note: str
    header: list[str]
    rows: list[list[str]]
    keys: int


def columns(runs: dict[str, EvalResult]) -> list[tuple[str, float]]:
    cols: list[tuple[str, float]] = []
    for res in runs.values():
        for r in attack_rows(res.sweep):
            if (r.attack, r.eps) not in cols:
                cols.append((r.attack, r.eps))
    return cols


def markdown_table(runs: dict[str, EvalResult]) -> str:
    """Runs × (clean, attack@ε) accuracy table in markdown (worst case over attacks included)."""
    norm = norm_of(runs)
    cols = columns(runs)
    head = ["model", "clean acc", "clean AUC"] + [f"{a} {eps_label(e, norm)}" for a, e in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run, res in runs.items():
        by = {(r.attack, r.eps): r.metrics.acc for r in attack_rows(res.sweep)}
        cells = [run, fmt(res.sweep.clean.acc), fmt(res.sweep.clean.auc)]
        cells += [fmt(by.get(c)) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_table(runs: dict[str, EvalResult]) -> str:
    """One line per run: clean accuracy/AUC (video AUC when there are videos) and the headline robust
    accuracy (worst case over attacks, or the single attack) at each ε."""
    norm = norm_of(runs)
    eps = sorted({r.eps for res in runs.values() for r in headline_rows(res.sweep)})
    video = any(res.sweep.clean.video for res in runs.values())
    head = ["model", "dataset", "clean acc", "clean AUC"] + (["video AUC"] if video else [])
    head += [f"robust {eps_label(e, norm)}" for e in eps]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run, res in runs.items():
        by = {r.eps: r.metrics.acc for r in headline_rows(res.sweep)}
        c = res.sweep.clean
        cells = [run, res.dataset, fmt(c.acc), fmt(c.auc)]
        if video:
            cells.append(fmt(_get(_video(c), "auc")))
        cells += [fmt(by.get(e)) for e in eps]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def console_summary(run: str, res: EvalResult) -> str:
    """Terminal lines: clean metrics, then per attack and ε (worst case last) accuracy, AUC, accuracy on
    fakes and on reals, and TPR at 1% FPR; then re-encoding, transfer and corruption rows when present."""
    norm = res.sweep.spec.norm
    c = res.sweep.clean
    video = _video(c)
    head = (f"{run} on {res.dataset}, {res.sweep.n} images: clean acc {fmt(c.acc)}, "
            f"AUC {fmt(c.auc)}" + (f", video AUC {fmt(video.auc)}" if video else ""))
    rows = attack_rows(res.sweep)
    labels = [f"{r.attack} {eps_label(r.eps, norm)}" for r in rows]
    width = max([len(label) for label in labels] + [5])
    lines = [f"  {'clean':<{width}}  acc {fmt(c.acc)}  AUC {fmt(c.auc)}  {directions(c)}"]
    lines += [f"  {label:<{width}}  acc {fmt(r.metrics.acc)}  AUC {fmt(r.metrics.auc)}  "
              f"{directions(r.metrics)}" for label, r in zip(labels, rows, strict=True)]
    for t in [*threat_tables(res), *cross_tables({run: res}, with_model=False)]:
        names = [" ".join(c for c in cells[:t.keys] if c != "—") for cells in t.rows]
        width = max(len(n) for n in names)
        lines.append(f"  {t.title}:")
        for name, cells in zip(names, t.rows, strict=True):
            values = zip(t.header[t.keys:], cells[t.keys:], strict=True)
            lines.append(f"    {name:<{width}}  " + "  ".join(f"{h} {v}" for h, v in values))
    return "\n".join([head, *lines, f"  {DIRECTION_NOTE}"])


def attack_grid(sweep: SweepResult) -> tuple[list[str], list[float], dict[tuple[str, float], SweepRow]]:
    """(attacks, ε ascending, (attack, ε) -> row) of the white-box sweep's rows."""
    rows = attack_rows(sweep)
    attacks = list(dict.fromkeys(r.attack for r in rows))
    eps = sorted({r.eps for r in rows})
    return attacks, eps, {(r.attack, r.eps): r for r in rows}


def detail_markdown(run: str, res: EvalResult) -> str:
    """Attack × ε grid of one run (accuracy / AUC), the same grid by direction (accuracy on fakes / on
    reals / TPR@1%FPR), and the run's re-encoding, transfer and corruption tables when present."""
    norm = res.sweep.spec.norm
    attacks, eps, by = attack_grid(res.sweep)
    head = "| " + " | ".join(["attack"] + [eps_label(e, norm) for e in eps]) + " |"
    rule = "|" + "---|" * (len(eps) + 1)
    c = res.sweep.clean

    def grid(keys: tuple[str, ...]) -> list[str]:
        def cell(a: str, e: float) -> str:
            return " / ".join(fmt(by[(a, e)].metrics.get(k)) for k in keys) if (a, e) in by else "—"

        return [head, rule] + ["| " + " | ".join([a] + [cell(a, e) for e in eps]) + " |" for a in attacks]

    lines = [f"**{run}** — accuracy / AUC under attack (clean: {fmt(c.acc)} / {fmt(c.auc)})", ""]
    lines += grid(("acc", "auc"))
    lines += ["", f"*{run} by direction* — fakes / reals / TPR@1%FPR (clean: "
              f"{' / '.join(fmt(c.get(k)) for _, k in DIRECTIONS)}); {DIRECTION_NOTE}.", ""]
    lines += grid(tuple(k for _, k in DIRECTIONS))
    for t in threat_tables(res):
        lines += ["", f"*{run}: {t.title}* — {t.note}", "", "| " + " | ".join(t.header) + " |",
                  "|" + "---|" * len(t.header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in t.rows]
    return "\n".join(lines)


def _metric_cells(m: Metrics) -> list[str]:
    return [fmt(m.get(k)) for _, k in METRICS]


def threat_tables(res: EvalResult) -> list[ThreatTable]:
    """The extra tables of the threat models a run was evaluated under, each only when present: "After
    re-encoding" (``reencoded`` rows, or robust rows with a ``channel``), "Transfer" (``transfer`` rows, or
    robust rows with ``transfer_from``), "Natural corruptions" (``corruptions`` rows)."""
    sweep = res.sweep
    norm = sweep.spec.norm
    every = [*sweep.robust, *sweep.worst_case]
    metrics = [label for label, _ in METRICS]

    def eps_of(r: SweepRow) -> str:
        return "—" if r.attack == "clean" else eps_label(r.eps, norm)

    out = []
    reenc = [*sweep.reencoded, *(r for r in every if r.channel is not None)]
    if reenc:
        order = list(dict.fromkeys(str(r.channel) for r in reenc))  # channels in the order evaluated
        reenc = sorted(reenc, key=lambda r: (order.index(str(r.channel)), r.attack != "clean"))
        rows = [[str(r.channel), r.attack, eps_of(r), *_metric_cells(r.metrics),
                 f"{fmt(r.success_before)} → {fmt(r.success)}" if r.success is not None else "—"]
                for r in reenc]
        out.append(ThreatTable("After re-encoding", "clean faces and each attack's output scored after a "
                               "real JPEG/H.264 round trip; success: share of correctly classified faces "
                               "the attack fools, before → after re-encoding",
                               ["channel", "attack", "ε", *metrics, "success"], rows, 3))
    transfer = [*sweep.transfer, *(r for r in every if r.transfer_from is not None)]
    if transfer:
        rows = [[str(r.transfer_from), r.attack, eps_of(r), *_metric_cells(r.metrics), fmt(r.success)]
                for r in transfer]
        out.append(ThreatTable("Transfer", "attacks crafted on a surrogate model (from) and scored on this "
                               "one; success: share of correctly classified faces fooled",
                               ["from", "attack", "ε", *metrics, "success"], rows, 3))
    if sweep.corruptions:
        rows = [["none (clean)", *_metric_cells(sweep.clean)]]
        rows += [[r.name, *_metric_cells(r.metrics)] for r in sweep.corruptions]
        out.append(ThreatTable("Natural corruptions", "clean faces after a re-upload's processing, no "
                               "attacker", ["corruption", *metrics], rows, 1))
    return out


CROSS_NOTE = ("in-domain: the catalog (any split) the checkpoint was trained on; cross-domain: any other; "
              "ΔAUC: frame AUC minus the run's in-domain frame AUC; video: frames averaged per video (mean); "
              "robust: headline accuracy under attack, on the datasets that were attacked")
METHOD_NOTE = "each fake method against all the dataset's reals; acc: on the method's own faces"


def dataset_entries(res: EvalResult) -> list[EvalResult | DatasetEval]:
    """A run's datasets: the attacked one, then its ``cross`` entries (each has dataset, domain, sweep)."""
    return [res, *res.cross]


def _video(m: Metrics | None) -> Metrics | None:
    """The video-level (mean) metrics, if measured."""
    return (m.video or {}).get("mean") if m is not None else None


def _get(m: Metrics | None, name: str) -> float | None:
    return m.get(name) if m is not None else None


def cross_tables(runs: dict[str, EvalResult], with_model: bool = True) -> list[ThreatTable]:
    """"Datasets" (one row per run and dataset: domain, sizes, frame and video metrics, ΔAUC against the
    in-domain row, robust accuracy at the reference ε) and "Per method" (datasets with two or more fake
    methods); none unless some run has ``cross_dataset`` entries."""
    runs = {run: res for run, res in runs.items() if res.cross}
    if not runs:
        return []
    ref = reference_eps(next(iter(runs.values())).sweep)
    lead = ["model"] if with_model else []
    rows, methods = [], []
    for run, res in runs.items():
        entries = dataset_entries(res)
        base = next((e.sweep.clean.auc for e in entries if e.domain == "in-domain"), None)
        name = [run] if with_model else []
        for e in entries:
            rows.append([*name, *_dataset_cells(e, base, ref)])
            methods += [[*name, e.dataset, *cells] for cells in _method_cells(e.sweep.clean)]
    robust = f"robust {eps_label(ref, norm_of(runs))}" if ref is not None else "robust"
    head = [*lead, "dataset", "domain", "faces", "videos", "acc", "AUC", "AP", "EER", "video acc",
            "video AUC", "ΔAUC", robust]
    out = [ThreatTable("Datasets", CROSS_NOTE, head, rows, len(lead) + 2)]
    if methods:
        head = [*lead, "dataset", "method", "faces", "videos", "acc", "AUC", "video AUC"]
        out.append(ThreatTable("Per method", METHOD_NOTE, head, methods, len(lead) + 2))
    return out


def _dataset_cells(e: EvalResult | DatasetEval, base_auc: float | None, ref: float | None) -> list[str]:
    """dataset, domain, faces, videos, acc, AUC, AP, EER, video acc, video AUC, ΔAUC, robust of one entry."""
    c, v = e.sweep.clean, _video(e.sweep.clean)
    auc = c.auc
    delta = None if None in (base_auc, auc) or e.domain == "in-domain" else auc - base_auc
    robust = next((r.metrics.acc for r in headline_rows(e.sweep)
                   if ref is not None and abs(r.eps - ref) < 1e-9), None) if e.sweep.robust else None
    return [e.dataset, e.domain or "?", str(c.n), "—" if v is None else str(v.n), fmt(c.acc), fmt(auc),
            fmt(c.ap), fmt(c.eer), fmt(_get(v, "acc")), fmt(_get(v, "auc")),
            "—" if delta is None else f"{delta:+.3f}", fmt(robust) if e.sweep.robust else "clean only"]


def _method_cells(clean: Metrics) -> list[list[str]]:
    """method, faces, videos, acc, AUC, video AUC per fake method, when there are two or more."""
    by = clean.by_method or {}
    fakes = [m for m in by if m != "real"]
    if len(fakes) < 2:
        return []
    real = by.get("real")
    n_real = real.n if real is not None else 0
    return [[m, str(by[m].n - n_real), str(_video_n(by[m]) - _video_n(real)), fmt(by[m].fake_acc),
             fmt(by[m].auc), fmt(_get(_video(by[m]), "auc"))]
            for m in fakes]


def _video_n(m: Metrics | None) -> int:
    v = _video(m)
    return int(v.n or 0) if v is not None else 0


def table_markdown(t: ThreatTable) -> str:
    """A :class:`ThreatTable` as a markdown table followed by its note."""
    lines = ["| " + " | ".join(t.header) + " |", "|" + "---|" * len(t.header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in t.rows]
    return "\n".join(lines) + f"\n\n*{t.note}.*"


def cross_intro(runs: dict[str, EvalResult]) -> str:
    """The sentence saying which dataset each run attacked ("" when no run has cross datasets)."""
    runs = {run: res for run, res in runs.items() if res.cross}
    if not runs:
        return ""
    first = "; ".join(f"{run}: {res.dataset}" for run, res in runs.items())
    swept = any(e.swept for res in runs.values() for e in res.cross)
    return (f"One checkpoint, several datasets. The attack sweep, sanity checks and the threat tables of "
            f"this report are on each run's first dataset ({first})"
            + ("; the other datasets were attacked too (the sweep only: column 'robust')." if swept else
               "; the other datasets are scored clean (evaluate with --cross-sweep to attack them too)."))


def cross_markdown(runs: dict[str, EvalResult]) -> str:
    """The cross-dataset section's tables in markdown ("" when no run has cross datasets)."""
    return "\n\n".join(f"**{t.title}**\n\n{table_markdown(t)}" for t in cross_tables(runs))


def video_markdown(runs: dict[str, EvalResult]) -> str:
    lines = []
    for run, res in runs.items():
        c = res.sweep.clean
        if not c.video:
            continue
        if not lines:
            lines = ["| model | level | n | acc | AUC | AP | EER |", "|---|---|---|---|---|---|---|"]
        lines.append(f"| {run} | frame | {c.n} | {fmt(c.acc)} | {fmt(c.auc)} | {fmt(c.ap)} | {fmt(c.eer)} |")
        for how, m in c.video.items():
            lines.append(f"| {run} | video ({how}) | {m.n} | {fmt(m.acc)} | {fmt(m.auc)} | "
                         f"{fmt(m.ap)} | {fmt(m.eer)} |")
    return "\n".join(lines)


def method_rows(res: EvalResult) -> tuple[SweepRow | None, list[tuple]]:
    """(headline row at the reference ε, [(method, faces, clean acc, clean AUC, attacked acc, attacked AUC)]).

    Accuracy is on the method's own faces (reals: called real; a fake method: called fake); AUC is the
    method against all reals.
    """
    by_method = res.sweep.clean.by_method or {}
    ref = reference_eps(res.sweep)
    row = next((r for r in headline_rows(res.sweep) if r.eps == ref), None)
    n_real = by_method["real"].n if "real" in by_method else 0
    out = []
    for m, met in by_method.items():
        own = "real_acc" if m == "real" else "fake_acc"
        adv = (row.metrics.by_method or {}).get(m) if row else None
        out.append((m, met.n if m == "real" else met.n - n_real, met.get(own), met.auc,
                    _get(adv, own), _get(adv, "auc")))
    return row, out


def methods_markdown(runs: dict[str, EvalResult]) -> str:
    lines = []
    for run, res in runs.items():
        row, rows = method_rows(res)
        if not rows:
            continue
        norm = res.sweep.spec.norm
        if not lines:
            lines = ["| model | method | faces | clean acc | clean AUC | attacked acc | attacked AUC |",
                     "|---|---|---|---|---|---|---|"]
        for m, n, acc, auc, adv_acc, adv_auc in rows:
            lines.append(f"| {run} | {m} | {n} | {fmt(acc)} | {fmt(auc)} | {fmt(adv_acc)} | {fmt(adv_auc)} |")
        if row:
            lines.append(f"| | *attacked = {row.attack} at ε = {eps_label(row.eps, norm)}* | | | | | |")
    if lines:
        lines.append("\n*acc*: on the method's own faces; *AUC*: the method against all real faces.")
    return "\n".join(lines)


def checks_markdown(runs: dict[str, EvalResult]) -> str:
    lines = []
    for run, res in runs.items():
        for c in res.checks:
            mark = "PASS" if c.passed else "**FAIL — robustness numbers are suspect**"
            lines.append(f"- {run}: {c.name}: {mark} ({c.detail})")
    return "\n".join(lines) or "- (no sanity checks run)"


def failed_runs(runs: dict[str, EvalResult]) -> list[tuple[str, Check]]:
    return [(run, c) for run, res in runs.items() for c in failed(res.checks)]


def settings_line(res: EvalResult) -> str:
    spec = res.sweep.spec
    norm = spec.norm
    items = [f"checkpoint `{res.checkpoint}`", f"dataset `{res.dataset}`", f"{res.sweep.n} images",
             f"norm {norm}", f"eps {', '.join(eps_label(e, norm) for e in spec.eps)}",
             f"attacks {', '.join(spec.attacks)}", f"PGD/APGD steps {spec.steps}",
             f"restarts {spec.restarts}", f"square queries {spec.square_queries}",
             f"early stop {spec.early_stop}", f"{res.seconds:.0f} s"]
    return ", ".join(items)
