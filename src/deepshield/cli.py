"""Command line: argparse subcommands that build a command's config and call into the package.

Each subcommand's flags map one-to-one onto the fields of its config dataclass (``deepshield.config``;
nested ones such as ``EvalConfig.sweep`` included), checked by a test; the choices of ``--adv``,
``--attacks``, ``--layout`` ... come from the package's registries. A user mistake (a
:class:`~deepshield.errors.DeepshieldError`, or a missing/unreadable path) prints one line and exits 2;
anything else is a bug and shows its traceback. ``DEEPSHIELD_DEBUG=1`` shows the traceback always.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from deepshield import __version__
from deepshield.config import (
    DemoConfig,
    EvalConfig,
    MergeConfig,
    PredictConfig,
    PreprocessConfig,
    ReportConfig,
    TrainConfig,
    config_from_mapping,
    parse_fraction,
)
from deepshield.errors import ConfigError, DeepshieldError

# OS errors about a path the user gave (a missing video, an unwritable --out).
PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)
_NUMERIC = re.compile(r"-(\d|\.\d)")


class UsageError(ConfigError):
    """A bad command-line value."""


def parse_eps(text: str, at_most_one: bool = True) -> float:
    """'8/255', '1.25/255', '0.03' or '0' -> float in [0, 1] pixel units (``at_most_one``: refuse > 1,
    which in L∞ pixel units is a forgotten /255)."""
    try:
        value = parse_fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; write eps like 8/255 or 0.031") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"eps {text} is negative; ε must be >= 0, such as 4/255")
    if at_most_one and value > 1:
        raise argparse.ArgumentTypeError(f"{text} is above 1, but ε is in [0, 1] pixel units; "
                                         f"write {text}/255")
    return value


def parse_eps_list(text: str) -> tuple[float, ...]:
    """Comma-separated budgets; values above 1 are left to the sweep's check (fine for L2)."""
    values = tuple(parse_eps(t, at_most_one=False) for t in text.split(",") if t.strip())
    if not values:
        raise argparse.ArgumentTypeError("needs at least one budget, e.g. 1/255,4/255")
    return values


def parse_attacks(text: str) -> tuple[str, ...]:
    from deepshield.attacks import ATTACKS

    names = tuple(a.strip() for a in text.split(",") if a.strip())
    unknown = [a for a in names if a not in ATTACKS] or ([] if names else [text])
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown attack {unknown[0]!r}; choose from "
                                         f"{','.join(sorted(ATTACKS))}")
    return names


def parse_attack_option(text: str) -> tuple[str, str, Any]:
    """``square.p_init=0.5`` -> ("square", "p_init", 0.5); values: numbers (fractions too), true/false,
    or text."""
    from deepshield.attacks import ATTACKS

    head, sep, raw = text.partition("=")
    attack, dot, key = head.partition(".")
    if not (sep and dot and attack and key):
        raise argparse.ArgumentTypeError(f"{text!r}: write ATTACK.SETTING=VALUE, e.g. square.p_init=0.5")
    if attack not in ATTACKS:
        raise argparse.ArgumentTypeError(f"{text!r}: unknown attack {attack!r}; choose from "
                                         f"{','.join(sorted(ATTACKS))}")
    value: Any = raw
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    elif re.fullmatch(r"-?\d+", raw):
        value = int(raw)
    else:
        try:
            value = parse_fraction(raw)
        except (ValueError, ZeroDivisionError):
            pass
    return attack, key, value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be >= 1")
    return value


def non_negative_int(text: str) -> int:
    value = int(text) if text.lstrip("-").isdigit() else -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number >= 0")
    return value


def fraction_01(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} must be in [0, 1]")
    return value


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _run(cls: type, args: argparse.Namespace) -> Any:
    """The command's config from the parsed flags (a ConfigError if the values do not fit together)."""
    return config_from_mapping(cls, vars(args))


def _train(args: argparse.Namespace) -> int:
    from deepshield.training.trainer import train

    result = train(_run(TrainConfig, args))
    if os.environ.get("RANK", "0") == "0":  # one line under torchrun, not one per rank
        print(f"best checkpoint: {result.best_path}")
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    from deepshield.data.transforms import AUGMENTS
    from deepshield.training.objectives import OBJECTIVES

    p = sub.add_parser("train", help="train a detector (optionally adversarially)",
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
    p.add_argument("--adv", default="none", choices=list(OBJECTIVES),
                   help="training objective: " + ", ".join(f"{n} ({s.help})" for n, s in OBJECTIVES.items())
                        + " (default: none)")
    p.add_argument("--eps", type=parse_eps, default=4 / 255,
                   help="L-inf budget in [0, 1] pixel units, e.g. 4/255 (default: 4/255)")
    p.add_argument("--alpha", type=parse_eps, default=None, help="PGD step size (default: eps/4)")
    p.add_argument("--steps", type=positive_int, default=7, help="PGD steps in training (default: 7)")
    p.add_argument("--trades-beta", type=float, default=6.0, help="TRADES/MART beta (default: 6)")
    p.add_argument("--adv-warmup-epochs", type=non_negative_int, default=0,
                   help="ramp eps linearly over the first N epochs (default: 0)")
    p.add_argument("--val-attack-steps", type=positive_int, default=10,
                   help="steps of the validation attack of adversarial objectives (default: 10)")
    p.add_argument("--best-metric", default=None,
                   help="metric that picks best.pt, e.g. val_auc (default: val_robust_score when "
                        "adversarial, else val_auc)")
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
    p.add_argument("--n-train", type=positive_int, default=4000,
                   help="synthetic training images (default: 4000)")
    p.add_argument("--n-val", type=positive_int, default=1000,
                   help="synthetic validation images (default: 1000)")
    p.add_argument("--frames-per-video", type=positive_int, default=8,
                   help="catalog: frames sampled per video each epoch (default: 8)")
    p.add_argument("--freeze-epochs", type=non_negative_int, default=0,
                   help="train only the head for N epochs, then unfreeze progressively (default: 0)")
    p.add_argument("--unfreeze-every", type=non_negative_int, default=1,
                   help="unfreeze one more stage every N epochs; 0 = all at once (default: 1)")
    p.add_argument("--backbone-lr-scale", type=float, default=0.1,
                   help="backbone LR = lr x this when fine-tuning --pretrained weights (default: 0.1)")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed precision (default: auto: CUDA bf16/fp16; CPU bf16 only with native bf16)")
    p.add_argument("--cache-dir", default=None, help="decoded-crop cache folder (default: OUT/cache)")
    p.add_argument("--no-cache", dest="cache", action="store_false", help="decode crops every epoch")
    p.add_argument("--balance", action="store_true", help="class-balanced frame sampling")
    p.add_argument("--augment", default="faces", choices=list(AUGMENTS),
                   help="training augmentation: faces (flip, crop, colour, JPEG, blur, cutout) | none "
                        "(default: faces)")
    p.add_argument("--max-train", type=positive_int, default=None,
                   help="catalog: train on a seeded subset of at most N videos (default: all)")
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=_train)


def _evaluate(args: argparse.Namespace) -> int:
    from deepshield.evaluation.checks import format_checks
    from deepshield.evaluation.evaluate import evaluate
    from deepshield.evaluation.tables import console_summary

    result = evaluate(_run(EvalConfig, args))
    print(console_summary(result.run, result.to_json()))
    if result.checks:
        print(format_checks(result.checks))
    print(f"report: {result.out / 'report.html'} (and report.md, results.json)")
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    from deepshield.attacks import NORMS, attack_help

    p = sub.add_parser("evaluate", help="clean and robust evaluation of a checkpoint, with a report",
                       description="Clean metrics (frame, video, per method) and accuracy/AUC under each "
                                   "attack and eps, with sanity checks against gradient masking; writes "
                                   "results.json, report.md and report.html.")
    p.add_argument("--checkpoint", required=True,
                   help="best.pt or last.pt of a training run, or 'default' (the bundled detector)")
    p.add_argument("--dataset", default="synthetic",
                   help="synthetic | catalog:PATH[:split] (default: synthetic)")
    p.add_argument("--attacks", type=parse_attacks, default=("fgsm", "pgd"),
                   help=f"comma-separated: {attack_help()} (default: fgsm,pgd)")
    p.add_argument("--eps", type=parse_eps_list, default=(1 / 255, 2 / 255, 4 / 255, 8 / 255),
                   help="comma-separated budgets; L-inf in [0, 1] pixel units "
                        "(default: 1/255,2/255,4/255,8/255)")
    p.add_argument("--norm", default="linf", choices=list(NORMS))
    p.add_argument("--steps", type=positive_int, default=10, help="PGD and APGD steps (default: 10)")
    p.add_argument("--restarts", type=positive_int, default=1, help="PGD/APGD/Square restarts (default: 1)")
    p.add_argument("--square-queries", type=positive_int, default=1000,
                   help="Square attack query budget per image (default: 1000)")
    p.add_argument("--attack-option", dest="options", type=parse_attack_option, action="append", default=[],
                   metavar="ATTACK.SETTING=VALUE",
                   help="extra setting of one attack, e.g. square.p_init=0.5 (repeatable)")
    p.add_argument("--no-early-stop", dest="early_stop", action="store_false",
                   help="attack every image for all steps (slower; tighter AUC under attack)")
    p.add_argument("--sanity-n", type=positive_int, default=256,
                   help="images the sanity checks' extra attacks use (default: 256)")
    p.add_argument("--gallery", type=non_negative_int, default=6,
                   help="faces in the report gallery (default: 6)")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--n-test", type=positive_int, default=1000, help="synthetic test images (default: 1000)")
    p.add_argument("--max-videos", type=positive_int, default=None,
                   help="catalog: evaluate a seeded, label-balanced subset of at most N videos "
                        "(default: all)")
    p.add_argument("--seed", type=int, default=0, help="attack random starts and the evaluated subset")
    p.add_argument("--out", default=None,
                   help="output folder (default: next to the checkpoint: eval/, or eval_<catalog folder>/)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-sanity", dest="sanity", action="store_false",
                   help="skip the sanity checks (not recommended)")
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=_evaluate)


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from deepshield.evaluation.report import load_runs, write_report
    from deepshield.evaluation.tables import summary_table

    cfg: ReportConfig = _run(ReportConfig, args)
    runs = load_runs(list(cfg.runs))
    if cfg.out:
        out = Path(cfg.out)
    else:
        parents = {Path(r).resolve().parent for r in cfg.runs}
        out = (parents.pop() if len(parents) == 1 else Path.cwd()) / "report"
    path = write_report(runs, out, title=cfg.title)
    print(summary_table({run: res.to_json() for run, res in runs.items()}))
    bad = [(run, c) for run, res in runs.items() for c in res.failed_checks]
    for run, c in bad:
        print(f"FAIL  {run}: {c['name']}: {c['detail']}")
    if bad:
        print(f"!! {len(bad)} SANITY CHECK(S) FAILED: robust accuracy of these runs is probably "
              "overestimated")
    print(f"report: {path.with_suffix('.html')} (and {path.name})")
    return 0


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="compare evaluated runs in one report",
                       description="Read each run's eval results.json (RUN/results.json, "
                                   "RUN/eval/results.json or RUN/*/results.json) and write one report.md + "
                                   "report.html comparing them.")
    p.add_argument("runs", nargs="+",
                   help="run folders (or results.json files) evaluated with 'deepshield evaluate'")
    p.add_argument("--out", default=None, help="output folder (default: report/ beside the runs)")
    p.add_argument("--title", default="deepshield robustness comparison")
    p.set_defaults(func=_report)


def _predict(args: argparse.Namespace) -> int:
    import json

    from deepshield.predict import Predictor, collect_inputs, exit_code, format_text, problem_lines, to_json

    cfg: PredictConfig = _run(PredictConfig, args)
    files = collect_inputs(cfg.inputs)
    predictor = Predictor(cfg)
    for warning in predictor.warnings:
        print(f"deepshield predict: warning: {warning}", file=sys.stderr)
    results = [predictor.predict(f) for f in files]
    if cfg.as_json:
        print(json.dumps(to_json(results, cfg, predictor.settings), indent=1))
    else:
        print(format_text(results, cfg.threshold))
    for line in problem_lines(results, predictor.settings):
        print(f"deepshield predict: {line}", file=sys.stderr)
    return exit_code(results)


def _add_predict(sub: argparse._SubParsersAction) -> None:
    from deepshield.data.faces import DETECTORS
    from deepshield.evaluation.metrics import AGGREGATIONS

    p = sub.add_parser("predict", help="fake probability of videos or images",
                       description="Detect and crop faces as preprocessing did for training, score them, and "
                                   "print each video's fake probability (per frame with --json). Exit code 3 "
                                   "when an input has no face, 2 when one cannot be read.")
    p.add_argument("inputs", nargs="+", help="videos, images, or folders of them")
    p.add_argument("--checkpoint", default="default",
                   help="best.pt or last.pt of a training run, or 'default': the detector bundled with "
                        "deepshield (see its model card) (default: default)")
    p.add_argument("--json", dest="as_json", action="store_true", help="print JSON with per-frame scores")
    p.add_argument("--frames", type=positive_int, default=None,
                   help="frames sampled evenly per video (default: as preprocessed for training, else 32)")
    p.add_argument("--detector", default=None, choices=list(DETECTORS),
                   help="face detector (default: the checkpoint's, else mtcnn)")
    p.add_argument("--margin", type=float, default=None,
                   help="crop margin (default: the checkpoint's, else 1.3)")
    p.add_argument("--shift", type=float, default=None,
                   help="crop centre shift down, in face box sides (default: the checkpoint's, else 0)")
    p.add_argument("--size", type=positive_int, default=None,
                   help="crop size in px (default: the checkpoint's, else its image size)")
    p.add_argument("--min-score", type=fraction_01, default=None,
                   help="face detector confidence in [0, 1] (default: the checkpoint's, else 0.9)")
    p.add_argument("--threshold", type=fraction_01, default=0.5,
                   help="call FAKE at p(fake) >= this (default: 0.5)")
    p.add_argument("--aggregate", default="mean", choices=list(AGGREGATIONS),
                   help="frame scores -> video score (default: mean)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_predict)


def _demo(args: argparse.Namespace) -> int:
    from deepshield.demo import run_demo

    run_demo(_run(DemoConfig, args))
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="synthetic end-to-end: standard vs PGD training, robust report")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--n-train", type=positive_int, default=2000)
    p.add_argument("--n-test", type=positive_int, default=500)
    p.add_argument("--epochs", type=positive_int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=_demo)


def _preprocess(args: argparse.Namespace) -> int:
    from deepshield.data.preprocess import run_preprocess

    cfg: PreprocessConfig = _run(PreprocessConfig, args)
    print(run_preprocess(cfg, progress=cfg.progress))
    return 0


def _add_preprocess(sub: argparse._SubParsersAction) -> None:
    from deepshield.data.faces import DETECTORS, FACE_SELECTORS
    from deepshield.data.layouts import LAYOUTS

    p = sub.add_parser("preprocess", help="videos -> face crops + catalog.csv (MTCNN; resumable, parallel)")
    p.add_argument("root", help="dataset folder")
    p.add_argument("--layout", required=True, choices=list(LAYOUTS),
                   help="faces: pre-cropped face images (real/ and fake/, or a --metadata CSV)")
    p.add_argument("--out", required=True, help="output folder (not inside ROOT/real or ROOT/fake)")
    p.add_argument("--fps", type=float, default=None, help="frames per second to sample")
    p.add_argument("--frames-per-video", type=positive_int, default=None,
                   help="N evenly spaced frames per video (default: 32 when --fps is not given)")
    p.add_argument("--size", type=positive_int, default=224, help="crop size in pixels (default: 224)")
    p.add_argument("--margin", type=float, default=1.3,
                   help="crop side = margin x face box side; < 1 zooms into the face (default: 1.3)")
    p.add_argument("--shift", type=float, default=0.0,
                   help="move the crop centre down by this fraction of the face box (default: 0)")
    p.add_argument("--metadata", default=None,
                   help="faces: CSV with file,label[,video,original] (default: ROOT/metadata.csv if present)")
    p.add_argument("--split-ratios", default=None,
                   help="train,val,test fractions for videos without an official split, assigned by group "
                        "(a real video and its fakes together) (default: 0.8,0.1,0.1)")
    p.add_argument("--faces", default="largest", choices=list(FACE_SELECTORS))
    p.add_argument("--detector", default="mtcnn", choices=list(DETECTORS),
                   help="face detector (default: mtcnn)")
    p.add_argument("--workers", type=positive_int, default=1, help="parallel worker processes (default: 1)")
    p.add_argument("--min-score", type=fraction_01, default=0.9,
                   help="minimum detector confidence (default: 0.9)")
    p.add_argument("--format", default="png", choices=["png", "jpg"])
    p.add_argument("--quality", type=positive_int, default=95, help="JPEG quality (default: 95)")
    p.add_argument("--compression", default=None, help="ffpp: keep only raw|c23|c40 (default: all)")
    p.add_argument("--splits", default=None, help="ffpp: folder with the official train/val/test.json")
    p.add_argument("--shard", default=None, help="K/N: process the K-th of N deterministic shards")
    p.add_argument("--max-side", type=positive_int, default=640, help="detect on frames downscaled to this")
    p.add_argument("--seed", type=int, default=0, help="seeds torch in each worker (default: 0)")
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=_preprocess)


def _catalog(args: argparse.Namespace) -> int:
    from deepshield.data.catalog import merge_catalogs

    cfg: MergeConfig = _run(MergeConfig, args)
    rows, errors = merge_catalogs(cfg.out, list(cfg.parts))
    print(f"merged {len(cfg.parts)} catalogs into {cfg.out}: {rows} rows, {errors} errors")
    return 0


def _add_catalog(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("catalog", help="catalog tools: merge shards")
    p.add_argument("action", choices=["merge"])
    p.add_argument("out", help="merged output folder")
    p.add_argument("parts", nargs="+", help="preprocess output folders of the shards")
    p.set_defaults(func=_catalog)


# Subcommand -> (parser builder, the config its flags fill).
COMMANDS: dict[str, tuple[Callable[[argparse._SubParsersAction], None], type]] = {
    "train": (_add_train, TrainConfig), "evaluate": (_add_evaluate, EvalConfig),
    "demo": (_add_demo, DemoConfig),
    "report": (_add_report, ReportConfig), "predict": (_add_predict, PredictConfig),
    "preprocess": (_add_preprocess, PreprocessConfig), "catalog": (_add_catalog, MergeConfig),
}


def build_parser(train_defaults: dict | None = None) -> argparse.ArgumentParser:
    """The CLI; ``train_defaults`` (a recipe's values) replace the train flags' defaults."""
    parser = Parser(prog="deepshield",
                    description="Deepfake detectors that hold up under adversarial attack.")
    parser.add_argument("--version", action="version", version=f"deepshield {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add, _ in COMMANDS.values():
        add(sub)
    if train_defaults:
        sub.choices["train"].set_defaults(**train_defaults)
    return parser


def join_negative_values(argv: Sequence[str]) -> list[str]:
    """``--eps -1/255`` -> ``--eps=-1/255``: argparse takes a value such as ``-1/255`` or ``-1e-3`` for
    a flag, so the range check can say what is wrong instead of "expected one argument"."""
    out: list[str] = []
    for token in argv:
        prev = out[-1] if out else ""
        if _NUMERIC.match(token) and prev.startswith("--") and "=" not in prev:
            out[-1] = f"{prev}={token}"
        else:
            out.append(token)
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``argv``; for ``train --config RECIPE``, the recipe's values become the flags' defaults."""
    argv = join_negative_values(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.command == "train" and args.config:
        from deepshield.config import load_recipe

        args = build_parser(load_recipe(args.config)).parse_args(argv)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    command = "deepshield"
    try:
        args = parse_args(argv)
        command = f"deepshield {args.command}"
        return args.func(args)
    except (DeepshieldError, *PATH_ERRORS) as e:
        if os.environ.get("DEEPSHIELD_DEBUG"):
            raise
        print(f"{command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command (with --resume for train) to continue", file=sys.stderr)
        return 130
