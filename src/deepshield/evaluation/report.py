"""Reports: results.json of one or more evaluations -> report.md (with PNGs beside it) and a
self-contained report.html (the same plots embedded as base64), plus JSON helpers.

    >>> write_report({"standard": results_a, "pgd-at": results_b}, Path("runs/report"))
    >>> write_report(load_runs(["runs/a", "runs/b"]), Path("runs/report"))   # deepshield report
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from deepshield.errors import DataError, MissingFileError
from deepshield.evaluation import plots
from deepshield.evaluation.formatting import json_ready
from deepshield.evaluation.html_report import render_html
from deepshield.evaluation.results import EvalResult
from deepshield.evaluation.tables import (
    SEVERITY_NOTE,
    checks_markdown,
    cross_intro,
    cross_markdown,
    detail_markdown,
    failed_runs,
    markdown_table,
    methods_markdown,
    settings_line,
    summary_table,
    video_markdown,
)
from deepshield.io import write_json_atomic, write_text_atomic


def write_json(obj: Any, path: Path) -> Path:
    """Write JSON atomically; NaN/inf become null and numpy values Python ones (strict JSON)."""
    return write_json_atomic(path, json_ready(obj))


def find_results(path: str | Path) -> list[Path]:
    """results.json files of a run: the file itself, DIR/results.json, DIR/eval/results.json, else any
    DIR/*/results.json (e.g. one folder per evaluated dataset)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise MissingFileError(f"{path} does not exist; pass a run folder or an eval results.json")
    for candidate in (path / "results.json", path / "eval" / "results.json"):
        if candidate.is_file():
            return [candidate]
    found = sorted(path.glob("*/results.json"))
    if not found:
        raise MissingFileError(f"no results.json in {path} or its subfolders; run 'deepshield evaluate "
                                f"--checkpoint {path}/best.pt' first")
    return found


def load_runs(paths: list[str | Path]) -> dict[str, EvalResult]:
    """{unique run name: result} for each run folder or results.json (names from folder names); each
    result's ``out`` is the folder its results.json is in."""
    runs: dict[str, EvalResult] = {}
    for p in paths:
        for file in find_results(p):
            try:
                res = EvalResult.from_json(json.loads(file.read_text()), source=str(file), out=file.parent)
            except json.JSONDecodeError as e:
                raise DataError(f"{file} is not valid JSON ({e.msg} at line {e.lineno})") from None
            name = res.run or file.parent.name
            if file.parent.name not in ("eval", name):
                name = f"{name}/{file.parent.name}"
            base, k = name, 2
            while name in runs:
                name, k = f"{base} ({k})", k + 1
            runs[name] = res
    if not runs:
        raise DataError("no runs to report; pass one or more run folders")
    return runs


# --- figures -----------------------------------------------------------------------------------------


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "run"


def _gallery_file(run: str, res: EvalResult, out: Path) -> Path | None:
    """This run's rendered gallery (``gallery.file`` in its folder ``res.out``), copied into ``out``."""
    meta = res.sweep.gallery
    if not (meta and meta.file):
        return None
    src = Path(res.out or out) / meta.file
    if not src.is_file():
        return None
    if src.parent.resolve() == out.resolve():
        return src  # the run's own folder: no copy
    target = out / f"gallery_{_slug(run)}.png"
    shutil.copyfile(src, target)
    return target


def _figures(runs: dict[str, EvalResult], out: Path) -> dict[str, Path | None]:
    figs: dict[str, Path | None] = {
        "robust": plots.plot_robust_accuracy(runs, out / "robust_accuracy.png"),
        "roc": plots.plot_roc(runs, out / "roc.png"),
        "methods": plots.plot_methods(runs, out / "per_method.png"),
    }
    for run, res in runs.items():
        figs[f"gallery:{run}"] = _gallery_file(run, res, out)
    return figs


# --- documents ---------------------------------------------------------------------------------------


def _markdown(runs: dict[str, EvalResult], figs: dict, title: str) -> str:
    bad = failed_runs(runs)
    parts = [f"# {title}\n"]
    if bad:
        parts.append(f"> **WARNING: {len(bad)} sanity check(s) FAILED.** {SEVERITY_NOTE}\n>\n" +
                     "\n".join(f"> - {run}: {c.name} ({c.detail})" for run, c in bad) + "\n")
    elif any(res.checks for res in runs.values()):
        parts.append("All sanity checks passed.\n")
    parts.append(f"## At a glance\n\n{summary_table(runs)}\n\n*robust*: accuracy under the worst case over "
                 "all attacks (a face counts only if no attack fooled it).\n")
    cross = cross_markdown(runs)
    if cross:
        parts.append(f"## Cross-dataset: in-domain vs cross-domain\n\n{cross_intro(runs)}\n\n{cross}\n")
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
    settings = "\n".join(f"- **{run}**: {settings_line(res)}" for run, res in runs.items())
    parts.append(f"## Settings\n\n{settings}\n")
    return "\n".join(parts)


def as_read(res: EvalResult) -> EvalResult:
    """``res`` as its results.json reads back (NaN metrics as None): what ``deepshield report`` renders,
    so a report written right after an evaluation and one rendered later from its files are the same."""
    return EvalResult.from_json(json_ready(res.to_json()), out=res.out)


def write_report(runs: dict[str, EvalResult], out: Path, title: str = "deepshield robustness report") -> Path:
    """Write report.md, report.html and the PNGs under ``out``; returns the report.md path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    docs = {run: as_read(res) for run, res in runs.items()}
    figs = _figures(docs, out)
    path = write_text_atomic(out / "report.md", _markdown(docs, figs, title))
    write_text_atomic(out / "report.html", render_html(docs, figs, title, time.strftime("%Y-%m-%d %H:%M")))
    return path
