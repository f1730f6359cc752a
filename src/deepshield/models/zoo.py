"""Checkpoints by name: ``default`` and ``robust`` are the detectors that ship inside the package.

    >>> resolve_checkpoint("default")     # .../deepshield/models/weights/default.pt
    >>> resolve_checkpoint("robust")      # .../deepshield/models/weights/robust.pt
    >>> resolve_checkpoint("runs/x/best.pt")

How they were trained and what they score: ``deepshield/models/weights/MODEL_CARD.md`` (default),
``MODEL_CARD_robust.md`` (robust), and RESULTS.md at the repository root.
"""

from __future__ import annotations

from pathlib import Path

from deepshield.errors import MissingFileError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# default: the standard detector; robust: the adversarially trained point of RESULTS.md's frontier.
BUNDLED = {"default": WEIGHTS_DIR / "default.pt", "robust": WEIGHTS_DIR / "robust.pt"}


def bundled_export(name: str | Path | None, suffix: str = ".onnx") -> Path | None:
    """The export shipped beside a bundled model (written by ``scripts/bundle.py`` with a parity check),
    or None for other checkpoints or when it is not installed."""
    path = WEIGHTS_DIR / f"{name}{suffix}"
    return path if str(name) in BUNDLED and path.is_file() else None


def resolve_checkpoint(name: str | Path | None) -> Path:
    """A bundled model's file for its name (None = ``default``), else ``name`` as a path."""
    key = "default" if name is None else str(name)
    if key in BUNDLED:
        path = BUNDLED[key]
        if not path.is_file():
            raise MissingFileError(f"the bundled {key} model is missing ({path}); reinstall deepshield "
                                   "(pip install -e .) or pass --checkpoint runs/<run>/best.pt")
        return path
    return Path(key)


__all__ = ["BUNDLED", "WEIGHTS_DIR", "bundled_export", "resolve_checkpoint"]
