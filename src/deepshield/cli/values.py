"""Flag value parsers with messages that name the fix, and the one-line-error argument parser."""

from __future__ import annotations

import argparse
import re
from typing import Any

from deepshield.config import config_from_mapping, parse_fraction
from deepshield.errors import ConfigError

# One line per subcommand: its --help summary, and what `deepshield --help` lists without building them.
SUMMARIES: dict[str, str] = {
    "export": "a checkpoint -> ONNX or TorchScript file (probabilities out)",
    "train": "train a detector (optionally adversarially)",
    "evaluate": "clean and robust evaluation of a checkpoint, with a report",
    "report": "compare evaluated runs in one report",
    "demo": "synthetic end-to-end: standard vs PGD training, robust report",
    "predict": "fake probability of videos or images",
    "preprocess": "videos -> face crops + catalog.csv (MTCNN; resumable, parallel)",
    "catalog": "catalog tools: merge shards",
    "attack": "an adversarial video file, judged after H.264 re-encoding",
    "serve": "a local web page and JSON API: upload a video or image, get a verdict",
    "calibrate": "choose a checkpoint's operating threshold on datasets (EER or a false-positive rate)",
}


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


def parse_list(text: str) -> tuple[str, ...]:
    """``"a,b"`` -> ("a", "b"); ``"none"`` or ``""`` -> ()."""
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    return () if items in ((), ("none",)) else items


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


def rule_help() -> str:
    """The threshold rules for a --help text ("eer: ...; fpr5: at most 5%% ...", argparse-escaped)."""
    from deepshield.contracts.threshold import THRESHOLD_RULES

    return "; ".join(f"{n}: {r.help}" for n, r in THRESHOLD_RULES.items()).replace("%", "%%")


def config_of(cls: type, args: argparse.Namespace) -> Any:
    """The command's config from the parsed flags (a ConfigError if the values do not fit together)."""
    return config_from_mapping(cls, vars(args))
