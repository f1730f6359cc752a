"""Subcommands that ship a model: export (ONNX / TorchScript), calibrate (its operating threshold)."""

from __future__ import annotations

import argparse

from deepshield.cli.values import SUMMARIES, config_of, positive_int, rule_help
from deepshield.config import CalibrateConfig, ExportConfig


def _export(args: argparse.Namespace) -> int:
    from deepshield.export import export_model

    cfg: ExportConfig = config_of(ExportConfig, args)
    print(export_model(cfg).summary())
    return 0


def add_export(sub: argparse._SubParsersAction) -> None:
    from deepshield.export import EXPORT_FORMATS

    suffixes = ", ".join(f"{f.name}: {f.suffix}" for f in EXPORT_FORMATS.values())
    p = sub.add_parser("export", help=SUMMARIES["export"],
                       description="Write the model of a checkpoint as a self-contained file: input pixels "
                                   "float32 [N, 3, S, S] RGB in [0, 1] (normalization inside), output probs "
                                   "[N, 2] = p(real), p(fake); dynamic batch axis; image size, class names, "
                                   "crop settings and training config recorded as metadata. The file is "
                                   "loaded back and checked against PyTorch before it is written.")
    p.add_argument("--checkpoint", default="default",
                   help="best.pt or last.pt of a training run, or a bundled model: 'default' or 'robust' "
                        "(adversarially trained) (default: default)")
    p.add_argument("--format", default="onnx", choices=list(EXPORT_FORMATS), help="(default: onnx)")
    p.add_argument("--out", default=None,
                   help=f"file to write ({suffixes}) (default: beside the checkpoint; ./default.onnx for "
                        "the bundled model)")
    p.set_defaults(func=_export)


def _calibrate(args: argparse.Namespace) -> int:
    from deepshield.evaluation.calibrate import calibrate_checkpoint

    print(calibrate_checkpoint(config_of(CalibrateConfig, args)).summary())
    return 0


def add_calibrate(sub: argparse._SubParsersAction) -> None:
    from deepshield.contracts.aggregate import AGGREGATIONS
    from deepshield.contracts.threshold import THRESHOLD_RULES

    p = sub.add_parser("calibrate", help=SUMMARIES["calibrate"],
                       description="Score the videos of one or more datasets with a checkpoint, choose "
                                   "its operating threshold with a rule, and write a copy of the checkpoint "
                                   "that records it (config['threshold']); predict, serve and export use it. "
                                   "Prints the threshold and each dataset's FPR/TPR at it.")
    p.add_argument("--checkpoint", default="default",
                   help="best.pt or last.pt of a training run, or a bundled model: 'default' or 'robust' "
                        "(default: default)")
    p.add_argument("--dataset", action="append", required=True, metavar="catalog:PATH[:split]",
                   help="videos to calibrate on, e.g. catalog:faces/catalog.csv:val (repeatable: the fpr "
                        "rules hold on the reals of every dataset)")
    p.add_argument("--rule", default="eer", choices=list(THRESHOLD_RULES),
                   help=rule_help() + " (default: eer)")
    p.add_argument("--aggregate", default="mean", choices=list(AGGREGATIONS),
                   help="frame scores -> video score, as predict's --aggregate (default: mean)")
    p.add_argument("--frames", type=positive_int, default=None,
                   help="crops per video, evenly spaced (default: all the catalog holds)")
    p.add_argument("--out", required=True, metavar="NEW.pt",
                   help="the calibrated copy to write (the input is overwritten only when this names it)")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default: auto)")
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=_calibrate)
