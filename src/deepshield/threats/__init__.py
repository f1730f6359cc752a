"""Pipeline-level threat models: input-transformation defenses evaluated adaptively (BPDA, EOT)."""

from __future__ import annotations

from deepshield.threats.defenses import (
    DEFENSES,
    DefendedModel,
    EnsembleModel,
    bpda,
    build_defense,
    parse_defenses,
    register_defense,
)
from deepshield.threats.eot import EOTAttack, EOTModel, is_randomized

__all__ = ["DEFENSES", "DefendedModel", "EOTAttack", "EOTModel", "EnsembleModel", "bpda", "build_defense",
           "is_randomized", "parse_defenses", "register_defense"]
