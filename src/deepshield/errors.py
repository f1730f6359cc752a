"""User-facing errors: a mistake in what the user gave us (a flag, a file, a dataset), not a bug.

The CLI prints the one-line message of a :class:`DeepshieldError` and exits 2; any other exception is
a bug in deepshield and shows its traceback. Messages name the thing and the fix::

    raise ConfigError("--eps 2: ε is in [0, 1] pixel units; write 2/255")

Each class also derives from the built-in exception it refines (``ValueError``, ``FileNotFoundError``),
so library callers can keep catching those.
"""

from __future__ import annotations


class DeepshieldError(Exception):
    """Base of every error that is the user's to fix; its message is one line naming the fix.
    ``exit_code``: what the CLI exits with (2; 3 for "no face", as ``deepshield predict`` does)."""

    exit_code = 2


class ConfigError(DeepshieldError, ValueError):
    """A bad setting: a flag value, a recipe key, an unknown registry name."""


class DataError(DeepshieldError, ValueError):
    """Input data that cannot be used as given (empty dataset, contradictory labels, bad JSON)."""


class NoFaceError(DataError):
    """A video or image in which the face detector found no face."""

    exit_code = 3


class MissingFileError(DeepshieldError, FileNotFoundError):
    """A file or folder the user named (or that a run needs) does not exist."""


def unknown_name(kind: str, name: str, choices: object) -> ConfigError:
    """``ConfigError("unknown attack 'pgdd'; choose from apgd, fgsm, pgd, square")``."""
    return ConfigError(f"unknown {kind} {name!r}; choose from {', '.join(sorted(choices))}")  # type: ignore[arg-type]


__all__ = ["ConfigError", "DataError", "DeepshieldError", "MissingFileError", "NoFaceError", "unknown_name"]
