"""What is scored and what is attacked: defenses, ensembles, and EOT for randomized models.

A robustness number is only honest if the attack is adaptive (Athalye et al. 2018; Tramèr et al. 2020):

- an input defense that is not differentiable (JPEG, bit-depth reduction) is attacked through BPDA,
  its forward pass kept and its backward pass the identity; a differentiable one (median filter,
  resize-and-pad, noise) through its own gradient;
- a randomized model (a random defense such as resize-and-pad or noise, or any model whose output
  changes between two runs on the same input: the *randomness check*) is attacked with expectation over
  transformation, gradients averaged over ``eot`` draws (8 by default when the check fires);
- a non-adaptive evaluation of a defense must be asked for (``adaptive=False``) and is flagged as a
  failed check: its robust accuracy is not a robustness claim.

    >>> setup = threat_setup(model, cfg, first_batch, device)
    >>> sweep(setup.scored, data, spec, device, attack_model=setup.attacked)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from deepshield.config import EvalConfig
from deepshield.contracts.rows import Check
from deepshield.errors import ConfigError

AUTO_EOT = 8


@dataclass
class ThreatSetup:
    """``scored``: the deployed model (defenses applied as they run at inference); ``attacked``: what
    the attacks differentiate; ``checks``: failed/passed checks about the setup itself."""

    scored: nn.Module
    attacked: nn.Module
    randomized: bool
    eot: int
    defense: str | None
    checks: list[Check] = field(default_factory=list)

    def describe(self) -> dict:
        return {"randomized": self.randomized, "eot": self.eot, "defense": self.defense}


def with_ensemble(model: nn.Module, checkpoints: tuple[str, ...], image_size: int,
                  device: torch.device) -> nn.Module:
    """``model`` averaged with the models of ``checkpoints`` (each resized to its own input size)."""
    if not checkpoints:
        return model
    from deepshield.evaluation.threat_rows import Resized
    from deepshield.models.loading import load_model
    from deepshield.threats.defenses import EnsembleModel

    members = [model]
    for path in checkpoints:
        other, cfg = load_model(path, device)
        members.append(Resized(other, cfg.image_size) if cfg.image_size != image_size else other)
    return EnsembleModel(members).to(device).eval()


def threat_setup(model: nn.Module, cfg: EvalConfig, x: torch.Tensor) -> ThreatSetup:
    """Apply ``cfg.defense``, run the randomness check on ``x`` and choose EOT; see the module docstring."""
    from deepshield.threats.defenses import DefendedModel, parse_defenses
    from deepshield.threats.eot import EOTModel, is_randomized

    scored, attacked, checks = model, model, []
    if cfg.defense:
        defenses = parse_defenses(cfg.defense)
        scored = DefendedModel(model, defenses, adaptive=False)
        attacked = DefendedModel(model, defenses, adaptive=cfg.adaptive)
        checks.append(Check("adaptive", "defense attacked adaptively (BPDA for non-differentiable parts)",
                            cfg.adaptive, "BPDA/EOT on" if cfg.adaptive else
                            f"--non-adaptive: {cfg.defense} attacked through its plain forward pass; the "
                            "robust accuracy is NOT a robustness claim"))
    if cfg.eot is not None and cfg.eot < 1:
        raise ConfigError(f"--eot {cfg.eot}: must be >= 1 (1 turns EOT off)")
    randomized = is_randomized(scored, x)
    eot = cfg.eot if cfg.eot is not None else (AUTO_EOT if randomized else 1)
    if eot > 1:
        attacked = EOTModel(attacked, eot)
    if randomized:
        checks.append(Check("eot", "randomized model attacked with EOT", eot > 1,
                            f"outputs differ between two runs on the same input; attacks average gradients "
                            f"over {eot} draws" if eot > 1 else
                            "outputs differ between two runs on the same input but --eot 1: gradients of "
                            "single draws, robust accuracy overestimated"))
    return ThreatSetup(scored, attacked, randomized, eot, cfg.defense, checks)


__all__ = ["AUTO_EOT", "ThreatSetup", "threat_setup", "with_ensemble"]
