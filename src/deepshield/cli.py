"""Command line: argparse subcommands that build a config and call into the package; no logic here.

User mistakes (bad flags or values, missing files, malformed inputs) print one line and exit 2.
Set DEEPSHIELD_DEBUG=1 to see the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from deepshield import __version__

USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError)
AUGMENT_NAMES = ("faces", "none")  # data.transforms.AUGMENTS; kept here so --help imports no torch


class UsageError(ValueError):
    """A bad command-line value."""


def parse_eps(text: str) -> float:
    """'8/255', '1.25/255', '0.03' or '0' -> float in [0, 1] pixel units."""
    from deepshield.config import parse_fraction

    try:
        value = parse_fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; write eps like 8/255 or 0.031") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"eps {text} is negative; use a value >= 0 such as 4/255")
    return value


def parse_eps_list(text: str) -> tuple[float, ...]:
    return tuple(parse_eps(t) for t in text.split(",") if t.strip())


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


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _train(args: argparse.Namespace) -> int:
    from deepshield.config import TrainConfig
    from deepshield.training.trainer import train

    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k not in ("func", "command")})
    result = train(cfg)
    if os.environ.get("RANK", "0") == "0":  # one line under torchrun, not one per rank
        print(f"best checkpoint: {result.best_path}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from deepshield.attacks import ATTACKS
    from deepshield.config import EvalConfig
    from deepshield.evaluation.checks import format_checks
    from deepshield.evaluation.evaluate import evaluate
    from deepshield.evaluation.report import console_summary

    attacks = tuple(a.strip() for a in args.attacks.split(",") if a.strip())
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown or not attacks:
        name = (unknown or [args.attacks])[0]
        raise UsageError(f"unknown attack {name!r}; choose from {','.join(sorted(ATTACKS))}")
    if not args.eps:
        raise UsageError("--eps needs at least one budget, e.g. --eps 1/255,4/255")
    cfg = EvalConfig(checkpoint=args.checkpoint, dataset=args.dataset, attacks=attacks, eps=args.eps,
                     norm=args.norm, steps=args.steps, restarts=args.restarts,
                     square_queries=args.square_queries, early_stop=not args.no_early_stop,
                     sanity_n=args.sanity_n, gallery=args.gallery,
                     batch_size=args.batch_size, n_test=args.n_test, max_videos=args.max_videos,
                     seed=args.seed, out=args.out,
                     device=args.device, sanity=not args.no_sanity, progress=not args.quiet)
    results = evaluate(cfg)
    print(console_summary(results["run"], results))
    if results.get("checks"):
        print(format_checks(results["checks"]))
    print(f"report: {results['_dir'] / 'report.html'} (and report.md, results.json)")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from deepshield.demo import run_demo

    run_demo(out=args.out, n_train=args.n_train, n_test=args.n_test, epochs=args.epochs, seed=args.seed,
             progress=not args.quiet)
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a detector (optionally adversarially)",
                       description="Train a deepfake detector. Safe adversarial-training defaults: "
                                   "eps 4/255, alpha eps/4, 7 PGD steps.")
    p.add_argument("--config", default=None,
                   help="a YAML recipe (e.g. recipes/dfdc-faces-standard.yaml); flags given here override it")
    p.add_argument("--dataset", default="synthetic",
                   help="synthetic | catalog:PATH[:split] (default: synthetic)")
    p.add_argument("--backbone", default="small_cnn",
                   help="small_cnn, resnet50, mobilenetv3_large_100, efficientnet_b0, efficientnet_b4, "
                        "xception, "
                        "tf_efficientnet_lite0, mobilenetv2, or any timm model name (default: small_cnn)")
    p.add_argument("--pretrained", default=None,
                   help="state-dict file (timm/torchvision names, or a deepshield checkpoint) to start from; "
                        "'imagenet' for the offline ImageNet weights of tf_efficientnet_lite0 and "
                        "mobilenetv2; "
                        "or 'timm' (needs internet)")
    p.add_argument("--image-size", type=positive_int, default=64, help="input size in pixels (default: 64)")
    p.add_argument("--adv", default="none", choices=["none", "pgd", "fgsm-rs", "trades", "mart"],
                   help="adversarial training method (default: none)")
    p.add_argument("--eps", type=parse_eps, default=4 / 255, help="L-inf budget, e.g. 4/255 (default: 4/255)")
    p.add_argument("--alpha", type=parse_eps, default=None, help="PGD step size (default: eps/4)")
    p.add_argument("--steps", type=positive_int, default=7, help="PGD steps in training (default: 7)")
    p.add_argument("--trades-beta", type=float, default=6.0, help="TRADES/MART beta (default: 6)")
    p.add_argument("--adv-warmup-epochs", type=non_negative_int, default=0,
                   help="ramp eps linearly over the first N epochs (default: 0)")
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
    p.add_argument("--augment", default="faces", choices=sorted(AUGMENT_NAMES),
                   help="training augmentation: faces (flip, crop, colour, JPEG, blur, cutout) | none "
                        "(default: faces)")
    p.add_argument("--max-train", type=positive_int, default=None,
                   help="catalog: train on a seeded subset of at most N videos (default: all)")
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=_train)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="clean and robust evaluation of a checkpoint, with a report",
                       description="Clean metrics (frame, video, per method) and accuracy/AUC under each "
                                   "attack and eps, with sanity checks against gradient masking; writes "
                                   "results.json, report.md and report.html.")
    p.add_argument("--checkpoint", required=True,
                   help="best.pt or last.pt of a training run, or 'default' (the bundled detector)")
    p.add_argument("--dataset", default="synthetic",
                   help="synthetic | catalog:PATH[:split] (default: synthetic)")
    p.add_argument("--attacks", default="fgsm,pgd",
                   help="comma-separated: fgsm, pgd, apgd (APGD-CE), square (black-box) (default: fgsm,pgd)")
    p.add_argument("--eps", type=parse_eps_list, default=(1 / 255, 2 / 255, 4 / 255, 8 / 255),
                   help="comma-separated budgets (default: 1/255,2/255,4/255,8/255)")
    p.add_argument("--norm", default="linf", choices=["linf", "l2"])
    p.add_argument("--steps", type=positive_int, default=10, help="PGD and APGD steps (default: 10)")
    p.add_argument("--restarts", type=positive_int, default=1, help="PGD/APGD/Square restarts (default: 1)")
    p.add_argument("--square-queries", type=positive_int, default=1000,
                   help="Square attack query budget per image (default: 1000)")
    p.add_argument("--no-early-stop", action="store_true",
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None,
                   help="output folder (default: next to the checkpoint: eval/, or eval_<catalog folder>/)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-sanity", action="store_true", help="skip the sanity checks (not recommended)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_evaluate)


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from deepshield.evaluation.report import load_runs, summary_table, write_report

    runs = load_runs(args.runs)
    if args.out:
        out = Path(args.out)
    else:
        parents = {Path(r).resolve().parent for r in args.runs}
        out = (parents.pop() if len(parents) == 1 else Path.cwd()) / "report"
    path = write_report(runs, out, title=args.title)
    print(summary_table(runs))
    bad = [(run, c) for run, res in runs.items() for c in res.get("checks", []) if not c["passed"]]
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

    from deepshield.config import PredictConfig
    from deepshield.predict import Predictor, collect_inputs, exit_code, format_text, problem_lines, to_json

    cfg = PredictConfig(inputs=tuple(args.inputs), checkpoint=args.checkpoint, frames=args.frames,
                        detector=args.detector, margin=args.margin, shift=args.shift, size=args.size,
                        min_score=args.min_score,
                        threshold=args.threshold, aggregate=args.aggregate, batch_size=args.batch_size,
                        device=args.device, as_json=args.json)
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
    p = sub.add_parser("predict", help="fake probability of videos or images",
                       description="Detect and crop faces as preprocessing did for training, score them, and "
                                   "print each video's fake probability (per frame with --json). Exit code 3 "
                                   "when an input has no face, 2 when one cannot be read.")
    p.add_argument("inputs", nargs="+", help="videos, images, or folders of them")
    p.add_argument("--checkpoint", default="default",
                   help="best.pt or last.pt of a training run, or 'default': the detector bundled with "
                        "deepshield (see its model card) (default: default)")
    p.add_argument("--json", action="store_true", help="print JSON with per-frame scores")
    p.add_argument("--frames", type=positive_int, default=None,
                   help="frames sampled evenly per video (default: as preprocessed for training, else 32)")
    p.add_argument("--detector", default=None, help="face detector (default: the checkpoint's, else mtcnn)")
    p.add_argument("--margin", type=float, default=None,
                   help="crop margin (default: the checkpoint's, else 1.3)")
    p.add_argument("--shift", type=float, default=None,
                   help="crop centre shift down, in face box sides (default: the checkpoint's, else 0)")
    p.add_argument("--size", type=positive_int, default=None,
                   help="crop size in px (default: the checkpoint's, else its image size)")
    p.add_argument("--min-score", type=float, default=None,
                   help="face detector confidence in [0, 1] (default: the checkpoint's, else 0.9)")
    p.add_argument("--threshold", type=float, default=0.5, help="call FAKE at p(fake) >= this (default: 0.5)")
    p.add_argument("--aggregate", default="mean", choices=["mean", "top50", "median"],
                   help="frame scores -> video score (default: mean)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_predict)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="synthetic end-to-end: standard vs PGD training, robust report")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--n-train", type=positive_int, default=2000)
    p.add_argument("--n-test", type=positive_int, default=500)
    p.add_argument("--epochs", type=positive_int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_demo)


def _preprocess(args: argparse.Namespace) -> int:
    from deepshield.data.preprocess import PreprocessConfig, run_preprocess

    cfg = PreprocessConfig(root=args.root, layout=args.layout, out=args.out, fps=args.fps,
                           frames_per_video=args.frames_per_video, size=args.size, margin=args.margin,
                           faces=args.faces, workers=args.workers, min_score=args.min_score,
                           format=args.format,
                           quality=args.quality, compression=args.compression, splits=args.splits,
                           shard=args.shard, max_side=args.max_side, shift=args.shift, metadata=args.metadata,
                           split_ratios=args.split_ratios)
    print(run_preprocess(cfg, progress=not args.quiet))
    return 0


def _add_preprocess(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preprocess", help="videos -> face crops + catalog.csv (MTCNN; resumable, parallel)")
    p.add_argument("root", help="dataset folder")
    p.add_argument("--layout", required=True, choices=["ffpp", "celebdf", "dfdc", "folder", "faces"],
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
    p.add_argument("--faces", default="largest", choices=["largest", "all"])
    p.add_argument("--workers", type=positive_int, default=1, help="parallel worker processes (default: 1)")
    p.add_argument("--min-score", type=float, default=0.9, help="minimum detector confidence (default: 0.9)")
    p.add_argument("--format", default="png", choices=["png", "jpg"])
    p.add_argument("--quality", type=positive_int, default=95, help="JPEG quality (default: 95)")
    p.add_argument("--compression", default=None, help="ffpp: keep only raw|c23|c40 (default: all)")
    p.add_argument("--splits", default=None, help="ffpp: folder with the official train/val/test.json")
    p.add_argument("--shard", default=None, help="K/N: process the K-th of N deterministic shards")
    p.add_argument("--max-side", type=positive_int, default=640, help="detect on frames downscaled to this")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_preprocess)


def _catalog(args: argparse.Namespace) -> int:
    from deepshield.data.catalog import merge_catalogs

    rows, errors = merge_catalogs(args.out, args.parts)
    print(f"merged {len(args.parts)} catalogs into {args.out}: {rows} rows, {errors} errors")
    return 0


def _add_catalog(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("catalog", help="catalog tools: merge shards")
    p.add_argument("action", choices=["merge"])
    p.add_argument("out", help="merged output folder")
    p.add_argument("parts", nargs="+", help="preprocess output folders of the shards")
    p.set_defaults(func=_catalog)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_train, _add_evaluate, _add_demo]
COMMANDS += [_add_report, _add_predict, _add_preprocess, _add_catalog]


def build_parser(train_defaults: dict | None = None) -> argparse.ArgumentParser:
    """The CLI; ``train_defaults`` (a recipe's values) replace the train flags' defaults."""
    parser = Parser(prog="deepshield",
                    description="Deepfake detectors that hold up under adversarial attack.")
    parser.add_argument("--version", action="version", version=f"deepshield {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add in COMMANDS:
        add(sub)
    if train_defaults:
        sub.choices["train"].set_defaults(**train_defaults)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``argv``; for ``train --config RECIPE``, the recipe's values become the flags' defaults."""
    args = build_parser().parse_args(argv)
    if args.command == "train" and args.config:
        from deepshield.config import load_recipe

        args = build_parser(load_recipe(args.config)).parse_args(argv)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except USER_ERRORS as e:  # a bad recipe
        print(f"deepshield train: error: {e}", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except USER_ERRORS as e:
        if os.environ.get("DEEPSHIELD_DEBUG"):
            raise
        print(f"deepshield {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command (with --resume for train) to continue", file=sys.stderr)
        return 130
