"""``make frontier``: the robustness–accuracy frontier of adversarial training on the DFDC faces.

Controlled runs: every run fine-tunes the bundled ``default`` detector with the settings of
``recipes/frontier-base.yaml`` (same data subset, seed, schedule and budget) and changes ONE thing,
named in :data:`RUNS`. Each run is then evaluated the same way, on the test split (groups never seen
in development):

1. clean: every test face (accuracy, AUC, per direction);
2. under attack: FGSM, PGD-20 and APGD-CE at ε ∈ {0.5, 1, 2}/255 (L∞, early stop) on a seeded,
   label-balanced subset, with the sanity checks (Square, more steps and restarts, huge ε, gradients);
3. for adversarial runs, the validation attack checked: the trainer's PGD-10 accuracy on its validation
   subset beside PGD-20's on the same faces (does early stopping read a mirage?).

Writes ``runs/frontier/frontier.json``, ``frontier.md`` and the plot ``docs/frontier.png``, and the
*Robustness–accuracy frontier* section of RESULTS.md (between its markers; ``make results`` keeps it).
A rerun resumes: trainings resume from ``last.pt``; evaluations newer than their checkpoint are kept.

    python scripts/frontier.py [--only NAME,...] [--report-only]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from frontier_report import write_report  # noqa: E402

OUT = Path("runs/frontier")
BASE = "recipes/frontier-base.yaml"
CATALOG = Path("runs/results/faces/catalog.csv")
EPS = "0.5/255,1/255,2/255"
ROBUST_VIDEOS = 256
SQUARE_QUERIES = 100


@dataclass(frozen=True)
class Run:
    """One controlled run: the train flags that differ from the base recipe, and what it asks."""

    name: str
    flags: tuple[str, ...]
    question: str
    controlled: bool = True  # False: changes more than one thing (a candidate, not an ablation)


RUNS = (
    Run("control", ("--adv", "none"), "the identical fine-tune without attacks: does the schedule lose AUC?"),
    Run("pgd-1", (), "PGD-AT at ε = 1/255 (the base)"),
    Run("pgd-1-fp32", ("--no-amp",), "fp32 instead of bf16 autocast (attack gradients in full precision)"),
    Run("trades-1", ("--adv", "trades", "--trades-beta", "1"), "TRADES β = 1"),
    Run("pgd-1-silu", ("--act", "silu"), "smooth activation: ReLU6 → SiLU, fine-tuned"),
    Run("pgd-0.5", ("--eps", "0.5/255", "--alpha", "0.25/255"), "PGD-AT at ε = 0.5/255"),
    Run("n-fgsm-1", ("--adv", "n-fgsm", "--alpha", "1/255"), "N-FGSM (single step, noise 2ε, step ε)"),
    Run("pgd-1-silu-128", ("--act", "silu", "--image-size", "128", "--no-amp", "--max-train", "3000",
                           "--epochs", "2"),
        "SiLU PGD-AT at 128 px, fp32, 3,000 videos × 2 epochs: a candidate at the bundled model's "
        "resolution", controlled=False),
    Run("control-128", ("--adv", "none", "--image-size", "128"), "the control at 128 px"),
    Run("pgd-1-128", ("--image-size", "128"), "PGD-AT ε = 1/255 at 128 px"),
    Run("pgd-2", ("--eps", "2/255", "--alpha", "1/255"), "PGD-AT at ε = 2/255"),
    Run("pgd-1-bn-train", ("--adv-bn", "train"), "BatchNorm in train mode while crafting"),
    Run("pgd-0.25", ("--eps", "0.25/255", "--alpha", "0.125/255"), "PGD-AT at ε = 0.25/255"),
    Run("pgd-1-no-rs", ("--no-random-start",), "no random start"),
    Run("pgd-1-small-step", ("--alpha", "0.25/255"), "step ε/4 instead of ε/2 (2 steps reach only ε/2)"),
    Run("trades-3", ("--adv", "trades", "--trades-beta", "3"), "TRADES β = 3"),
    Run("pgd-1-tricks", ("--label-smoothing", "0.1", "--weight-decay", "5e-4"),
        "label smoothing 0.1 and weight decay 5e-4 (bag of tricks)"),
    Run("control-96", ("--adv", "none", "--image-size", "96"), "the control at 96 px"),
    Run("pgd-1-96", ("--image-size", "96"), "PGD-AT ε = 1/255 at 96 px"),
)


def deepshield(*args: str | Path) -> list[str]:
    return [str(Path(sys.executable).parent / "deepshield"), *map(str, args)]


def train_cmd(run: Run) -> list[str]:
    return deepshield("train", "--config", BASE, *run.flags, "--out", OUT / run.name, "--resume", "--quiet")


def eval_cmds(run: Run, adversarial: bool, train_eps: str) -> list[tuple[Path, list[str]]]:
    """(output folder, command) of each evaluation of ``run``'s best.pt."""
    d = OUT / run.name
    ckpt, test = d / "best.pt", f"catalog:{CATALOG}:test"
    quiet = ("--no-corruptions", "--reencode", "", "--gallery", "0", "--quiet")
    out = [(d / "eval_clean",
            deepshield("evaluate", "--checkpoint", ckpt, "--dataset", test, "--attacks", "fgsm", "--eps",
                       "1/255", "--no-sanity", *quiet, "--out", d / "eval_clean")),
           (d / "eval_robust",
            deepshield("evaluate", "--checkpoint", ckpt, "--dataset", test, "--attacks", "fgsm,pgd,apgd",
                       "--eps", EPS, "--steps", "20", "--max-videos", str(ROBUST_VIDEOS), "--square-queries",
                       str(SQUARE_QUERIES), "--sanity-n", "128", *quiet, "--out", d / "eval_robust"))]
    if adversarial:  # PGD-20 on the trainer's validation subset (same seed, same faces), every face attacked
        val = (f"catalog:{CATALOG}:val", "--max-videos", str(base_setting("max_val")))
        out.append((d / "eval_val",
                    deepshield("evaluate", "--checkpoint", ckpt, "--dataset", *val, "--attacks", "pgd",
                               "--eps", train_eps, "--steps", "20", "--no-early-stop", "--no-sanity", *quiet,
                               "--out", d / "eval_val")))
    return out


def base_setting(key: str):
    from deepshield.config import load_recipe

    return load_recipe(ROOT / BASE).get(key)


def run_config(run: Run) -> dict:
    """The finished run's settings (config.json), or {} before it trained."""
    path = OUT / run.name / "config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def fresh(output: Path, ckpt: Path) -> bool:
    results = output / "results.json"
    return results.is_file() and ckpt.is_file() and results.stat().st_mtime > ckpt.stat().st_mtime


def run_one(run: Run) -> None:
    """Train (resuming) and evaluate one run; each finished step is skipped on a rerun."""
    print(f"== {run.name}: {run.question}\n   {shlex.join(train_cmd(run))}", flush=True)
    subprocess.run(train_cmd(run), check=True)
    cfg = run_config(run)
    adversarial = cfg.get("adv", "none") != "none"
    eps = f"{cfg.get('eps', 1 / 255) * 255:.4g}/255"
    for output, cmd in eval_cmds(run, adversarial, eps):
        if fresh(output, OUT / run.name / "best.pt"):
            continue
        print(f"   {shlex.join(cmd)}", flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None, help="comma-separated run names (default: all, in order)")
    ap.add_argument("--report-only", action="store_true", help="rewrite the report from what exists")
    args = ap.parse_args()
    if not CATALOG.is_file():
        sys.exit(f"{CATALOG} not found: run `make results` (its first stage preprocesses the DFDC faces) "
                 "or deepshield preprocess ../shared/data/dev/dfdc_faces --layout faces --out "
                 "runs/results/faces --margin 0.7 --shift 0.1 --format jpg")
    names = {r.name for r in RUNS}
    only = set(args.only.split(",")) if args.only else names
    if unknown := only - names:
        sys.exit(f"unknown run(s) {sorted(unknown)}; choose from {', '.join(r.name for r in RUNS)}")
    if not args.report_only:
        for run in RUNS:
            if run.name in only:
                run_one(run)
                write_report(OUT, RUNS, ROOT)
    print(write_report(OUT, RUNS, ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
