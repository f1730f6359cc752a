"""Input defenses attacked plainly vs adaptively (BPDA / EOT): how far a plain attack overestimates them.

For each defense a SmallCNN is trained through it on synthetic 32 px faces for a few epochs (a defense
is deployed with a model that has seen it), then PGD-20 L∞ (α = 2.5 ε / steps, random start, early
stop) attacks the images it gets right, scored on one pass of the deployed model (defense + model):

- plain PGD: differentiates the defense as deployed: zero gradient through JPEG and bit depth, one
  random draw per step through random defenses;
- adaptive: BPDA (identity backward) through non-differentiable defenses, and EOT over ``--eot`` draws
  when the randomness check (``threats.eot.is_randomized``) fires on the batch.

The gap (plain minus adaptive, in points of accuracy) is how much the plain attack overestimates
robustness. ``median:3 (BPDA)`` attacks median with BPDA instead of torch's exact gradient, to show
why median counts as differentiable. ``none`` is the undefended model; ``s`` is the row's seconds,
training included.

    python benchmarks/adaptive_eval.py           # 256 images, eps 4/255, EOT 8 (a few minutes, 2 cores)
    python benchmarks/adaptive_eval.py --eps 8 --n 128
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from torch import nn
from torch.utils.data import DataLoader

from deepshield.attacks import PGD
from deepshield.data.synthetic import SyntheticDeepfakeDataset
from deepshield.evaluation.robust import attack_correct
from deepshield.models import build_model
from deepshield.threats import DefendedModel, EOTAttack, bpda, is_randomized, parse_defenses

DEFAULT = "none;noise:0.03;resize_pad:0.9;jpeg:75;median:3;bits:5"


class _BPDAThrough(nn.Module):
    """``model(defense(x))`` with BPDA's identity backward even where the defense has a real gradient."""

    def __init__(self, model: nn.Module, defended: DefendedModel) -> None:
        super().__init__()
        self.model, self.defenses = model, defended.defenses

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for d in self.defenses:
            x = bpda(d, x)
        return self.model(x)


def train_through(spec: str, epochs: int, seed: int) -> nn.Module:
    """A SmallCNN trained (standard, not adversarial) on defended synthetic faces."""
    torch.manual_seed(seed)
    defenses = parse_defenses(spec, seed=seed) if spec != "none" else []
    data = SyntheticDeepfakeDataset(1024, image_size=32, seed=0)
    model = build_model("small_cnn")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for epoch in range(epochs):
        order = torch.Generator().manual_seed(epoch)
        for x, y in DataLoader(data, batch_size=64, shuffle=True, generator=order):
            with torch.no_grad():
                for d in defenses:
                    x = d(x)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return model.eval()


def robust_acc(scored: nn.Module, attacked: nn.Module, attack, batches) -> float:
    right = total = 0
    for x, y in batches:
        _, p = attack_correct(scored, x, y, attack, attack_model=attacked)
        right += int(((p >= 0.5).long() == y).sum())
        total += len(y)
    return right / total


def bench(spec: str, args: argparse.Namespace, batches, model: nn.Module | None = None) -> nn.Module:
    """One table row; returns the model trained through ``spec`` (reused by its BPDA row)."""
    start = time.perf_counter()
    label = spec
    if spec.endswith(" (BPDA)"):
        spec = spec.removesuffix(" (BPDA)")
    model = model if model is not None else train_through(spec, args.epochs, args.seed)
    defenses = parse_defenses(spec) if spec != "none" else []
    scored = DefendedModel(model, defenses, adaptive=False).eval()
    adaptive = DefendedModel(model, defenses, adaptive=True).eval()
    attacked = _BPDAThrough(model, adaptive) if label != spec else adaptive
    eps = args.eps / 255
    pgd = PGD(eps=eps, alpha=2.5 * eps / args.steps, steps=args.steps, early_stop=True, seed=args.seed)
    torch.manual_seed(args.seed)
    with torch.no_grad():
        right = sum(int((scored(x).argmax(1) == y).sum()) for x, y in batches)
    clean = right / sum(len(y) for _, y in batches)
    fired = is_randomized(scored, batches[0][0])
    plain = robust_acc(scored, scored, pgd, batches)
    eot = EOTAttack(pgd, n=args.eot)
    adapt = robust_acc(scored, attacked, eot, batches)
    masked = [d.name for d in defenses if not d.differentiable or label != spec]
    how = "+".join((["BPDA"] if masked else []) + ([f"EOT-{args.eot}"] if eot.randomized else [])) or "same"
    print(f"  {label:<17} {clean:6.3f} {plain:10.3f} {adapt:9.3f}  {how:<11} {100 * (plain - adapt):+7.1f}"
          f"   {'yes' if fired else 'no':<6} {time.perf_counter() - start:6.1f}", flush=True)
    return model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--defenses", default=DEFAULT,
                   help=f"table rows separated by ';', each a defense chain like jpeg:75,median:3 "
                        f"(default: {DEFAULT})")
    p.add_argument("--n", type=int, default=256, help="test images (default: 256)")
    p.add_argument("--eps", type=float, default=4.0, help="L-inf budget in 1/255 units (default: 4)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--eot", type=int, default=8, help="EOT draws when the randomness check fires (default 8)")
    p.add_argument("--epochs", type=int, default=8, help="training epochs through each defense (default: 8)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"PGD-{args.steps} L-inf eps={args.eps:g}/255 alpha=2.5*eps/steps, EOT-{args.eot}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus")
    data = SyntheticDeepfakeDataset(args.n, image_size=32, seed=777)
    batches = list(DataLoader(data, batch_size=args.batch_size))
    print(f"SmallCNN trained {args.epochs} epochs through each defense; {args.n} synthetic 32 px test images")
    print(f"  {'defense':<17} {'clean':>6} {'plain PGD':>10} {'adaptive':>9}  {'how':<11} {'gap pts':>7}"
          f"   {'random':<6} {'s':>6}")
    rows = [r.strip() for r in args.defenses.split(";") if r.strip()]
    models: dict[str, nn.Module] = {}
    for spec in rows + (["median:3 (BPDA)"] if "median:3" in rows else []):
        base = spec.removesuffix(" (BPDA)")
        models[base] = bench(spec, args, batches, models.get(base))


if __name__ == "__main__":
    main()
