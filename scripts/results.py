"""``make results``: train the DFDC recipes, evaluate them honestly, and write RESULTS.md.

Every stage is a ``deepshield`` command a user can run by hand (they are listed in RESULTS.md):

1. preprocess ``../shared/data/dev/dfdc_faces`` (face images -> MTCNN crops framed like video crops,
   group-disjoint train/val/test);
2. train each recipe of ``RECIPES`` (``deepshield train --config recipes/<name>.yaml --resume``);
3. evaluate each model: clean metrics and FGSM on the whole test split, then FGSM / PGD-20 / APGD-CE
   at ε ∈ {1, 2, 4}/255 with the sanity checks (Square among them) on a seeded, label-balanced subset;
4. cross-dataset: ``deepshield predict`` on the 7 FF++ dev videos (video AUC), and the wall time of
   predicting one 720p video;
5. RESULTS.md from the outputs under ``runs/results``.

A rerun resumes: preprocessing and training resume by themselves, evaluations and predictions whose
output is newer than the checkpoint are kept. Each stage's wall time is recorded in
``runs/results/timings.json`` when it runs. ``--only-report`` rewrites RESULTS.md from what exists.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from deepshield.io import write_text_atomic

if TYPE_CHECKING:
    from deepshield.evaluation.results import EvalResult

ROOT = Path(__file__).resolve().parent.parent
OUT = Path("runs/results")
PARTIAL = OUT / "timings.partial.json"  # time spent by interrupted stages that a rerun resumes
DEV = Path("../shared/data/dev")
DFDC = DEV / "dfdc_faces"
FFPP = DEV / "ffpp"
RECIPES = ("dfdc-faces-standard", "dfdc-faces-fast-at", "dfdc-faces-pgd-at", "dfdc-faces-sbi",
           "dfdc-faces-sbi+fakes", "dfdc-faces-sbi-pgd-at")
# Trained from self-blended pseudo-fakes (SBI): compared with the standard model in and across datasets.
SBI_RECIPES = ("dfdc-faces-sbi", "dfdc-faces-sbi+fakes", "dfdc-faces-sbi-pgd-at")
# Not swept with PGD/APGD/Square: fast AT collapses to chance here (validation PGD accuracy 7%), and the
# sweep costs ~15 min per model on 2 cores (Square dominates); its FGSM rows on the full test split remain.
# The SBI models are there for the cross-dataset comparison: on DFDC's fakes they are near chance (the
# reals-only ones are swept on the FF++ dev faces instead, below).
NO_ROBUST_SWEEP = {"dfdc-faces-fast-at", "dfdc-faces-sbi", "dfdc-faces-sbi+fakes", "dfdc-faces-sbi-pgd-at"}
# Reals-only models are also swept on the FF++ dev faces, where they detect (their DFDC test AUC is ~0.6):
# what adversarial training does to a model trained from real videos only.
FFPP_ROBUST = ("dfdc-faces-sbi", "dfdc-faces-sbi-pgd-at")
FFPP_FACES = OUT / "ffpp-dev"
FFPP_EPS = "0.5/255,1/255,2/255,4/255"  # dfdc-faces-sbi-pgd-at trains at 0.5/255
FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
EPS = "1/255,2/255,4/255"
ROBUST_VIDEOS = 200      # robust sweep subset of the test split (label-balanced, seeded)
# Square (black-box, ART) runs in the sanity check only: at 4/255 on its 128 faces. In the sweep it took
# > 10 min per model on 2 cores (ART queries every remaining face each iteration).
SQUARE_QUERIES = 100
PREDICT_VIDEO = FFPP / "original_sequences/youtube/c23/videos/004.mp4"  # 1280x720, 12.4 s
PREDICT_MODEL = "default"  # the bundled detector (scripts/bundle.py)
TARGETS = {"standard_auc": 0.90, "robust_auc": 0.85, "robust_pgd2": 0.60, "standard_pgd2": 0.10,
           "results_min": 90, "predict_s": 10}


def deepshield(*args: str | Path) -> list[str]:
    return [str(Path(sys.executable).parent / "deepshield"), *map(str, args)]


def stages() -> list[tuple[str, list[str], Path | None, Path | None]]:
    """(name, command, output, input): a stage is skipped when its output is newer than its input."""
    faces = OUT / "faces"
    out = [("preprocess dfdc_faces",
            deepshield("preprocess", DFDC, "--layout", "faces", "--out", faces, "--margin", "0.7", "--shift",
                       "0.1", "--format", "jpg", "--workers", "2", "--quiet"), None, None),
           ("preprocess ffpp dev videos",
            deepshield("preprocess", FFPP, "--layout", "ffpp", "--out", FFPP_FACES, "--margin", "0.7",
                       "--shift", "0.1", "--format", "jpg", "--quiet"), None, None)]
    for name in RECIPES:
        out.append((f"train {name}", deepshield("train", "--config", f"recipes/{name}.yaml", "--resume",
                                                "--quiet"), None, None))
    catalog = faces / "catalog.csv"
    for name in RECIPES:
        ckpt = OUT / name / "best.pt"
        clean = OUT / name / "eval_test_all"
        robust = OUT / name / "eval_test_robust"
        out.append((f"evaluate {name} (clean, full test split)",
                    deepshield("evaluate", "--checkpoint", ckpt, "--dataset", f"catalog:{catalog}:test",
                               "--attacks", "fgsm", "--eps", EPS, "--no-sanity", "--out", clean, "--quiet"),
                    clean / "results.json", ckpt))
        if name not in NO_ROBUST_SWEEP:
            out.append((f"evaluate {name} (robust, {ROBUST_VIDEOS} test videos)",
                        deepshield("evaluate", "--checkpoint", ckpt, "--dataset", f"catalog:{catalog}:test",
                                   "--attacks", "fgsm,pgd,apgd", "--eps", EPS, "--steps", "20",
                                   "--max-videos", ROBUST_VIDEOS, "--square-queries", SQUARE_QUERIES,
                                   "--sanity-n", "128", "--out", robust, "--quiet"),
                        robust / "results.json", ckpt))
        if name in FFPP_ROBUST:
            ffpp_robust = OUT / name / "eval_ffpp_robust"
            out.append((f"evaluate {name} (robust, FF++ dev faces)",
                        deepshield("evaluate", "--checkpoint", ckpt, "--dataset",
                                   f"catalog:{FFPP_FACES / 'catalog.csv'}", "--attacks", "fgsm,pgd,apgd",
                                   "--eps", FFPP_EPS, "--steps", "20", "--square-queries", SQUARE_QUERIES,
                                   "--sanity-n", "128", "--out", ffpp_robust, "--quiet"),
                        ffpp_robust / "results.json", ckpt))
        out.append((f"predict FF++ dev videos with {name}",
                    deepshield("predict", FFPP, "--checkpoint", ckpt, "--json"),
                    OUT / name / "ffpp_predict.json", ckpt))
    return out


def stage_recipe(name: str) -> str | None:
    """The recipe a stage belongs to (its name contains the recipe name as a word), or None."""
    return next((w for w in name.replace("(", " ").split() if w in RECIPES), None)


def run_stages(timings: dict, only: set[str] | None = None) -> None:
    """Run the stages (all, or those of the recipes ``only``), skipping the ones already done."""
    for name, cmd, output, source in stages():
        if only is not None and stage_recipe(name) not in only:
            continue
        if output is not None and output.is_file() and source is not None and source.is_file() \
                and output.stat().st_mtime > source.stat().st_mtime:
            print(f"== {name}: done ({output})", flush=True)
            continue
        print(f"== {name}\n   {shlex.join(cmd)}", flush=True)
        earlier = _resumed_seconds(name)
        trained_before = _last_checkpoint_time(name)
        start = time.perf_counter()
        try:
            if output is not None and output.suffix == ".json" and "predict" in name:
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode not in (0, 3):
                    sys.exit(f"{name} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
                write_text_atomic(output, proc.stdout)
            else:
                subprocess.run(cmd, check=True)
        except BaseException:  # interrupted or failed: a resumed run adds this attempt's time
            _save_partial(name, earlier + time.perf_counter() - start)
            raise
        _save_partial(name, None)
        if trained_before is not None and _last_checkpoint_time(name) == trained_before and name in timings:
            continue  # a finished training resumed with nothing left to train: keep the time it took
        timings[name] = round(earlier + time.perf_counter() - start, 1)  # this run only (plus its resumes)
        _save_json(OUT / "timings.json", timings)
    timed = "predict one 720p video" in timings and (OUT / "predict_time.json").is_file()
    if only is None and not timed:
        timings["predict one 720p video"] = time_predict()


def _resumed_seconds(name: str) -> float:
    """Seconds spent by interrupted attempts this stage resumes (training with a ``last.pt``), else 0."""
    if _last_checkpoint_time(name) is None:
        return 0.0
    return float((_load(PARTIAL) or {}).get(name, 0.0))


def _last_checkpoint_time(name: str) -> float | None:
    """For a training stage, the modification time of its run's last.pt (None: none yet, or not training)."""
    recipe = stage_recipe(name)
    path = OUT / str(recipe) / "last.pt"
    return path.stat().st_mtime if name.startswith("train ") and recipe and path.is_file() else None


def _save_partial(name: str, seconds: float | None) -> None:
    """Record (or, with None, clear) the time an interrupted stage has spent so far."""
    partial = _load(PARTIAL) or {}
    if seconds is None:
        partial.pop(name, None)
    else:
        partial[name] = round(seconds, 1)
    _save_json(PARTIAL, partial)


def time_predict() -> float:
    """Wall time of one ``deepshield predict`` process (start-up included) on a 12 s 720p video."""
    cmd = deepshield("predict", PREDICT_VIDEO, "--checkpoint", PREDICT_MODEL)
    subprocess.run(cmd, capture_output=True)  # warm the file cache
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    seconds = round(time.perf_counter() - start, 2)
    _save_json(OUT / "predict_time.json", {"command": shlex.join(cmd), "seconds": seconds})
    return seconds


def _save_json(path: Path, obj: dict) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1))


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _result(path: Path) -> EvalResult | None:
    """An evaluation's results.json as an ``EvalResult``, or None when it has not run."""
    from deepshield.evaluation.results import EvalResult

    d = _load(path)
    return None if d is None else EvalResult.from_json(d, source=str(path), out=path.parent)


# --- RESULTS.md -------------------------------------------------------------------------------------


def _f(v: float | None, digits: int = 3) -> str:
    return "—" if v is None or v != v else f"{v:.{digits}f}"


def _machine() -> str:
    import torch

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    flags = Path("/proc/cpuinfo").read_text()
    bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU only)"
    return (f"{cpu}, {os.cpu_count()} cores, native bf16: {'yes' if bf16 else 'no'}; GPU: {gpu}; "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def _ffpp_auc(pred: dict | None) -> tuple[float | None, list[tuple[str, int, float | None]]]:
    from sklearn.metrics import roc_auc_score

    if not pred:
        return None, []
    rows = []
    for r in pred["results"]:
        label = 0 if "original_sequences" in r["path"] else 1
        parts = r["path"].split("/")  # .../<method>/c23/videos/<file>
        name = f"{'original' if label == 0 else parts[-4]}/{parts[-1]}"
        rows.append((name, label, r["p_fake"]))
    scored = [(lab, p) for _, lab, p in rows if p is not None]
    if len({a for a, _ in scored}) < 2:
        return None, rows
    auc = roc_auc_score([a for a, _ in scored], [p for _, p in scored])
    return auc, rows


def _ffpp_method_auc(rows: list[tuple[str, int, float | None]]) -> dict[str, float | None]:
    """Video AUC of each FF++ method's fake videos against all the real ones (None when unscored)."""
    from sklearn.metrics import roc_auc_score

    out: dict[str, float | None] = {}
    for method in FFPP_METHODS:
        picked = [(lab, p) for name, lab, p in rows
                  if p is not None and (lab == 0 or name.startswith(f"{method}/"))]
        labels = [lab for lab, _ in picked]
        out[method] = roc_auc_score(labels, [p for _, p in picked]) if len(set(labels)) == 2 else None
    return out


def _acc(res: EvalResult, attack: str, eps255: float) -> float | None:
    """Accuracy of ``res``'s sweep row (attack, ε in 1/255 steps); None without that row."""
    rows = [r for r in res.sweep.robust if r.attack == attack and abs(r.eps_255 - eps255) < 1e-6]
    return rows[0].metrics.acc if rows else None


def write_results(timings: dict) -> Path:
    from deepshield.evaluation.tables import checks_markdown, detail_markdown

    catalog = OUT / "faces" / "catalog.csv"
    splits: dict[str, list[int]] = {}
    if catalog.is_file():
        import csv

        with catalog.open() as f:
            for row in csv.DictReader(f):
                splits.setdefault(row["split"], [0, 0])[int(row["label"])] += 1
    errors = max(0, len((OUT / "faces" / "errors.csv").read_text().splitlines()) - 1) \
        if (OUT / "faces" / "errors.csv").is_file() else 0
    clean = {n: _result(OUT / n / "eval_test_all" / "results.json") for n in RECIPES}
    robust = {n: _result(OUT / n / "eval_test_robust" / "results.json") for n in RECIPES}
    ffpp = {n: _ffpp_auc(_load(OUT / n / "ffpp_predict.json")) for n in RECIPES}
    train_metrics = {n: [json.loads(ln) for ln in (OUT / n / "metrics.jsonl").read_text().splitlines()]
                     if (OUT / n / "metrics.jsonl").is_file() else [] for n in RECIPES}
    total_s = sum(v for k, v in timings.items() if k != "predict one 720p video")
    predict_s = timings.get("predict one 720p video")
    lines = [
        "# Results on real faces",
        "",
        "Written by `make results` (`scripts/results.py`); every number below comes from the files it "
        "writes under `runs/results/`. Rerun it to reproduce them (it resumes where it stopped).",
        "",
        f"- **Machine**: {_machine()}.",
        f"- **Wall time** of the stages that ran: {total_s / 60:.1f} min "
        f"(per stage below; recorded in `runs/results/timings.json`).",
        f"- **Date**: {time.strftime('%Y-%m-%d')}.",
        "",
        "## Data",
        "",
        "- `../shared/data/dev/dfdc_faces`: 24,000 face crops from the DFDC training set (12,000 real, "
        "12,000 fake; DFDC research-only terms). Preprocessed with "
        "`--layout faces --margin 0.7 --shift 0.1`: "
        "MTCNN re-detects each face and the crop is cut with the same geometry predict uses on video frames "
        f"(see the README's *Face crops* section). {errors} images had no face above 0.9 confidence and are "
        "listed in `runs/results/faces/errors.csv`.",
        "- Splits are group-disjoint (a real video and the fakes made from it share a split, assigned by a "
        "hash of the source video): "
        + ", ".join(f"{k} {v[0]:,} real / {v[1]:,} fake" for k, v in sorted(splits.items())) + ".",
        "- Cross-dataset check: the 7 FaceForensics++ c23 dev videos (3 real, 4 fake: Deepfakes, Face2Face, "
        "FaceSwap, NeuralTextures), scored by `deepshield predict` on the video files. 7 videos is a sanity "
        "check, not a benchmark.",
        "",
        "## Models",
        "",
        "| recipe | objective | epochs | train images/s | val AUC | val PGD acc (train ε, 3 steps) |",
        "|---|---|---|---|---|---|",
    ]
    for n in RECIPES:
        m = train_metrics[n]
        last = m[-1] if m else {}
        best = max(m, key=lambda r: r.get("val_robust_score", r.get("val_auc", 0))) if m else {}
        lines.append(f"| `recipes/{n}.yaml` | {_recipe_objective(n)} | {len(m)} | "
                     f"{_f(last.get('images_per_s'), 1)} | {_f(best.get('val_auc'))} | "
                     f"{_f(best.get('val_pgd_acc'))} |")
    lines += ["", "## Clean detection on the whole test split", "",
              "| model | faces | acc | AUC | AP | EER | FGSM 1/255 acc | FGSM 2/255 acc | FGSM 4/255 acc |",
              "|---|---|---|---|---|---|---|---|---|"]
    for n in RECIPES:
        r = clean[n]
        if r:
            c = r.sweep.clean
            fg = [_acc(r, "fgsm", e) for e in (1, 2, 4)]
            cells = [str(c.n), _f(c.acc), _f(c.auc), _f(c.ap), _f(c.eer)]
            cells += [_f(x) for x in fg]
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", "One face per DFDC video, so frame and video level coincide here.", "",
              f"## Under attack ({ROBUST_VIDEOS} test faces, label-balanced, seeded)", "",
              "White-box FGSM, PGD-20 and APGD-CE (ART, 20 iterations), L∞, early stop on fooled samples; "
              "*worst-case* counts a face as robust only if every attack failed on it. Cells: accuracy / AUC "
              f"under attack. The black-box Square attack ({SQUARE_QUERIES} queries) runs in the sanity "
              "checks, at 4/255 on 128 of these faces.", ""]
    for n in RECIPES:
        if robust[n]:
            lines += [detail_markdown(n, robust[n]), ""]
    lines += ["### Sanity checks (Carlini et al. 2019)", "",
              checks_markdown({n: r for n, r in robust.items() if r}), ""]
    lines += ["## Cross-dataset: FF++ dev videos (`deepshield predict`)", "",
              "| video | label | " + " | ".join(RECIPES) + " |", "|---|---|" + "---|" * len(RECIPES)]
    names = [v for v, _, _ in next((rows for _, rows in ffpp.values() if rows), [])]
    for i, video in enumerate(names):
        label = ffpp[next(n for n in RECIPES if ffpp[n][1])][1][i][1]
        cells = [_f(ffpp[n][1][i][2]) if ffpp[n][1] else "—" for n in RECIPES]
        lines.append(f"| {video} | {'fake' if label else 'real'} | " + " | ".join(cells) + " |")
    lines.append("| **video AUC** | | " + " | ".join(_f(ffpp[n][0]) for n in RECIPES) + " |")
    lines += _cross_block()
    lines += sbi_section(clean, ffpp, train_metrics)
    lines += sbi_robust_section({n: _result(OUT / n / "eval_ffpp_robust" / "results.json")
                                 for n in FFPP_ROBUST})
    lines += _frontier_block()
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    lines += _targets(clean, robust, total_s, predict_s)
    lines += ["", "## Notes", "", *NOTES]
    lines += ["", "## Commands and wall time", "", "| stage | seconds | command |", "|---|---|---|"]
    for name, cmd, _, _ in stages():
        lines.append(f"| {name} | {_f(timings.get(name), 0)} | `{_short(cmd)}` |")
    lines.append(f"| predict one 720p video (12.4 s, default settings, start-up included) | "
                 f"{_f(predict_s, 1)} | `deepshield predict {PREDICT_VIDEO} --checkpoint {PREDICT_MODEL}` |")
    path = ROOT / "RESULTS.md"
    return write_text_atomic(path, "\n".join(lines) + "\n")


def _cross_block() -> list[str]:
    """The *Cross-dataset* section of ``scripts/cross_dataset.py``, kept as it stands in RESULTS.md."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from cross_dataset import END, START

    path = ROOT / "RESULTS.md"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if START not in text or END not in text:
        return []
    return ["", START + text.split(START, 1)[1].split(END, 1)[0] + END]


def _frontier_block() -> list[str]:
    """The *Robustness–accuracy frontier* section (``make frontier`` writes it): rebuilt from
    runs/frontier when its outputs are here, else kept as it stands in RESULTS.md."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from frontier import OUT as FRONTIER
    from frontier import RUNS
    from frontier_report import collect, kept_block, section

    rows = collect(FRONTIER, RUNS)
    if rows:
        from frontier_findings import FINDINGS

        return ["", *section(rows, FINDINGS)]
    path = ROOT / "RESULTS.md"
    block = kept_block(path.read_text(encoding="utf-8")) if path.is_file() else None
    return ["", block] if block else []


NOTES = [
    "- The standard model here was the bundled `default` until 2026-12-05; the default is now its fine-tune "
    "on DFDC + FF++ + SBI (*Cross-dataset* section; its model card, "
    "`src/deepshield/models/weights/MODEL_CARD.md`, says why).",
    "- Stage times are those of each stage's last complete run (a resumed training adds the time of the "
    "attempts it continues). The stages shared the 2 cores with development work (tests, editing) at times, "
    "so they are upper bounds.",
    "- Not counted: two earlier robust sweeps of the standard model with Square inside the sweep (300 faces "
    "and 200 Square queries, then 200 faces and 100 queries) were stopped after 28 and 11 min; ART's Square "
    "queries every remaining face at each iteration, so Square now runs in the sanity check only. A TRADES "
    "recipe (ε = 1/255) was started and stopped for lack of CPU time in the session; it is not in the "
    "repository.",
    "- On the FF++ videos the adversarially trained models score every video within a few hundredths of 0.5: "
    "their video AUC there ranks near-constant scores and says little; 7 videos cannot separate the models.",
    "- No GPU was lent to this run: everything above ran on the CPU at 128 px.",
    "- SBI schedules are short: `dfdc-faces-sbi` and `dfdc-faces-sbi+fakes` train 2 epochs (over all 9,636 "
    "training reals; sbi+fakes over the whole training split, half its fake samples pseudo-fakes) against 4 "
    "epochs for the standard model; the paper trains 100. The SBI models use the `platform` augmentations "
    "(JPEG, downscale, noise, blur, real H.264), the standard one the `faces` augmentations.",
    "- `dfdc-faces-sbi-pgd-at` fine-tunes `dfdc-faces-sbi` with 2-step PGD-AT for 2 epochs over 3,000 real "
    "videos, ε ramping 0.25 -> 0.5/255. A first run at 1 -> 2/255 (the budget of `dfdc-faces-pgd-at`) "
    "collapsed: validation accuracy 0.53 and AUC on pseudo-fakes 0.61, from 0.95 before adversarial "
    "training. At 0.5/255 it collapsed as well (its row above): no robust reals-only detector came out of "
    "these budgets.",
]


def sbi_section(clean: dict[str, EvalResult | None], ffpp: dict, train_metrics: dict) -> list[str]:
    """RESULTS.md lines comparing the SBI models with the standard one, in-domain and on FF++."""
    names = ["dfdc-faces-standard", *(n for n in SBI_RECIPES if clean.get(n) or ffpp[n][1])]
    lines = ["", "## Training from real videos only (self-blended fakes)", "",
             "SBI pseudo-fakes (Shiohara & Yamasaki 2022; `deepshield train --pseudo-fakes sbi`, see the "
             "README) made on the fly from the DFDC real crops. *DFDC test AUC*: the whole test split, real "
             "DFDC fakes (in-domain for the standard model, unseen kinds of fakes for the reals-only one). "
             "*FF++*: `deepshield predict` on the 7 dev videos, video level; per method one fake video "
             "against the 3 reals, so a cell can only be 0, 0.33, 0.67 or 1: a sanity check, not a "
             "benchmark.", "",
             "| model | fakes seen in training | epochs | DFDC test AUC | FF++ video AUC (7) | "
             + " | ".join(FFPP_METHODS) + " |",
             "|---|---|---|---|---|" + "---|" * len(FFPP_METHODS)]
    for n in names:
        auc = clean[n].sweep.clean.auc if clean.get(n) else None
        per = _ffpp_method_auc(ffpp[n][1])
        lines.append(f"| {n} | {_fakes_seen(n)} | {len(train_metrics.get(n, []))} | {_f(auc)} | "
                     f"{_f(ffpp[n][0])} | " + " | ".join(_f(per[m], 2) for m in FFPP_METHODS) + " |")
    lines += ["", "The validation AUC of a reals-only SBI run (models table) is measured on pseudo-fakes of "
              "the validation reals, not on DFDC fakes, so it is not comparable with the other rows. Recipes "
              "and their budgets (epochs, subset sizes) are in `recipes/dfdc-faces-sbi*.yaml`."]
    return lines


def sbi_robust_section(runs: dict[str, EvalResult | None]) -> list[str]:
    """RESULTS.md lines: the reals-only models under attack on the FF++ dev faces (where they detect)."""
    from deepshield.evaluation.tables import checks_markdown, detail_markdown

    done = {n: r for n, r in runs.items() if r}
    if not done:
        return []
    lines = ["", "### Reals-only models under attack (FF++ dev faces)", "",
             "The same sweep as above (FGSM, PGD-20, APGD-CE, L∞, early stop; Square in the sanity checks), "
             "on every face of the 7 FF++ dev videos (`deepshield preprocess`, 32 frames a video, the DFDC "
             "crop settings): the reals-only models detect there, while on DFDC's fakes they are near "
             "chance. 7 videos, 224 faces: a sanity check of what adversarial training does to a "
             "reals-only detector, not a benchmark.", ""]
    for n, r in done.items():
        lines += [detail_markdown(n, r), ""]
    return lines + [checks_markdown(done), ""]


def _fakes_seen(name: str) -> str:
    from deepshield.config import load_recipe

    r = load_recipe(ROOT / "recipes" / f"{name}.yaml")
    if not r.get("pseudo_fakes"):
        return "DFDC fakes"
    ratio = float(r.get("pseudo_fake_ratio", 1.0))
    return f"{r['pseudo_fakes'].upper()} only" if ratio >= 1 else \
        f"{ratio:.0%} {r['pseudo_fakes'].upper()}, {1 - ratio:.0%} DFDC fakes"


def _recipe_objective(name: str) -> str:
    from deepshield.config import load_recipe

    r = load_recipe(ROOT / "recipes" / f"{name}.yaml")
    pseudo = f"; {_fakes_seen(name)}" if r.get("pseudo_fakes") else ""
    if r.get("adv", "none") == "none":
        return "standard (cross-entropy)" + pseudo
    steps = f", {r['steps']} steps" if r["adv"] != "fgsm-rs" else ""
    return f"{r['adv']} at ε = {r['eps'] * 255:.3g}/255{steps}" + pseudo


def _targets(clean: dict[str, EvalResult | None], robust: dict[str, EvalResult | None], total_s: float,
             predict_s: float | None) -> list[str]:
    def mark(ok: bool | None) -> str:
        return "—" if ok is None else ("yes" if ok else "**no (missed)**")

    std, rob = clean.get("dfdc-faces-standard"), clean.get("dfdc-faces-pgd-at")
    std_r, rob_r = robust.get("dfdc-faces-standard"), robust.get("dfdc-faces-pgd-at")
    std_auc = std.sweep.clean.auc if std else None
    rob_auc = rob.sweep.clean.auc if rob else None
    rob_pgd = _acc(rob_r, "pgd", 2) if rob_r else None
    std_pgd = _acc(std_r, "pgd", 2) if std_r else None
    checks = all(c.passed for c in rob_r.checks) if rob_r else None
    t = TARGETS
    return [
        f"| standard model: frame AUC ≥ {t['standard_auc']} | {_f(std_auc)} | "
        f"{mark(None if std_auc is None else std_auc >= t['standard_auc'])} |",
        f"| robust model (PGD-AT): clean AUC ≥ {t['robust_auc']} | {_f(rob_auc)} | "
        f"{mark(None if rob_auc is None else rob_auc >= t['robust_auc'])} |",
        f"| robust model: PGD-20 accuracy ≥ {t['robust_pgd2']:.0%} at 2/255 | {_f(rob_pgd)} | "
        f"{mark(None if rob_pgd is None else rob_pgd >= t['robust_pgd2'])} |",
        f"| standard model: PGD-20 accuracy ≤ {t['standard_pgd2']:.0%} at 2/255 | {_f(std_pgd)} | "
        f"{mark(None if std_pgd is None else std_pgd <= t['standard_pgd2'])} |",
        f"| robust model: all sanity checks pass | {'all pass' if checks else 'see above'} | "
        f"{mark(checks)} |",
        f"| `make results` ≤ {t['results_min']} min on 2 CPU cores | {total_s / 60:.1f} min | "
        f"{mark(total_s / 60 <= t['results_min'])} |",
        f"| predict a 10 s 720p video ≤ {t['predict_s']} s on 2 cores | "
        f"{_f(predict_s, 1)} s (a 12.4 s video) | "
        f"{mark(None if predict_s is None else predict_s <= t['predict_s'])} |",
    ]


def _short(cmd: list[str]) -> str:
    return shlex.join(["deepshield", *cmd[1:]])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only-report", action="store_true", help="rewrite RESULTS.md from runs/results")
    parser.add_argument("--recipes", default=None,
                        help="comma-separated recipe names: run only their stages (default: every stage)")
    args = parser.parse_args()
    only = set(args.recipes.split(",")) if args.recipes else None
    if only and (unknown := only - set(RECIPES)):
        sys.exit(f"unknown recipe(s) {sorted(unknown)}; choose from {', '.join(RECIPES)}")
    os.chdir(ROOT)
    if not DFDC.is_dir():
        sys.exit(f"{DFDC.resolve()}: not found; make results needs ../shared/data/dev beside the checkout")
    timings = _load(OUT / "timings.json") or {}
    if not args.only_report:
        run_stages(timings, only)
        _save_json(OUT / "timings.json", timings)
    print(f"wrote {write_results(timings)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
