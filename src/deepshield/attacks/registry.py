"""The attack registry: attacks register themselves with ``@register_attack`` in their own file.

An attack class says what it is (``kind``: single-step, iterative white-box or black-box; ``rank``:
strength within its kind, larger first) and how robust evaluation configures it (``eval_kwargs``), so
the evaluation, its sanity checks and the CLI need no list of attack names. Adding an attack is one
file under ``deepshield/attacks/``:

    @register_attack("mim")
    class MIM(Attack):
        kind = ITERATIVE
        help = "momentum iterative FGSM"
        ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from deepshield.attacks.base import BLACK_BOX, ITERATIVE, KINDS, SINGLE_STEP, Attack
from deepshield.registry import Registry

if TYPE_CHECKING:
    from deepshield.config import SweepSpec

ATTACKS: Registry[type[Attack]] = Registry("attack")
A = TypeVar("A", bound=type[Attack])


def register_attack(name: str):
    """Class decorator: add an :class:`Attack` subclass to ``ATTACKS`` under ``name``."""

    def register(cls: A) -> A:
        if cls.kind not in KINDS:
            raise ValueError(f"{cls.__name__}.kind must be one of {KINDS}, got {cls.kind!r}")
        ATTACKS.add(name, cls)
        cls.name = name
        return cls

    return register


def build_attack(name: str, **kwargs: object) -> Attack:
    """Build a registered attack by name with its hyper-parameters (ε in [0, 1] pixel units)."""
    return ATTACKS.lookup(name)(**kwargs)


def build_eval_attack(name: str, eps: float, spec: SweepSpec) -> Attack:
    """An attack configured for robust evaluation by ``spec`` (its class's ``eval_kwargs``, then the
    spec's ``--attack-option`` settings for it)."""
    cls = ATTACKS.lookup(name)
    kwargs = {**cls.eval_kwargs(eps, spec), **spec.options_for(name)}
    return cls(eps=eps, norm=spec.norm, seed=spec.seed, **kwargs)


def attacks_of_kind(kind: str, among: tuple[str, ...] | list[str] | None = None) -> list[str]:
    """Registered attack names of ``kind`` (optionally only those in ``among``), strongest first."""
    names = [n for n, cls in ATTACKS.items() if cls.kind == kind and (among is None or n in among)]
    return sorted(names, key=lambda n: (-ATTACKS[n].rank, n))


def reference_attack(kind: str) -> str:
    """The attack the sanity checks run for ``kind`` when the sweep did not include one of that kind."""
    refs = [n for n, cls in ATTACKS.items() if cls.kind == kind and cls.reference]
    if not refs:
        raise LookupError(f"no reference attack of kind {kind!r} is registered")
    return refs[0]


def attack_help() -> str:
    """``fgsm (single-step), pgd (iterative), ...`` for the CLI's help text."""
    return ", ".join(f"{n} ({ATTACKS[n].help or ATTACKS[n].kind})" for n in sorted(ATTACKS))


__all__ = ["ATTACKS", "BLACK_BOX", "ITERATIVE", "SINGLE_STEP", "attack_help", "attacks_of_kind",
           "build_attack", "build_eval_attack", "reference_attack", "register_attack"]
