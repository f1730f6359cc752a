"""Subcommands that ship a model: export (ONNX / TorchScript)."""

from __future__ import annotations

import argparse

from deepshield.cli.values import SUMMARIES, config_of
from deepshield.config import ExportConfig


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
