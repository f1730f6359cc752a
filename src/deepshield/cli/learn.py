"""Subcommands that train and measure detectors: train, evaluate, report, demo."""

from __future__ import annotations

import argparse
import os

from deepshield.cli.values import (
    SUMMARIES,
    config_of,
    non_negative_int,
    parse_attack_option,
    parse_attacks,
    parse_eps,
    parse_eps_list,
    parse_list,
    positive_int,
    rule_help,
)
from deepshield.config import DemoConfig, EvalConfig, ReportConfig, TrainConfig


def _train(args: argparse.Namespace) -> int:
    from deepshield.training.trainer import train

    result = train(config_of(TrainConfig, args))
    if os.environ.get("RANK", "0") == "0":  # one line under torchrun, not one per rank
        print(f"best checkpoint: {result.best_path}")
    return 0


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help=SUMMARIES["train"],
                       description="Train a deepfake detector. Safe adversarial-training defaults: "
                                   "eps 4/255, alpha eps/4, 7 PGD steps.")
    p.add_argument("--config", default=None,
                   help="a YAML recipe (e.g. recipes/dfdc-faces-standard.yaml); flags given here override it")
    p.add_argument("--dataset", default="synthetic",
                   help="synthetic | catalog:PATH[:split] (default: synthetic)")
    p.add_argument("--backbone", default="small_cnn",
                   help="small_cnn, resnet50, mobilenetv3_large_100, efficientnet_b0, efficientnet_b4, "
                        "xception, tf_efficientnet_lite0, mobilenetv2, or any timm model name "
                        "(default: small_cnn)")
    p.add_argument("--pretrained", default=None,
                   help="state-dict file (timm/torchvision names, or a deepshield checkpoint) to start from; "
                        "'imagenet' for the offline ImageNet weights of tf_efficientnet_lite0 and "
                        "mobilenetv2; or 'timm' (needs internet)")
    p.add_argument("--image-size", type=positive_int, default=64, help="input size in pixels (default: 64)")
    _add_adversarial(p)
    _add_schedule(p)
    _add_train_data(p)
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=_train)


def _add_schedule(p: argparse.ArgumentParser) -> None:
    """Optimisation, run folder, devices and precision flags of ``deepshield train``."""
    p.add_argument("--epochs", type=positive_int, default=5, help="(default: 5)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="(default: 64)")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default: 1e-3)")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="(default: 5e-4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/train", help="run folder (default: runs/train)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard scalars to OUT/tensorboard")
    p.add_argument("--smoke", action="store_true", help="a seconds-long run to check the set-up")
    p.add_argument("--workers", type=non_negative_int, default=0, help="DataLoader workers (default: 0)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default: auto)")
    p.add_argument("--freeze-epochs", type=non_negative_int, default=0,
                   help="train only the head for N epochs, then unfreeze progressively (default: 0)")
    p.add_argument("--unfreeze-every", type=non_negative_int, default=1,
                   help="unfreeze one more stage every N epochs; 0 = all at once (default: 1)")
    p.add_argument("--backbone-lr-scale", type=float, default=0.1,
                   help="backbone LR = lr x this when fine-tuning --pretrained weights (default: 0.1)")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed precision (default: auto: the fastest of fp32 and bf16/fp16 that passes a "
                        "check against fp32, measured once per machine and model; CPU bf16 only with "
                        "native bf16)")
    p.add_argument("--no-probe", dest="probe", action="store_false",
                   help="skip measuring threads, precision and layout: all threads, bf16 where native, "
                        "channels_last")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the training forward (minutes to compile on a few CPU cores; "
                        "see benchmarks/train_throughput.py)")


def _add_train_data(p: argparse.ArgumentParser) -> None:
    """What ``deepshield train`` reads: dataset sizes, sampling, cache, augmentation, pseudo-fakes."""
    from deepshield.data.pseudo_fakes import PSEUDO_FAKES
    from deepshield.data.transforms import AUGMENTS

    def parse_unit_fraction(text: str) -> float:
        value = float(text)
        if not 0 < value <= 1:
            raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
        return value

    p.add_argument("--n-train", type=positive_int, default=4000,
                   help="synthetic training images (default: 4000)")
    p.add_argument("--n-val", type=positive_int, default=1000,
                   help="synthetic validation images (default: 1000)")
    p.add_argument("--frames-per-video", type=positive_int, default=8,
                   help="catalog: frames sampled per video each epoch (default: 8)")
    p.add_argument("--cache-dir", default=None, help="decoded-crop cache folder (default: OUT/cache)")
    p.add_argument("--no-cache", dest="cache", action="store_false", help="decode crops every epoch")
    p.add_argument("--balance", action="store_true", help="class-balanced frame sampling")
    p.add_argument("--augment", default="faces", choices=list(AUGMENTS),
                   help="training augmentation: faces (flip, crop, colour, JPEG, blur, cutout) | platform "
                        "(faces plus downscale, noise, blur and real H.264 at CRF 18-38) | none "
                        "(default: faces)")
    p.add_argument("--max-train", type=positive_int, default=None,
                   help="catalog: train on a seeded subset of at most N videos (default: all)")
    p.add_argument("--pseudo-fakes", default=None, choices=list(PSEUDO_FAKES),
                   help="catalog: make fakes from the real crops on the fly: sbi (self-blended images, "
                        "Shiohara & Yamasaki 2022; landmarks by MTCNN, cached) (default: off)")
    p.add_argument("--pseudo-fake-ratio", type=parse_unit_fraction, default=1.0,
                   help="fraction of the fake samples that are pseudo-fakes, in (0, 1]; 1 trains from the "
                        "catalog's reals only, e.g. 0.5 mixes with its fakes (default: 1)")


def _add_adversarial(p: argparse.ArgumentParser) -> None:
    """The training objective's flags (training.objectives.AdvParams) and validation/early stopping."""
    from deepshield.contracts.threshold import THRESHOLD_RULES
    from deepshield.models import ACTIVATIONS
    from deepshield.training.objectives import BN_MODES, OBJECTIVES

    p.add_argument("--adv", default="none", choices=list(OBJECTIVES),
                   help="training objective: " + ", ".join(f"{n} ({s.help})" for n, s in OBJECTIVES.items())
                        + " (default: none)")
    p.add_argument("--eps", type=parse_eps, default=4 / 255,
                   help="L-inf budget in [0, 1] pixel units, e.g. 4/255 (default: 4/255)")
    p.add_argument("--alpha", type=parse_eps, default=None,
                   help="attack step size (default: eps/4 for PGD, TRADES, MART; eps for n-fgsm)")
    p.add_argument("--steps", type=positive_int, default=7, help="PGD steps in training (default: 7)")
    p.add_argument("--trades-beta", type=float, default=None,
                   help="TRADES/MART beta (default: 6); an error with other objectives")
    p.add_argument("--no-random-start", dest="random_start", action="store_false",
                   help="start the training attack at x, not at a random point of the ball "
                        "(pgd, trades, mart)")
    p.add_argument("--adv-bn", default=None, choices=list(BN_MODES),
                   help="BatchNorm mode while crafting training attacks (default: each method's reference "
                        "choice: eval, train for fgsm-rs and n-fgsm)")
    p.add_argument("--label-smoothing", type=float, default=0.0,
                   help="label smoothing of the cross-entropy terms, in [0, 1) (default: 0)")
    p.add_argument("--act", default=None, choices=list(ACTIVATIONS),
                   help="swap the backbone's ReLU/ReLU6 for a smooth activation (Xie et al. 2020), e.g. "
                        "silu; an error on a model without them (default: keep)")
    p.add_argument("--adv-warmup-epochs", type=non_negative_int, default=0,
                   help="ramp eps linearly over the first N epochs (default: 0)")
    p.add_argument("--val-attack-steps", type=positive_int, default=10,
                   help="steps of the validation attack of adversarial objectives (default: 10)")
    p.add_argument("--max-val", type=positive_int, default=None,
                   help="catalog: validate on a seeded, label-balanced subset of N videos (default: all)")
    p.add_argument("--patience", type=positive_int, default=None,
                   help="stop when the best metric has not improved for N epochs (default: never)")
    p.add_argument("--best-metric", default=None,
                   help="metric that picks best.pt, e.g. val_auc (default: val_robust_score when "
                        "adversarial, else val_auc)")
    p.add_argument("--threshold-rule", default="eer", choices=list(THRESHOLD_RULES),
                   help="the operating threshold recorded in best.pt and last.pt, chosen on the validation "
                        "videos: " + rule_help() + " (default: eer)")


def _evaluate(args: argparse.Namespace) -> int:
    from deepshield.evaluation.checks import format_checks
    from deepshield.evaluation.evaluate import evaluate
    from deepshield.evaluation.tables import console_summary

    result = evaluate(config_of(EvalConfig, args))
    print(console_summary(result.run, result))
    if result.checks:
        print(format_checks(result.checks))
    print(f"report: {result.out / 'report.html'} (and report.md, results.json)")
    return 0


class _DatasetsAction(argparse.Action):
    """``--dataset A [B ...]``: A is the attacked dataset, the others join ``cross_dataset``."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        namespace.dataset = values[0]
        namespace.cross_dataset = [*(getattr(namespace, "cross_dataset", None) or []), *values[1:]]


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help=SUMMARIES["evaluate"],
                       description="Clean metrics (frame, video, per method) and accuracy/AUC under each "
                                   "attack and eps, with sanity checks against gradient masking; writes "
                                   "results.json, report.md and report.html.")
    p.add_argument("--checkpoint", required=True,
                   help="best.pt or last.pt of a training run, or a bundled detector: 'default' or 'robust'")
    p.add_argument("--dataset", nargs="+", action=_DatasetsAction, default="synthetic", metavar="DATASET",
                   help="synthetic | catalog:PATH[:split] (default: synthetic); more than one: the first "
                        "gets the attack sweep, the others clean metrics, each marked in-domain or "
                        "cross-domain against the checkpoint's training dataset")
    p.add_argument("--cross-dataset", nargs="+", action="extend", default=[], metavar="DATASET",
                   help="more datasets scored clean, like the 2nd.. --dataset values (repeatable)")
    p.add_argument("--cross-sweep", action="store_true",
                   help="also attack the cross datasets (the sweep only; sanity checks, re-encoding, "
                        "transfer and corruption rows stay on the first dataset)")
    _add_sweep(p)
    _add_threats(p)
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=_evaluate)


def _add_sweep(p: argparse.ArgumentParser) -> None:
    """The attack sweep and sanity-check flags of ``deepshield evaluate``."""
    from deepshield.attacks import NORMS, attack_help
    from deepshield.config import THOROUGH, SweepSpec

    p.add_argument("--attacks", type=parse_attacks, default=("fgsm", "pgd"),
                   help=f"comma-separated: {attack_help()} (default: fgsm,pgd)")
    p.add_argument("--eps", type=parse_eps_list, default=(1 / 255, 2 / 255, 4 / 255, 8 / 255),
                   help="comma-separated budgets; L-inf in [0, 1] pixel units "
                        "(default: 1/255,2/255,4/255,8/255)")
    p.add_argument("--norm", default="linf", choices=list(NORMS))
    p.add_argument("--steps", type=positive_int, default=10, help="PGD and APGD steps (default: 10)")
    p.add_argument("--restarts", type=positive_int, default=1, help="PGD/APGD/Square restarts (default: 1)")
    p.add_argument("--square-queries", type=positive_int, default=SweepSpec.square_queries,
                   help=f"Square attack query budget per image (default: {SweepSpec.square_queries}; "
                        f"{THOROUGH['square_queries']} with --thorough)")
    p.add_argument("--attack-option", dest="options", type=parse_attack_option, action="append", default=[],
                   metavar="ATTACK.SETTING=VALUE",
                   help="extra setting of one attack, e.g. square.p_init=0.5 (repeatable)")
    p.add_argument("--no-reuse", dest="reuse", action="store_false",
                   help="attack every face at every eps and attack independently (no reuse of fooling points "
                        "beyond the sanity subset; slower, same protocol)")
    p.add_argument("--no-early-stop", dest="early_stop", action="store_false",
                   help="attack every image for all steps (slower; tighter AUC under attack)")
    p.add_argument("--sanity-n", type=positive_int, default=SweepSpec.sanity_n,
                   help=f"images attacked independently for the sanity checks (default: "
                        f"{SweepSpec.sanity_n}; {THOROUGH['sanity_n']} with --thorough)")
    p.add_argument("--no-sanity", dest="sanity", action="store_false",
                   help="skip the sanity checks (not recommended)")
    p.add_argument("--thorough", action="store_true",
                   help=f"the full sanity-check budget: Square {THOROUGH['square_queries']} queries, "
                        f"{THOROUGH['sanity_n']} independently attacked images (the defaults are a first "
                        "look that finishes in minutes on a CPU)")
    p.add_argument("--seed", type=int, default=0, help="attack random starts and the evaluated subset")


def _add_threats(p: argparse.ArgumentParser) -> None:
    """Output, re-encoding, transfer, corruption, defense and ensemble flags of ``deepshield evaluate``."""
    p.add_argument("--gallery", type=non_negative_int, default=6,
                   help="faces in the report gallery (default: 6)")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--n-test", type=positive_int, default=1000, help="synthetic test images (default: 1000)")
    p.add_argument("--max-videos", type=positive_int, default=None,
                   help="catalog: evaluate a seeded, label-balanced subset of at most N videos "
                        "(default: all)")
    p.add_argument("--out", default=None,
                   help="output folder (default: next to the checkpoint: eval/, or eval_<catalog folder>/)")
    p.add_argument("--device", default="auto")
    p.add_argument("--reencode", type=parse_list, default=("jpeg:75", "h264:23"),
                   help="also score clean and attacked faces after these real re-encodings: jpeg:QUALITY, "
                        "h264:CRF, or 'none' (default: jpeg:75,h264:23)")
    p.add_argument("--surrogate", default=None,
                   help="also craft the gradient attacks on this checkpoint and score the evaluated one "
                        "(transfer rows)")
    p.add_argument("--no-corruptions", dest="corruptions", action="store_false",
                   help="skip the natural-corruption rows (JPEG 30-90, blur, noise, downscale)")
    p.add_argument("--defense", default=None,
                   help="input defenses applied before the model, e.g. jpeg:75,median:3 (see "
                        "deepshield.threats.defenses); attacked adaptively (BPDA/EOT)")
    p.add_argument("--non-adaptive", dest="adaptive", action="store_false",
                   help="attack a --defense through its plain forward pass (flagged: not a robustness claim)")
    p.add_argument("--eot", type=positive_int, default=None,
                   help="EOT draws per attack gradient (default: 8 when the randomness check finds the model "
                        "randomized, else 1)")
    p.add_argument("--ensemble", type=parse_list, default=(),
                   help="more checkpoints whose probabilities are averaged with --checkpoint's")


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from deepshield.evaluation.report import load_runs, write_report
    from deepshield.evaluation.tables import summary_table

    cfg: ReportConfig = config_of(ReportConfig, args)
    runs = load_runs(list(cfg.runs))
    if cfg.out:
        out = Path(cfg.out)
    else:
        parents = {Path(r).resolve().parent for r in cfg.runs}
        out = (parents.pop() if len(parents) == 1 else Path.cwd()) / "report"
    path = write_report(runs, out, title=cfg.title)
    print(summary_table(runs))
    bad = [(run, c) for run, res in runs.items() for c in res.failed_checks]
    for run, c in bad:
        print(f"FAIL  {run}: {c.name}: {c.detail}")
    if bad:
        print(f"!! {len(bad)} SANITY CHECK(S) FAILED: robust accuracy of these runs is probably "
              "overestimated")
    print(f"report: {path.with_suffix('.html')} (and {path.name})")
    return 0


def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help=SUMMARIES["report"],
                       description="Read each run's eval results.json (RUN/results.json, "
                                   "RUN/eval/results.json or RUN/*/results.json) and write one report.md + "
                                   "report.html comparing them.")
    p.add_argument("runs", nargs="+",
                   help="run folders (or results.json files) evaluated with 'deepshield evaluate'")
    p.add_argument("--out", default=None, help="output folder (default: report/ beside the runs)")
    p.add_argument("--title", default="deepshield robustness comparison")
    p.set_defaults(func=_report)


def _demo(args: argparse.Namespace) -> int:
    from deepshield.demo import run_demo

    run_demo(config_of(DemoConfig, args))
    return 0


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help=SUMMARIES["demo"])
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--n-train", type=positive_int, default=2000)
    p.add_argument("--n-test", type=positive_int, default=500)
    p.add_argument("--epochs", type=positive_int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=_demo)
