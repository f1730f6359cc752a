"""Attack registry: ``build_attack(name, **kw)``; attacks are called as ``attack(model, x, y)``."""

from __future__ import annotations

from deepshield.attacks.base import Attack
from deepshield.attacks.external import APGD, Square
from deepshield.attacks.fgsm import FGSM
from deepshield.attacks.pgd import PGD

ATTACKS: dict[str, type[Attack]] = {"fgsm": FGSM, "pgd": PGD, "apgd": APGD, "square": Square}


def build_attack(name: str, **kwargs: object) -> Attack:
    """Build a registered attack by name with its hyper-parameters (ε in [0, 1] pixel units)."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose from {sorted(ATTACKS)}")
    return ATTACKS[name](**kwargs)


__all__ = ["APGD", "ATTACKS", "FGSM", "PGD", "Attack", "Square", "build_attack"]
