"""FGSM: the fast gradient sign method (Goodfellow et al., ICLR 2015, arXiv:1412.6572).

One step of size α (default ε) along the sign of the input gradient (L∞) or the normalized gradient
(L2), pixel units, x in [0, 1]. With ``random_start=True`` and α = 1.25ε this is the "FGSM-RS" attack
used for fast adversarial training (Wong, Rice & Kolter, ICLR 2020).

    >>> x_adv = FGSM(eps=8/255)(model, x, y)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deepshield.attacks.base import SINGLE_STEP, LossFn
from deepshield.attacks.pgd import PGD
from deepshield.attacks.registry import register_attack

if TYPE_CHECKING:
    from deepshield.config import SweepSpec


@register_attack("fgsm")
class FGSM(PGD):
    """Single-step attack; a PGD with one step, α = ε and no random start by default."""

    kind, rank, reference, help, warm_start = SINGLE_STEP, 0, True, "single-step", False

    @classmethod
    def eval_kwargs(cls, eps: float, spec: SweepSpec) -> dict[str, Any]:
        return {}

    def __init__(
        self,
        eps: float = 8 / 255,
        alpha: float | None = None,
        norm: str = "linf",
        random_start: bool = False,
        targeted: bool = False,
        loss_fn: LossFn | None = None,
        eval_mode: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__(eps=eps, alpha=alpha if alpha is not None else eps, steps=1, norm=norm,
                         random_start=random_start, restarts=1, targeted=targeted, early_stop=False,
                         loss_fn=loss_fn, eval_mode=eval_mode, seed=seed)
