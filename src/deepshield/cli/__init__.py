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

from deepshield import __version__
from deepshield.cli.deploy import add_calibrate, add_export
from deepshield.cli.learn import add_demo, add_evaluate, add_report, add_train
from deepshield.cli.media import add_attack, add_catalog, add_predict, add_preprocess
from deepshield.cli.serve import add_serve
from deepshield.cli.values import SUMMARIES, Parser, UsageError, parse_eps
from deepshield.config import (
    CalibrateConfig,
    DemoConfig,
    EvalConfig,
    ExportConfig,
    MergeConfig,
    PredictConfig,
    PreprocessConfig,
    ReportConfig,
    ServeConfig,
    TrainConfig,
    VideoAttackConfig,
)
from deepshield.errors import DeepshieldError

# OS errors about a path the user gave (a missing video, an unwritable --out).
PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)
_NUMERIC = re.compile(r"-(\d|\.\d)")

COMMANDS: dict[str, tuple[Callable[[argparse._SubParsersAction], None], type]] = {
    "train": (add_train, TrainConfig), "evaluate": (add_evaluate, EvalConfig),
    "demo": (add_demo, DemoConfig),
    "report": (add_report, ReportConfig), "predict": (add_predict, PredictConfig),
    "preprocess": (add_preprocess, PreprocessConfig), "catalog": (add_catalog, MergeConfig),
    "attack": (add_attack, VideoAttackConfig),
    "serve": (add_serve, ServeConfig),
    "export": (add_export, ExportConfig),
    "calibrate": (add_calibrate, CalibrateConfig),
}


ALL = "all"


def build_parser(train_defaults: dict | None = None, only: str | None = ALL) -> argparse.ArgumentParser:
    """The CLI; ``train_defaults`` (a recipe's values) replace the train flags' defaults.

    ``only``: the one subcommand whose flags are built (the others are listed by name and summary,
    so ``deepshield --help`` and ``deepshield predict ...`` do not load what the other commands need);
    ``"all"`` builds every one, None none."""
    parser = Parser(prog="deepshield",
                    description="Deepfake detectors that hold up under adversarial attack.")
    parser.add_argument("--version", action="version", version=f"deepshield {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name, (add, _) in COMMANDS.items():
        if only in (ALL, name):
            add(sub)
        else:
            sub.add_parser(name, help=SUMMARIES[name])
    if train_defaults and "train" in sub.choices:
        sub.choices["train"].set_defaults(**train_defaults)
    return parser


def requested_command(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names (its first word that is not a flag), None if none is a command."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in COMMANDS else None


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
    only = requested_command(argv)
    args = build_parser(only=only).parse_args(argv)
    if args.command == "train" and args.config:
        from deepshield.config import load_recipe

        args = build_parser(load_recipe(args.config), only="train").parse_args(argv)
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
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command (with --resume for train) to continue", file=sys.stderr)
        return 130


__all__ = ["COMMANDS", "Parser", "UsageError", "build_parser", "main", "parse_args", "parse_eps"]
