"""Training objectives: ``build_objective(name, eps=..., ...)`` -> ``objective(model, x, y) -> Output``.

The trainer does not know which objective it runs. Each objective returns the loss to minimize and
the logits its accuracy is measured on (adversarial logits for adversarial objectives).

- ``none``    standard cross-entropy.
- ``pgd``     PGD-AT (Madry et al., ICLR 2018): cross-entropy on L∞ PGD examples (random start).
- ``fgsm-rs`` fast adversarial training (Wong, Rice & Kolter, ICLR 2020): FGSM from a uniform random
              start with α = 1.25ε, the attack run in train mode as in the paper.
- ``trades``  TRADES (Zhang et al., ICML 2019): CE(clean) + β·KL(p(x) ‖ p(x')), x' maximizing the KL.
- ``mart``    MART (Wang et al., ICLR 2020): boosted CE on x' + β·KL(p(x) ‖ p(x'))·(1 − p_y(x)).
Attacks run in eval mode (BatchNorm statistics untouched) except for ``fgsm-rs``, following each
paper's reference code. Attack gradients never reach the parameters (see deepshield.attacks), and
attacks run on the plain module inside DDP so they trigger no gradient synchronization.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from deepshield.attacks import FGSM, PGD
from deepshield.training.distributed import unwrap


class Output(NamedTuple):
    loss: torch.Tensor
    logits: torch.Tensor


Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor], Output]


def standard(**_: object) -> Objective:
    def objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Output:
        logits = model(x)
        return Output(F.cross_entropy(logits.float(), y), logits)

    return objective


def pgd_at(eps: float, alpha: float, steps: int, **_: object) -> Objective:
    attack = PGD(eps=eps, alpha=alpha, steps=steps, random_start=True, eval_mode=True)

    def objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Output:
        logits = model(attack(unwrap(model), x, y))
        return Output(F.cross_entropy(logits.float(), y), logits)

    return objective


def fgsm_rs(eps: float, alpha: float | None = None, **_: object) -> Objective:
    # The paper's α = 1.25ε; a user-given α (meant for PGD) is ignored on purpose.
    attack = FGSM(eps=eps, alpha=1.25 * eps, random_start=True, eval_mode=False)

    def objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Output:
        logits = model(attack(unwrap(model), x, y))
        return Output(F.cross_entropy(logits.float(), y), logits)

    return objective


def kl_to_clean(logits_adv: torch.Tensor, p_clean: torch.Tensor) -> torch.Tensor:
    """Summed KL(p_clean ‖ softmax(logits_adv)); the TRADES inner maximization loss."""
    return F.kl_div(F.log_softmax(logits_adv.float(), 1), p_clean, reduction="sum")


def trades_loss(logits_clean: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor,
                beta: float) -> torch.Tensor:
    """CE(clean) + β · mean over the batch of KL(p(x) ‖ p(x'))."""
    natural = F.cross_entropy(logits_clean.float(), y)
    robust = kl_to_clean(logits_adv, F.softmax(logits_clean.float(), 1)) / len(y)
    return natural + beta * robust


def mart_loss(logits_clean: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor,
              beta: float) -> torch.Tensor:
    """Boosted CE on x' plus β · KL(p(x) ‖ p(x')) weighted by (1 − p_y(x)), as in MART's reference code."""
    p_adv = F.softmax(logits_adv.float(), 1)
    top2 = p_adv.argsort(1)[:, -2:]
    wrong = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
    bce = F.cross_entropy(logits_adv.float(), y) + F.nll_loss(torch.log(1.0001 - p_adv + 1e-12), wrong)
    p_clean = F.softmax(logits_clean.float(), 1)
    p_true = p_clean.gather(1, y.unsqueeze(1)).squeeze(1)
    kl = (p_clean * (torch.log(p_clean + 1e-12) - torch.log(p_adv + 1e-12))).sum(1)
    return bce + beta * (kl * (1.0000001 - p_true)).mean()


def trades(eps: float, alpha: float, steps: int, beta: float = 6.0, **_: object) -> Objective:
    attack = PGD(eps=eps, alpha=alpha, steps=steps, random_start=True, loss_fn=kl_to_clean, eval_mode=True)

    def objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Output:
        plain = unwrap(model)
        with torch.no_grad():
            was = plain.training
            plain.eval()
            p_clean = F.softmax(plain(x).float(), 1)
            plain.train(was)
        x_adv = attack(plain, x, p_clean)
        # Separate forward passes, so BatchNorm normalizes each batch on its own as in the paper.
        logits_clean, logits_adv = model(x), model(x_adv)
        return Output(trades_loss(logits_clean, logits_adv, y, beta), logits_adv)

    return objective


def mart(eps: float, alpha: float, steps: int, beta: float = 6.0, **_: object) -> Objective:
    attack = PGD(eps=eps, alpha=alpha, steps=steps, random_start=True, eval_mode=True)

    def objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Output:
        x_adv = attack(unwrap(model), x, y)
        logits_clean, logits_adv = model(x), model(x_adv)
        return Output(mart_loss(logits_clean, logits_adv, y, beta), logits_adv)

    return objective


OBJECTIVES: dict[str, Callable[..., Objective]] = {
    "none": standard, "pgd": pgd_at, "fgsm-rs": fgsm_rs, "trades": trades, "mart": mart,
}


def build_objective(name: str, **kwargs: object) -> Objective:
    """Build a registered objective; kwargs: eps, alpha, steps, beta (ignored where unused)."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown adversarial training method {name!r}; choose from {sorted(OBJECTIVES)}")
    return OBJECTIVES[name](**kwargs)
