"""Cross-dataset benchmark: how each detector does on the data it was not trained on (issue 21).

Stages (each resumes; ``--stage`` runs one):

1. ``prepare``: preprocess the FF++ dev videos (``ffpp`` + ``ffpp_extra``: 96 videos, 32 frames each) with
   the crop settings of the bundled models, and write 3 group-disjoint folds of them
   (``deepshield.data.folds``: a person never on both sides). DFDC faces come from ``make results``
   (``runs/results/faces``; preprocessed here when missing).
2. ``train``: the recipes of ``recipes/cross/`` (``deepshield train --config ... --resume``).
3. ``score``: every model's fake probability on every DFDC test face and every FF++ frame it did not
   train on (cached in ``runs/cross/scores/``).
4. ``report``: the *Cross-dataset* section of RESULTS.md (between its markers) and ``runs/cross/cross.json``.

A *model* here is a recipe measured by its folds: FF++ figures of a k-fold model pool the held-out folds
(each video scored by the one model that never saw its people); its DFDC figures average its fold models.

    python scripts/cross_dataset.py                  # everything that is missing
    python scripts/cross_dataset.py --stage report   # rewrite the section from runs/cross
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepshield.io import write_text_atomic

ROOT = Path(__file__).resolve().parent.parent
OUT = Path("runs/cross")
DEV = Path("../shared/data/dev")
FFPP_ROOTS = ("ffpp", "ffpp_extra")
DFDC_CATALOG = Path("runs/results/faces/catalog.csv")
FOLDS, K = OUT / "folds", 3
FRAMES = 32
CROP = ("--margin", "0.7", "--shift", "0.1", "--frames-per-video", str(FRAMES), "--format", "jpg")
WEIGHTS = ROOT / "src/deepshield/models/weights"
METHODS = ("Deepfakes", "FaceSwap", "Face2Face", "NeuralTextures", "FaceShifter", "DeepFakeDetection")
PREVIOUS_DEFAULT = "4e43b35"  # the last commit whose bundled default.pt is the DFDC-only model
START, END = "<!-- cross-dataset:start (scripts/cross_dataset.py writes this section) -->", \
    "<!-- cross-dataset:end -->"


@dataclass(frozen=True)
class Model:
    """A row of the table: checkpoints (one, or one per fold: FF++ fold i held out) and what it saw."""

    name: str
    trained_on: str
    checkpoints: tuple[str, ...]
    recipe: str | None = None          # recipes/cross/<recipe>{-fold0,...}.yaml trains it
    ffpp: str = "all"                  # which FF++ videos it is scored on: all | folds | none

    @property
    def folded(self) -> bool:
        return self.ffpp == "folds"


def _folds(recipe: str) -> tuple[str, ...]:
    return tuple(f"{OUT}/{recipe}-fold{i}/best.pt" for i in range(K))


MODELS = (
    # The bundled default until issue 21 (scripts/cross_dataset.py copies it here before it is replaced).
    Model("dfdc-only (previous default)", "DFDC", (f"{OUT}/dfdc-only/best.pt",)),
    Model("robust (bundled)", "DFDC, PGD-AT 1/255", (str(WEIGHTS / "robust.pt"),)),
    Model("ffpp-only", "FF++ (2 of 3 folds)", _folds("ffpp"), "ffpp", "folds"),
    Model("dfdc+ffpp", "DFDC + FF++ (2 of 3 folds)", _folds("dfdc+ffpp"), "dfdc+ffpp", "folds"),
    Model("dfdc+ffpp+sbi", "DFDC + FF++ (2 of 3 folds) + SBI of their FF++ reals", _folds("dfdc+ffpp+sbi"),
          "dfdc+ffpp+sbi", "folds"),
    # The bundled default: the pick's recipe on every FF++ video (dfdc+ffpp-all), its threshold calibrated
    # on the real validation videos (calibrate_default, below), then scripts/bundle.py.
    Model("default (bundled) = dfdc+ffpp-all", "DFDC + all 96 FF++ videos",
          (f"{OUT}/default/best.pt",), "dfdc+ffpp-all", "none"),
)


def run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def deepshield(*args: str) -> list[str]:
    return [sys.executable, "-m", "deepshield", *args]


# --- stages ---------------------------------------------------------------------------------------------


def prepare() -> None:
    """Crops of the FF++ dev videos and their folds; the DFDC crops when ``make results`` has not run; the
    DFDC-only model (the previous bundled default, from the git history when it is not here)."""
    from deepshield.data.folds import write_folds

    previous = OUT / "dfdc-only/best.pt"
    if not previous.is_file():
        previous.parent.mkdir(parents=True, exist_ok=True)
        with previous.open("wb") as f:
            subprocess.run(["git", "show", f"{PREVIOUS_DEFAULT}:src/deepshield/models/weights/default.pt"],
                           stdout=f, check=True, cwd=ROOT)

    for name in FFPP_ROOTS:
        if not (OUT / name / "catalog.csv").is_file():
            run(deepshield("preprocess", str(DEV / name), "--layout", "ffpp", "--out", str(OUT / name), *CROP,
                           "--workers", "2", "--quiet"))
    if not (FOLDS / "folds.json").is_file():
        write_folds([OUT / n / "catalog.csv" for n in FFPP_ROOTS], K, FOLDS)
    if not DFDC_CATALOG.is_file():
        run(deepshield("preprocess", str(DEV / "dfdc_faces"), "--layout", "faces", "--out",
                       str(DFDC_CATALOG.parent), "--margin", "0.7", "--shift", "0.1", "--format", "jpg",
                       "--workers", "2", "--quiet"))


def calibrate_default() -> None:
    """The shipped default's threshold: EER of the real validation videos (DFDC val, FF++ val of ``all``)."""
    out = OUT / "default/best.pt"
    src = OUT / "dfdc+ffpp-all/best.pt"
    if src.is_file() and (not out.is_file() or out.stat().st_mtime < src.stat().st_mtime):
        out.parent.mkdir(parents=True, exist_ok=True)
        run(deepshield("calibrate", "--checkpoint", str(src), "--dataset", f"catalog:{DFDC_CATALOG}:val",
                       "--dataset", f"catalog:{FOLDS}/all/catalog.csv:val", "--rule", "eer",
                       "--out", str(out)))
        print(f"bundle it with: python scripts/bundle.py {out}")


def train(only: set[str] | None) -> None:
    for model in MODELS:
        if model.recipe is None or (only and model.name not in only):
            continue
        names = [f"{model.recipe}-fold{i}" for i in range(K)] if model.folded else [model.recipe]
        for name in names:
            if not Path(f"{OUT}/{name}/best.pt").is_file() or _unfinished(Path(f"{OUT}/{name}")):
                run(deepshield("train", "--config", f"recipes/cross/{name}.yaml", "--resume", "--quiet"))


def _unfinished(run_dir: Path) -> bool:
    config_path, metrics = run_dir / "config.json", run_dir / "metrics.jsonl"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    lines = metrics.read_text().splitlines() if metrics.is_file() else []
    return len([x for x in lines if x.strip()]) < int(config.get("epochs", 0))


def score_catalog(checkpoint: str, catalog: Path, split: str | None) -> dict[str, np.ndarray]:
    """Fake probability of every crop of ``catalog`` (one split or all): probs, labels, videos, methods."""
    import torch
    from torch.utils.data import DataLoader

    from deepshield.data.datasets import FaceCatalogDataset
    from deepshield.models.loading import load_model_and_config
    from deepshield.runtime import eval_mode, fake_probs

    model, config, _ = load_model_and_config(checkpoint, torch.device("cpu"))
    ds = FaceCatalogDataset(catalog, split=split, image_size=config.image_size, sampling="uniform")
    probs, labels, videos = [], [], []
    with torch.inference_mode(), eval_mode(model):
        for x, y, v in DataLoader(ds, batch_size=128):
            probs.append(fake_probs(model, x).numpy())
            labels.append(y.numpy())
            videos += list(v)
    return {"probs": np.concatenate(probs), "labels": np.concatenate(labels), "videos": np.array(videos),
            "methods": np.array([ds.video_methods[v] for v in videos])}


def score(only: set[str] | None) -> None:
    (OUT / "scores").mkdir(parents=True, exist_ok=True)
    for model in MODELS:
        if only and model.name not in only:
            continue
        for i, ckpt in enumerate(model.checkpoints):
            if not Path(ckpt).is_file():
                print(f"(skip {model.name}: {ckpt} not trained yet)")
                continue
            tag = _tag(ckpt)
            jobs = {"dfdc": (DFDC_CATALOG, "test")}
            if model.ffpp == "all":
                jobs["ffpp"] = (FOLDS / "all/catalog.csv", None)
            elif model.folded:
                jobs["ffpp"] = (FOLDS / f"fold{i}/catalog.csv", "test")
            for data, (catalog, split) in jobs.items():
                path = OUT / "scores" / f"{tag}.{data}.npz"
                if path.is_file() and path.stat().st_mtime > Path(ckpt).stat().st_mtime:
                    continue
                t0 = time.perf_counter()
                arrays = score_catalog(ckpt, catalog, split)
                np.savez(path, **arrays)
                seconds = time.perf_counter() - t0
                print(f"scored {ckpt} on {data}: {len(arrays['probs'])} crops in {seconds:.0f} s")


def _tag(ckpt: str) -> str:
    path = Path(ckpt)
    return path.stem if path.parent == WEIGHTS else path.parent.name


# --- the table ------------------------------------------------------------------------------------------


def _load(ckpt: str, data: str) -> dict[str, np.ndarray] | None:
    path = OUT / "scores" / f"{_tag(ckpt)}.{data}.npz"
    return dict(np.load(path)) if path.is_file() else None


@functools.cache
def _threshold(ckpt: str) -> float:
    """The checkpoint's calibrated threshold (0.5 when it has none)."""
    import torch

    config = torch.load(ckpt, map_location="cpu", weights_only=True).get("config", {})
    value = (config.get("threshold") or {}).get("value")
    return 0.5 if value is None else float(value)


def video_scores(arrays: dict[str, np.ndarray], how: str = "mean") -> dict[str, np.ndarray]:
    from deepshield.contracts.aggregate import aggregate_videos

    labels, probs, vids = aggregate_videos(arrays["labels"], arrays["probs"], list(arrays["videos"]), how)
    method = dict(zip(arrays["videos"], arrays["methods"], strict=True))
    return {"labels": labels, "probs": probs, "videos": np.array(vids),
            "methods": np.array([method[v] for v in vids])}


def ffpp_metrics(arrays: dict[str, np.ndarray], thresholds: np.ndarray) -> dict:
    """Video AUC (mean of 32 frames) overall and per method, frame AUC, accuracy at each video's model
    threshold, TPR at 1% and 5% FPR (video level)."""
    from sklearn.metrics import roc_auc_score

    from deepshield.evaluation.metrics import tpr_at_fpr

    video = video_scores(arrays)
    y, p = video["labels"], video["probs"]
    out = {"videos": int(len(y)), "reals": int((y == 0).sum()), "frames": int(len(arrays["probs"])),
           "video_auc": float(roc_auc_score(y, p)),
           "frame_auc": float(roc_auc_score(arrays["labels"], arrays["probs"])),
           "acc": float(((p >= thresholds[video["videos"]]) == y).mean()) if len(thresholds) else None,
           "tpr_1fpr": tpr_at_fpr(y, p, 0.01)[0], "tpr_5fpr": tpr_at_fpr(y, p, 0.05)[0], "methods": {}}
    for m in METHODS:
        keep = (y == 0) | (video["methods"] == m)
        if (video["methods"] == m).any():
            out["methods"][m] = {"auc": float(roc_auc_score(y[keep], p[keep])),
                                 "n": int((video["methods"] == m).sum())}
    return out


def model_row(model: Model) -> dict | None:
    """The table row of a model from its cached scores (None when nothing is scored yet)."""
    from sklearn.metrics import roc_auc_score

    ckpts = [c for c in model.checkpoints if Path(c).is_file() and _load(c, "dfdc") is not None]
    if not ckpts:
        return None
    row: dict = {"name": model.name, "trained_on": model.trained_on, "checkpoints": ckpts}
    dfdc = [_load(c, "dfdc") for c in ckpts]
    row["dfdc_auc"] = float(np.mean([roc_auc_score(d["labels"], d["probs"]) for d in dfdc]))
    row["dfdc_acc"] = float(np.mean([((d["probs"] >= _threshold(c)) == d["labels"]).mean()
                                     for c, d in zip(ckpts, dfdc, strict=True)]))
    parts = [(c, a) for c in ckpts if (a := _load(c, "ffpp")) is not None]
    if model.ffpp != "none" and parts and (not model.folded or len(parts) == K):
        pooled = {k: np.concatenate([a[k] for _, a in parts]) for k in parts[0][1]}
        thresholds = {v: _threshold(c) for c, a in parts for v in a["videos"]}
        row["ffpp"] = ffpp_metrics(pooled, _ThresholdOf(thresholds))
        if model.folded:
            row["ffpp"]["fold_aucs"] = [ffpp_metrics(a, _ThresholdOf({}))["video_auc"] for _, a in parts]
    if model.folded and "ffpp" not in row:
        row["ffpp_pending"] = f"{len(parts)} of {K} folds scored"
    if model.ffpp == "none":
        row["ffpp_pending"] = "trained on every FF++ video"
    row["thresholds"] = [_threshold(c) for c in ckpts]
    return row


class _ThresholdOf:
    """``thresholds[video_ids]`` -> array (0.5 for unknown videos); ``len`` 0 means "no accuracy"."""

    def __init__(self, by_video: dict[str, float]) -> None:
        self.by_video = by_video

    def __getitem__(self, videos: np.ndarray) -> np.ndarray:
        return np.array([self.by_video.get(str(v), 0.5) for v in videos])

    def __len__(self) -> int:
        return len(self.by_video)


def _f(v: float | None, digits: int = 3) -> str:
    return "—" if v is None or v != v else f"{v:.{digits}f}"


def section(rows: list[dict]) -> list[str]:
    """The RESULTS.md section."""
    head = ["| model | trained on | DFDC test AUC (frame) | DFDC acc | FF++ video AUC | FF++ frame AUC | "
            "FF++ video acc | TPR@1%FPR | TPR@5%FPR | " + " | ".join(METHODS) + " | FF++ videos |",
            "|---|---|---|---|---|---|---|---|---|" + "---|" * len(METHODS) + "---|"]
    lines = []
    for r in rows:
        f = r.get("ffpp")
        cells = [r["name"], r["trained_on"], _f(r["dfdc_auc"]), _f(r["dfdc_acc"])]
        if f:
            folds = f" ({', '.join(_f(a, 2) for a in f['fold_aucs'])})" if "fold_aucs" in f else ""
            cells += [f"**{_f(f['video_auc'])}**{folds}", _f(f["frame_auc"]), _f(f["acc"]), _f(f["tpr_1fpr"]),
                      _f(f["tpr_5fpr"])]
            cells += [_f(f["methods"].get(m, {}).get("auc"), 2) for m in METHODS]
            cells.append(f"{f['videos']} ({f['reals']} real)")
        else:
            cells += [f"— ({r.get('ffpp_pending', 'not scored')})"] + ["—"] * (4 + len(METHODS)) + ["—"]
        lines.append("| " + " | ".join(cells) + " |")
    return [START, "## Cross-dataset: DFDC and the 96 FF++ dev videos", "", *INTRO, "", *head, *lines, "",
            *NOTES, *temporal_block(), END]


TEMPORAL = {"default": "the DFDC-only frame model (previous default)",
            "dfdc+ffpp+sbi": "the dfdc+ffpp+sbi fold models (each fold's own)"}


def temporal_block() -> list[str]:
    """The *Judging whole videos* tables of ``scripts/temporal.py`` (runs/temporal/<model>/temporal.md)."""
    found = [(k, Path("runs/temporal") / k / "temporal.md") for k in TEMPORAL]
    found = [(k, p) for k, p in found if p.is_file()]
    if not found:
        return []
    lines = ["", "### Judging whole videos: aggregations and a temporal head at equal compute", "",
             *TEMPORAL_INTRO]
    for key, path in found:
        cmd = f"'runs/cross/{key}-fold{{fold}}/best.pt'"
        cmd = "runs/cross/dfdc-only/best.pt" if key == "default" else cmd
        lines += ["", f"On {TEMPORAL[key]} (`python scripts/temporal.py --checkpoint {cmd} --out "
                      f"runs/temporal/{key}`):", "", path.read_text(encoding="utf-8").strip()]
    return lines + ["", *TEMPORAL_FINDINGS]


TEMPORAL_INTRO = [
    "The same 16 evenly spaced frames per video and one frame-model pass per frame for every row; pooled "
    "out-of-fold video AUC over the 3 folds, Δ against the plain mean with a 95% paired bootstrap interval. "
    "*head*: a 1-D convolution over time on the frame model's pooled embeddings and log-odds, with a "
    "residual on the mean log-odds (at initialisation it equals `mean_logodds`), trained on each fold's "
    "training videos with early stopping on its validation videos (`deepshield.models.temporal`); "
    "*head_no_time*: the same head with kernel 1 (order ignored); *head_logodds_only*: on the frame "
    "log-odds alone.",
]
TEMPORAL_FINDINGS = [
    "**Frame averaging wins; no temporal model ships.** On the DFDC-only model the head gains +0.046 "
    "(CI +0.005 to +0.091), but the order-blind head gains more (+0.070), and a head on the log-odds "
    "alone gains nothing: that is a DFDC model adapted to FF++ by a head trained on FF++ embeddings, not "
    "time. Spending the same FF++ training videos on fine-tuning the frame model does better (0.822 pooled "
    "with plain `mean` for dfdc+ffpp+sbi, against 0.739 / 0.764 for the heads). On the fine-tuned models "
    "the heads learn nothing (+0.002): the frame model separates its own training videos perfectly (mean "
    "AUC 1.000 in every fold), so early stopping keeps the initial head. Measuring a head on top of a "
    "fine-tuned model would need the fine-tune nested inside each fold; not done. No aggregation beats "
    "`mean` by more than its noise (topk_logodds +0.013, CI -0.013 to +0.043), so `predict` keeps "
    "`--aggregate mean` and the issue's ≥ 0.03 target for a temporal model is **missed**: the table shows "
    "it does not help here.",
]


INTRO = [
    "`python scripts/cross_dataset.py` (resumable; it preprocesses, trains `recipes/cross/`, scores and "
    "writes this section). *DFDC test AUC*: the whole DFDC test split (2,287 faces of groups never seen in "
    "development; one face per video, so frame = video level). *FF++*: the 96 FF++ c23 dev videos "
    "(`ffpp` + `ffpp_extra`: 27 real; Deepfakes 25, Face2Face 15, FaceSwap 15, NeuralTextures 5, "
    "FaceShifter 4, DeepFakeDetection 5), 32 evenly spaced face crops per video cut with the models' crop "
    "settings (margin 0.7, shift 0.1). *Video AUC*: mean fake probability of the 32 frames; per method: that "
    "method's fakes against all reals. Models trained on FF++ are measured by 3-fold cross-validation with "
    "group-disjoint folds (a person, target or source of a swap, is never on both sides; "
    "`runs/cross/folds/folds.json`): every video is scored by the fold model that never saw its people, the "
    "pooled AUC is in bold and the three folds' own AUCs follow; their DFDC figures average the three fold "
    "models. *acc*: at each model's calibrated threshold (0.5 when it has none). TPR at 1% / 5% FPR: share "
    "of fake videos caught while at most 1% / 5% of the real videos are flagged (with 27 reals, 1% FPR means "
    "no real flagged).",
]
NOTES: list[str] = []
EXTRA_NOTES = [  # findings read off the table of the 2026-12-05 run (scripts/cross_dataset.py)
    "- **Every direction.** DFDC → FF++ (zero-shot, the previous default): 0.694, below the issue's 0.75 "
    "target (**missed**). FF++ → DFDC (`ffpp-only`, from ImageNet on 64 videos per fold): 0.577 on DFDC, "
    "and only 0.703 on held-out FF++ people: 64 videos are too few to learn FF++ alone. Mixtures → the "
    "held-out part of each: DFDC + FF++ (fine-tunes of the previous default) keeps DFDC at 0.929 and "
    "lifts FF++ to 0.862 pooled (folds 0.80, 0.78, 0.97). Adding SBI pseudo-fakes of the FF++ training "
    "reals gave 0.815 pooled (0.87, 0.80, 0.82) at DFDC 0.934: better on fold 0 (Face2Face 0.72 → 0.89), "
    "worse on fold 2; with 32 test videos per fold that difference is within fold-to-fold noise, and the "
    "rule takes the higher pooled figure. An SBI-only model was not retrained in this run (the older "
    "*Training from real videos only* section has DFDC-faces SBI models measured on the 7 FF++ videos "
    "only).",
    "- **Targets (issue 21).** Bundled default FF++ video AUC ≥ 0.90 on unseen groups: **missed** (its "
    "recipe: 0.862). DFDC test AUC ≥ 0.93: **missed** (0.927; the SBI mixture trained on all videos had "
    "0.932 but loses by the rule). Deepfakes / FaceSwap / Face2Face / NeuralTextures each ≥ 0.80: "
    "**missed** for NeuralTextures (0.96 / 0.85 / 0.87 / 0.53; NeuralTextures has 5 videos). Zero-shot ≥ "
    "0.75: **missed** (0.694).",
    "- **Thresholds.** *acc* uses each model's recorded threshold: the fold models' EER points of their "
    "validation videos (written by `deepshield train`; dfdc+ffpp-fold0 predates that and uses 0.5), the "
    "default's and robust's from `deepshield calibrate --rule eer` on the real validation videos (0.499 "
    "and 0.512); dfdc-only has none and uses 0.5. At its threshold the default flags 2 of the 8 FF++ "
    "validation reals and 16% of the DFDC ones.",
]


def choose(rows: list[dict]) -> tuple[dict | None, list[str]]:
    """The default-model rule (written in the model card): among the recipes measured on both datasets
    with data they never trained on, the highest worst-domain AUC, min(DFDC test AUC, FF++ video AUC);
    the bundled model is that recipe trained once more on every FF++ dev video. Returns (row, lines)."""
    scored = [(min(r["dfdc_auc"], r["ffpp"]["video_auc"]), r) for r in rows if r.get("ffpp")]
    if not scored:
        return None, []
    best = max(scored, key=lambda t: t[0])[1]
    ranking = ", ".join(f"{r['name']} {v:.3f}" for v, r in sorted(scored, key=lambda t: -t[0]))
    return best, [f"**Choosing the default.** Rule: the highest worst-domain AUC, min(DFDC test AUC, FF++ "
                  f"held-out video AUC), among the recipes measured on both. Worst-domain AUC: {ranking}. "
                  f"The pick is **{best['name']}**; the bundled `default` is its recipe trained on every "
                  "FF++ dev video (`recipes/cross/*-all.yaml`), so its own FF++ figure is the "
                  "cross-validated one of its recipe (the row above), and its DFDC figures are its own."]


def report() -> Path:
    rows = [r for m in MODELS if (r := model_row(m)) is not None]
    NOTES[:] = [*choose(rows)[1], "", *EXTRA_NOTES]
    write_text_atomic(OUT / "cross.json", json.dumps(rows, indent=2))
    block = "\n".join(section(rows))
    path = ROOT / "RESULTS.md"
    text = path.read_text(encoding="utf-8")
    if START in text and END in text:
        text = text[:text.index(START)] + block + text[text.index(END) + len(END):]
    else:
        anchor = "## Training from real videos only"
        text = text.replace(anchor, block + "\n\n" + anchor, 1) if anchor in text else text + "\n" + block
    write_text_atomic(path, text)
    print(block)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("all", "prepare", "train", "score", "report"), default="all")
    parser.add_argument("--only", help="comma-separated model names (train/score)")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    if args.stage in ("all", "prepare"):
        prepare()
    if args.stage in ("all", "train"):
        train(only)
        calibrate_default()
    if args.stage in ("all", "score"):
        score(only)
    if args.stage in ("all", "report"):
        report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
