"""Attacks: ``build_attack(name, **kw)``; attacks are called as ``attack(model, x, y)``.

Every module of this package is imported here, so an attack registered with ``@register_attack`` in a
new file under ``deepshield/attacks/`` is available by name everywhere (CLI, evaluation, checks).
"""

from __future__ import annotations

import importlib
import pkgutil

from deepshield.attacks.apgd import APGD
from deepshield.attacks.base import BLACK_BOX, ITERATIVE, NORMS, SINGLE_STEP, Attack
from deepshield.attacks.external import Square
from deepshield.attacks.fgsm import FGSM
from deepshield.attacks.pgd import PGD
from deepshield.attacks.registry import (
    ATTACKS,
    attack_help,
    attacks_of_kind,
    build_attack,
    build_eval_attack,
    reference_attack,
    register_attack,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["APGD", "ATTACKS", "BLACK_BOX", "FGSM", "ITERATIVE", "NORMS", "PGD", "SINGLE_STEP", "Attack",
           "Square", "attack_help", "attacks_of_kind", "build_attack", "build_eval_attack",
           "reference_attack", "register_attack"]
