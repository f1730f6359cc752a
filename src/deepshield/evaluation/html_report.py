"""report.html: one self-contained page (inline CSS, PNGs embedded as base64) from the report's runs."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from deepshield import __version__
from deepshield.contracts.rows import Metrics
from deepshield.evaluation.formatting import eps_label, failed, fmt, headline_rows
from deepshield.evaluation.results import EvalResult
from deepshield.evaluation.tables import (
    DIRECTION_NOTE,
    DIRECTIONS,
    SEVERITY_NOTE,
    attack_grid,
    cross_intro,
    cross_tables,
    failed_runs,
    method_rows,
    settings_line,
    threat_tables,
)

CSS = """
:root { --ok:#2e7d32; --bad:#c62828; --ink:#1f2933; --muted:#6b7785; --line:#e4e7eb; --bg:#f7f8fa; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color:var(--ink); background:var(--bg); }
main { max-width:1120px; margin:0 auto; padding:28px 24px 60px; }
h1 { font-size:28px; margin:0 0 4px; } h2 { font-size:20px; margin:36px 0 12px; }
.sub { color:var(--muted); margin-bottom:18px; }
.banner { border-radius:10px; padding:14px 18px; margin:14px 0 22px; font-weight:600; }
.banner.ok { background:#e8f5e9; color:var(--ok); border:1px solid #b7dfb9; }
.banner.bad { background:#fdecea; color:var(--bad); border:2px solid var(--bad); }
.banner ul { margin:8px 0 0; font-weight:400; color:var(--ink); }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(330px, 1fr)); gap:16px; }
.card { background:white; border:1px solid var(--line); border-radius:12px; padding:16px 18px; }
.card h3 { margin:0 0 2px; font-size:17px; } .card .meta { color:var(--muted); font-size:13px; }
.big { display:flex; gap:22px; margin:12px 0 10px; }
.big div { display:flex; flex-direction:column; } .big b { font-size:26px; line-height:1.1; }
.big span { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.chips { display:flex; flex-wrap:wrap; gap:6px; }
.chips .lab { color:var(--muted); font-size:12px; width:100%; }
.chip { border-radius:6px; padding:3px 8px; font-size:13px; font-weight:600; color:#111; }
.status { font-size:13px; margin-top:10px; font-weight:600; }
.status.ok { color:var(--ok); } .status.bad { color:var(--bad); }
figure { margin:0; background:white; border:1px solid var(--line); border-radius:12px; padding:12px;
         text-align:center; } figure img { max-width:100%; height:auto; }
figcaption { color:var(--muted); font-size:13px; margin-top:6px; text-align:left; }
table { border-collapse:collapse; background:white; border:1px solid var(--line); border-radius:8px;
        margin:10px 0 18px; font-size:14px; }
th, td { padding:6px 12px; border-bottom:1px solid var(--line); text-align:center; }
th { background:#f0f2f5; font-weight:600; } td.l, th.l { text-align:left; }
td.cell b { font-size:15px; } td.cell small { color:#333; display:block; font-size:11px; }
.badge { border-radius:5px; padding:2px 8px; font-weight:700; font-size:12px; color:white; }
.badge.ok { background:var(--ok); } .badge.bad { background:var(--bad); }
tr.bad td { background:#fff4f3; }
.note { color:var(--muted); font-size:13px; max-width:900px; }
"""


def embed_png(path: Path) -> str:
    """A data: URI of a PNG file."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _e(text: object) -> str:
    return html.escape(str(text))


def _heat(acc: float | None) -> str:
    """Background colour for an accuracy: red (0) -> amber -> green (1)."""
    if acc is None or acc != acc:
        return "#eeeeee"
    return f"hsl({int(120 * max(0.0, min(1.0, acc)))}, 65%, 82%)"


def _figure(path: Path | None, caption: str) -> str:
    if not path:
        return ""
    return (f'<figure><img src="{embed_png(path)}" alt="{_e(caption)}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _card(run: str, res: EvalResult) -> str:
    clean = res.sweep.clean
    norm = res.sweep.spec.norm
    big = [("clean acc", clean.acc), ("clean AUC", clean.auc)]
    if clean.video:
        mean = clean.video.get("mean")
        big.append(("video AUC", mean.auc if mean else None))
    rows = sorted(headline_rows(res.sweep), key=lambda r: r.eps)
    what = rows[0].attack if rows else ""
    chips = "".join(f'<span class="chip" style="background:{_heat(r.metrics.acc)}">'
                    f'{_e(eps_label(r.eps, norm))}: {fmt(r.metrics.acc)}</span>' for r in rows)
    checks = res.checks
    bad = failed(checks)
    status = (f'<div class="status bad">✗ {len(bad)} of {len(checks)} sanity checks FAILED</div>' if bad else
              f'<div class="status ok">✓ all {len(checks)} sanity checks passed</div>' if checks else "")
    return (f'<div class="card"><h3>{_e(run)}</h3><div class="meta">{_e(res.dataset)} · '
            f'{res.sweep.n} images · {_e(res.model)}</div><div class="big">' +
            "".join(f"<div><b>{fmt(v)}</b><span>{k}</span></div>" for k, v in big) +
            f'</div><div class="chips"><span class="lab">accuracy under attack ({_e(what)})</span>'
            f"{chips}</div>"
            f"{status}</div>")


def _grid(run: str, res: EvalResult) -> str:
    norm = res.sweep.spec.norm
    attacks, eps, by = attack_grid(res.sweep)
    head = "".join(f"<th>{_e(eps_label(e, norm))}</th>" for e in eps)
    body = []
    for a in attacks:
        cells = []
        for e in eps:
            r = by.get((a, e))
            if r is None:
                cells.append("<td>—</td>")
                continue
            s = r.seconds
            extra = "" if s is None else f" · {s:.0f}s" if s >= 10 else f" · {s:.1f}s"
            m = r.metrics
            cells.append(f'<td class="cell" style="background:{_heat(m.acc)}"><b>{fmt(m.acc)}</b>'
                         f'<small>AUC {fmt(m.auc)}{extra}</small><small>{_directions(m)}</small></td>')
        name = f"<b>{_e(a)}</b>" if a == "worst-case" else _e(a)
        body.append(f'<tr><td class="l">{name}</td>{"".join(cells)}</tr>')
    clean = res.sweep.clean
    return (f"<h3>{_e(run)}</h3><table><tr><th class='l'>attack \\ ε</th>{head}</tr>{''.join(body)}</table>"
            f"<p class='note'>clean: accuracy {fmt(clean.acc)}, AUC {fmt(clean.auc)}, "
            f"AP {fmt(clean.ap)}, EER {fmt(clean.eer)}, {_directions(clean)}. "
            f"{_e(DIRECTION_NOTE)}.</p>" + _threat_tables(res))


def _directions(m: Metrics) -> str:
    """``fakes 0.120 · reals 0.910 · TPR@1%FPR 0.050``."""
    return " · ".join(f"{label} {fmt(m.get(key))}" for label, key in DIRECTIONS)


def _threat_tables(res: EvalResult) -> str:
    """The run's "After re-encoding", "Transfer" and "Natural corruptions" tables, those present."""
    out = []
    for t in threat_tables(res):
        rows = "".join(_row(cells, t.keys) for cells in t.rows)
        out.append(f"<h4>{_e(t.title)}</h4><table>{_row(t.header, t.keys, 'th')}{rows}</table>"
                   f"<p class='note'>{_e(t.note)}.</p>")
    return "".join(out)


def _row(cells: list[str], keys: int, tag: str = "td") -> str:
    """A table row; the first ``keys`` cells (the row's name) left-aligned."""
    left = " class='l'"
    return "<tr>" + "".join(f"<{tag}{left if i < keys else ''}>{_e(c)}</{tag}>"
                            for i, c in enumerate(cells)) + "</tr>"


def _cross_section(runs: dict[str, EvalResult]) -> str:
    """In-domain vs cross-domain tables ("" when no run was evaluated on more than one dataset)."""
    tables = cross_tables(runs)
    if not tables:
        return ""
    body = "".join(f"<h3>{_e(t.title)}</h3><table>{_row(t.header, t.keys, 'th')}"
                   f"{''.join(_row(cells, t.keys) for cells in t.rows)}</table>"
                   f"<p class='note'>{_e(t.note)}.</p>" for t in tables)
    return (f"<h2>Cross-dataset: in-domain vs cross-domain</h2><p class='note'>{_e(cross_intro(runs))}</p>"
            f"{body}")


def _methods_table(runs: dict[str, EvalResult]) -> str:
    rows = []
    for run, res in runs.items():
        _, table = method_rows(res)
        for m, n, acc, auc, adv_acc, adv_auc in table:
            rows.append(f"<tr><td class='l'>{_e(run)}</td><td class='l'>{_e(m)}</td><td>{n}</td>"
                        f"<td style='background:{_heat(acc)}'>{fmt(acc)}</td><td>{fmt(auc)}</td>"
                        f"<td style='background:{_heat(adv_acc)}'>{fmt(adv_acc)}</td>"
                        f"<td>{fmt(adv_auc)}</td></tr>")
    if not rows:
        return ""
    return ("<table><tr><th class='l'>model</th><th class='l'>method</th><th>faces</th><th>clean acc</th>"
            "<th>clean AUC</th><th>attacked acc</th><th>attacked AUC</th></tr>" + "".join(rows) + "</table>"
            "<p class='note'>acc: on the method's own faces (reals called real, fakes called fake); AUC: the "
            "method against all real faces; attacked: the headline attack at the reference ε.</p>")


def _video_table(runs: dict[str, EvalResult]) -> str:
    rows = []
    for run, res in runs.items():
        c = res.sweep.clean
        if not c.video:
            continue
        levels = [("frame", c)] + [(f"video ({how})", m) for how, m in c.video.items()]
        for level, m in levels:
            rows.append(f"<tr><td class='l'>{_e(run)}</td><td class='l'>{level}</td><td>{m.n}</td>"
                        f"<td>{fmt(m.acc)}</td><td>{fmt(m.auc)}</td><td>{fmt(m.ap)}</td>"
                        f"<td>{fmt(m.eer)}</td></tr>")
    if not rows:
        return ""
    return ("<h2>Frame vs video level (clean)</h2><table><tr><th class='l'>model</th>"
            "<th class='l'>level</th><th>n</th><th>acc</th><th>AUC</th><th>AP</th><th>EER</th></tr>"
            + "".join(rows) + "</table>"
            "<p class='note'>video (mean): average fake probability of a video's frames; "
            "video (top50): mean of its most fake-looking half of frames.</p>")


def _checks_table(runs: dict[str, EvalResult]) -> str:
    rows = []
    for run, res in runs.items():
        for c in res.checks:
            ok = c.passed
            badge = '<span class="badge ok">PASS</span>' if ok else '<span class="badge bad">FAIL</span>'
            rows.append(f"<tr class='{'' if ok else 'bad'}'><td>{badge}</td><td class='l'>{_e(run)}</td>"
                        f"<td class='l'>{_e(c.name)}</td><td class='l'>{_e(c.detail)}</td></tr>")
    if not rows:
        return "<p class='note'>No sanity checks were run (evaluated with --no-sanity).</p>"
    head = "<tr><th></th><th class='l'>model</th><th class='l'>check</th><th class='l'>detail</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _banner(runs: dict[str, EvalResult]) -> str:
    bad = failed_runs(runs)
    if bad:
        items = "".join(f"<li><b>{_e(run)}</b>: {_e(c.name)} — {_e(c.detail)}</li>" for run, c in bad)
        return (f'<div class="banner bad">⚠ {len(bad)} sanity check(s) FAILED. {_e(SEVERITY_NOTE)}'
                f"<ul>{items}</ul></div>")
    n = sum(len(res.checks) for res in runs.values())
    return f'<div class="banner ok">✓ All {n} sanity checks passed.</div>' if n else ""


def render_html(runs: dict[str, EvalResult], figs: dict, title: str, created: str) -> str:
    """The whole report page as one string."""
    galleries = "".join(_figure(figs.get(f"gallery:{run}"), f"<b>{_e(run)}</b>: clean face, the "
                                "adversarial face, and the perturbation amplified so ±ε spans the full "
                                "range; below, where drawn, the Grad-CAM map of 'fake' on the clean and "
                                "the adversarial face (red: most evidence).") for run in runs)
    sections = [
        f"<h1>{_e(title)}</h1><div class='sub'>{len(runs)} model(s) · generated {_e(created)} · "
        f"deepshield {__version__}</div>",
        _banner(runs),
        f"<div class='cards'>{''.join(_card(run, res) for run, res in runs.items())}</div>",
        _cross_section(runs),
        "<h2>Accuracy under attack</h2>",
        _figure(figs.get("robust"), "Accuracy as the attack budget grows; ε = 0 is clean accuracy. "
                "<b>worst-case</b>: a face counts as robust only if no attack fooled it."),
        "".join(_grid(run, res) for run, res in runs.items()),
    ]
    if figs.get("roc"):
        sections += ["<h2>ROC: clean vs attacked</h2>",
                     _figure(figs["roc"], "Each attacked curve uses the same adversarial faces as the "
                             "accuracy numbers (attacks stop once a face is fooled), so it is an upper bound "
                             "on the AUC a loss-maximizing attacker leaves.")]
    if figs.get("methods"):
        sections += ["<h2>Per manipulation method</h2>",
                     _figure(figs["methods"], "Each manipulation method scored against all real faces."),
                     _methods_table(runs)]
    sections.append(_video_table(runs))
    if galleries:
        sections += ["<h2>Gallery</h2>", galleries]
    sections += ["<h2>Sanity checks <span class='note'>(Carlini et al. 2019, On Evaluating Adversarial "
                 "Robustness)</span></h2>", _checks_table(runs),
                 "<h2>Settings</h2><ul class='note'>" +
                 "".join(f"<li><b>{_e(run)}</b>: {_e(settings_line(res).replace('`', ''))}</li>"
                         for run, res in runs.items())
                 + "</ul>",
                 "<p class='note'>Robust accuracy follows the AutoAttack protocol: only faces the model "
                 "classifies correctly are attacked, each attack stops on a face once it is fooled, and each "
                 "(attack, ε) is run independently so the sanity checks can compare them.</p>"]
    body = "\n".join(s for s in sections if s)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{CSS}</style></head>"
            f"<body><main>{body}</main></body></html>\n")
