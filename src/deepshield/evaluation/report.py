"""Reports: results.json of one or more evaluations -> report.md (with PNGs beside it) and a
self-contained report.html (the same plots embedded as base64), plus JSON helpers.

    >>> write_report({"standard": results_a, "pgd-at": results_b}, Path("runs/report"))
    >>> write_report(load_runs(["runs/a", "runs/b"]), Path("runs/report"))   # deepshield report
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np

from deepshield.evaluation import plots
from deepshield.evaluation.checks import failed

SEVERITY_NOTE = ("Robust accuracy may be overestimated (gradient masking or a broken/weak attack); "
                 "do not report these numbers before the failure is understood.")


def write_json(obj: dict, path: Path) -> Path:
    """Write JSON atomically; NaN/inf become null, numpy values become Python ones, keys starting with
    ``_`` (in-memory extras such as gallery arrays) are left out."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(_clean(obj), indent=1))
    os.replace(tmp, path)
    return path


def _clean(o):
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items() if not str(k).startswith("_")}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and (math.isnan(o) or math.isinf(o)):
        return None
    if isinstance(o, Path):
        return str(o)
    return o


def _write_text(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def find_results(path: str | Path) -> list[Path]:
    """results.json files of a run: the file itself, DIR/results.json, DIR/eval/results.json, else any
    DIR/*/results.json (e.g. one folder per evaluated dataset)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist; pass a run folder or an eval results.json")
    for candidate in (path / "results.json", path / "eval" / "results.json"):
        if candidate.is_file():
            return [candidate]
    found = sorted(path.glob("*/results.json"))
    if not found:
        raise FileNotFoundError(f"no results.json in {path} or its subfolders; run 'deepshield evaluate "
                                f"--checkpoint {path}/best.pt' first")
    return found


def load_runs(paths: list[str | Path]) -> dict[str, dict]:
    """{unique run name: results} for each run folder or results.json (names from folder names)."""
    runs: dict[str, dict] = {}
    for p in paths:
        for file in find_results(p):
            try:
                res = json.loads(file.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"{file} is not valid JSON ({e.msg} at line {e.lineno})") from None
            if not isinstance(res, dict) or "clean" not in res or "robust" not in res:
                raise ValueError(f"{file} is not a 'deepshield evaluate' results.json (no clean/robust keys)")
            res["_dir"] = file.parent
            name = res.get("run") or file.parent.name
            if file.parent.name not in ("eval", name):
                name = f"{name}/{file.parent.name}"
            base, k = name, 2
            while name in runs:
                name, k = f"{base} ({k})", k + 1
            runs[name] = res
    if not runs:
        raise ValueError("no runs to report; pass one or more run folders")
    return runs


# --- tables ------------------------------------------------------------------------------------------


def _eps(e: float, norm: str) -> str:
    return f"{e * 255:.3g}/255" if norm == "linf" else f"{e:.3g}"


def _f(v, digits: int = 3) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _columns(runs: dict[str, dict]) -> list[tuple[str, float]]:
    cols: list[tuple[str, float]] = []
    for res in runs.values():
        for r in [*res["robust"], *res.get("worst_case", [])]:
            if (r["attack"], r["eps"]) not in cols:
                cols.append((r["attack"], r["eps"]))
    return cols


def markdown_table(runs: dict[str, dict]) -> str:
    """Runs × (clean, attack@ε) accuracy table in markdown (worst case over attacks included)."""
    norm = plots.norm_of(runs)
    cols = _columns(runs)
    head = ["model", "clean acc", "clean AUC"] + [f"{a} {_eps(e, norm)}" for a, e in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run, res in runs.items():
        by = {(r["attack"], r["eps"]): r["acc"] for r in [*res["robust"], *res.get("worst_case", [])]}
        cells = [run, _f(res["clean"]["acc"]), _f(res["clean"].get("auc"))]
        cells += [_f(by.get(c)) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_table(runs: dict[str, dict]) -> str:
    """One line per run: clean accuracy/AUC (video AUC when there are videos) and the headline robust
    accuracy (worst case over attacks, or the single attack) at each ε."""
    norm = plots.norm_of(runs)
    eps = sorted({r["eps"] for res in runs.values() for r in plots.headline_rows(res)})
    video = any(res["clean"].get("video") for res in runs.values())
    head = ["model", "dataset", "clean acc", "clean AUC"] + (["video AUC"] if video else [])
    head += [f"robust {_eps(e, norm)}" for e in eps]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run, res in runs.items():
        by = {r["eps"]: r["acc"] for r in plots.headline_rows(res)}
        cells = [run, str(res.get("dataset", "?")), _f(res["clean"]["acc"]), _f(res["clean"].get("auc"))]
        if video:
            cells.append(_f(res["clean"].get("video", {}).get("mean", {}).get("auc")))
        cells += [_f(by.get(e)) for e in eps]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def console_summary(run: str, res: dict) -> str:
    """Terminal lines: clean metrics, then accuracy and AUC per attack and ε (worst case last)."""
    norm = res.get("spec", {}).get("norm", "linf")
    c = res["clean"]
    video = c.get("video", {}).get("mean")
    head = (f"{run} on {res.get('dataset', '?')}, {res.get('n', c['n'])} images: clean acc {_f(c['acc'])}, "
            f"AUC {_f(c.get('auc'))}" + (f", video AUC {_f(video.get('auc'))}" if video else ""))
    rows = [*res["robust"], *res.get("worst_case", [])]
    width = max([len(f"{r['attack']} {_eps(r['eps'], norm)}") for r in rows] + [0])
    lines = [f"  {r['attack'] + ' ' + _eps(r['eps'], norm):<{width}}  acc {_f(r['acc'])}  AUC {_f(r['auc'])}"
             for r in rows]
    return "\n".join([head, *lines])


def _attack_grid(res: dict) -> tuple[list[str], list[float], dict]:
    rows = [*res["robust"], *res.get("worst_case", [])]
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    eps = sorted({r["eps"] for r in rows})
    return attacks, eps, {(r["attack"], r["eps"]): r for r in rows}


def detail_markdown(run: str, res: dict) -> str:
    """Attack × ε grid of one run: accuracy / AUC, and how long each took."""
    norm = res.get("spec", {}).get("norm", "linf")
    attacks, eps, by = _attack_grid(res)
    head = ["attack"] + [_eps(e, norm) for e in eps]
    lines = [f"**{run}** — accuracy / AUC under attack (clean: {_f(res['clean']['acc'])} / "
             f"{_f(res['clean'].get('auc'))})", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for a in attacks:
        cells = [a] + [f"{_f(by[(a, e)]['acc'])} / {_f(by[(a, e)]['auc'])}" if (a, e) in by else "—"
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
        lines.append(f"| {run} | frame | {c['n']} | {_f(c['acc'])} | {_f(c['auc'])} | {_f(c['ap'])} | "
                     f"{_f(c['eer'])} |")
        for how, m in video.items():
            lines.append(f"| {run} | video ({how}) | {m['n']} | {_f(m['acc'])} | {_f(m['auc'])} | "
                         f"{_f(m['ap'])} | {_f(m['eer'])} |")
    return "\n".join(lines)


def method_rows(res: dict) -> tuple[dict | None, list[tuple]]:
    """(headline row at the reference ε, [(method, faces, clean acc, clean AUC, attacked acc, attacked AUC)]).

    Accuracy is on the method's own faces (reals: called real; a fake method: called fake); AUC is the
    method against all reals.
    """
    by_method = res["clean"].get("by_method") or {}
    ref = plots.reference_eps(res)
    row = next((r for r in plots.headline_rows(res) if r["eps"] == ref), None)
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
            lines.append(f"| {run} | {m} | {n} | {_f(acc)} | {_f(auc)} | {_f(adv_acc)} | {_f(adv_auc)} |")
        if row:
            lines.append(f"| | *attacked = {row['attack']} at ε = {_eps(row['eps'], norm)}* | | | | | |")
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


# --- figures -----------------------------------------------------------------------------------------


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "run"


def _gallery_file(run: str, res: dict, out: Path) -> Path | None:
    """Render (in-memory arrays) or copy (a run's gallery.png) this run's gallery into ``out``."""
    target = out / f"gallery_{_slug(run)}.png"
    arrays = res.get("_gallery_arrays")
    meta = res.get("gallery")
    if arrays is not None and meta:
        return plots.plot_gallery(arrays["clean"], arrays["adv"], meta, target, title=f"{run}: " + (
            f"{meta['attack']} at ε = {_eps(meta['eps'], meta.get('norm', 'linf'))}"))
    if meta and meta.get("file"):
        src = Path(res.get("_dir", out)) / meta["file"]
        if src.is_file():
            if src.parent.resolve() == out.resolve():
                return src  # the run's own folder: no copy
            shutil.copyfile(src, target)
            return target
    return None


def _figures(runs: dict[str, dict], out: Path) -> dict[str, Path | None]:
    figs: dict[str, Path | None] = {
        "robust": plots.plot_robust_accuracy(runs, out / "robust_accuracy.png"),
        "roc": plots.plot_roc(runs, out / "roc.png"),
        "methods": plots.plot_methods(runs, out / "per_method.png"),
    }
    for run, res in runs.items():
        figs[f"gallery:{run}"] = _gallery_file(run, res, out)
    return figs


# --- documents ---------------------------------------------------------------------------------------


def _failed(runs: dict[str, dict]) -> list[tuple[str, dict]]:
    return [(run, c) for run, res in runs.items() for c in failed(res.get("checks", []))]


def _markdown(runs: dict[str, dict], figs: dict, title: str) -> str:
    bad = _failed(runs)
    parts = [f"# {title}\n"]
    if bad:
        parts.append(f"> **WARNING: {len(bad)} sanity check(s) FAILED.** {SEVERITY_NOTE}\n>\n" +
                     "\n".join(f"> - {run}: {c['name']} ({c['detail']})" for run, c in bad) + "\n")
    elif any(res.get("checks") for res in runs.values()):
        parts.append("All sanity checks passed.\n")
    parts.append(f"## At a glance\n\n{summary_table(runs)}\n\n*robust*: accuracy under the worst case over "
                 "all attacks (a face counts only if no attack fooled it).\n")
    parts.append(f"## Accuracy under attack\n\n{markdown_table(runs)}\n\n![robust accuracy vs eps]"
                 f"({figs['robust'].name})\n")
    parts += [detail_markdown(run, res) + "\n" for run, res in runs.items()]
    if figs["roc"]:
        parts.append(f"## ROC: clean vs attacked\n\n![ROC curves]({figs['roc'].name})\n")
    if figs["methods"]:
        parts.append(f"## Per manipulation method\n\n{methods_markdown(runs)}\n\n![per method]"
                     f"({figs['methods'].name})\n")
    video = video_markdown(runs)
    if video:
        parts.append(f"## Frame vs video level (clean)\n\n{video}\n")
    galleries = [(run, figs[f"gallery:{run}"]) for run in runs if figs.get(f"gallery:{run}")]
    if galleries:
        parts.append("## Gallery\n\n" + "\n\n".join(f"![{run}]({p.name})" for run, p in galleries) + "\n")
    parts.append(f"## Sanity checks (Carlini et al. 2019)\n\n{checks_markdown(runs)}\n")
    settings = "\n".join(f"- **{run}**: {_settings(res)}" for run, res in runs.items())
    parts.append(f"## Settings\n\n{settings}\n")
    return "\n".join(parts)


def _settings(res: dict) -> str:
    spec = res.get("spec", {})
    norm = spec.get("norm", "linf")
    items = [f"checkpoint `{res.get('checkpoint', '?')}`", f"dataset `{res.get('dataset', '?')}`",
             f"{res.get('n', res['clean'].get('n'))} images", f"norm {norm}",
             f"eps {', '.join(_eps(e, norm) for e in spec.get('eps', []))}",
             f"attacks {', '.join(spec.get('attacks', []))}", f"PGD/APGD steps {spec.get('steps')}",
             f"restarts {spec.get('restarts')}", f"square queries {spec.get('square_queries')}",
             f"early stop {spec.get('early_stop')}"]
    if res.get("seconds") is not None:
        items.append(f"{res['seconds']:.0f} s")
    return ", ".join(items)


def write_report(runs: dict[str, dict], out: Path, title: str = "deepshield robustness report") -> Path:
    """Write report.md, report.html and the PNGs under ``out``; returns the report.md path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figs = _figures(runs, out)
    path = _write_text(out / "report.md", _markdown(runs, figs, title))
    from deepshield.evaluation.html_report import render_html  # it imports this module's tables

    _write_text(out / "report.html", render_html(runs, figs, title, time.strftime("%Y-%m-%d %H:%M")))
    return path
