"""Attack alarm (``deepshield predict --check-attack``): false alarms on clean faces, detection of attacks.

On DFDC face crops of the preprocessing catalog (what the model saw: the stored 224 px crops resized to
its input size), with the bundled model by default:

1. the threshold is calibrated on ``--n-val`` clean *validation* faces (``--far`` false alarms);
2. the false-alarm rate is measured on ``--n`` clean *test* faces (groups disjoint from validation);
3. the same test faces are attacked (untargeted, against their true label, L∞, saved as uint8 as an
   attacker's image file would be): FGSM, PGD-10 with early stop (the first iterate that fools: the
   smallest change, the alarm's hard case) and PGD-10 all steps (a confident wrong verdict), at each
   ``--eps``. ``fooled``: verdict flipped; ``detected``: flagged (of all attacked, and of the fooled);
   ``evades``: fooled and not flagged, the attacker's real success rate against predict --check-attack;
4. attackers who know the alarm, PGD-20 at ``--adaptive-eps`` on the model's logits on x, on
   JPEG-75(x) (BPDA: identity gradient) and on median-3(x) together: "EOT" maximises their summed
   cross-entropy (the textbook adaptive attack: a verdict that survives the probes); "adaptive" takes
   each of them just past the boundary (a CW hinge, margin ``--kappa``) and penalises their log-odds
   differences: what the alarm measures; "plain" is PGD-20 on the model alone on the same faces.

It prints the rates, the threshold to paste into ``threats/alarm.py`` (``DEFAULT_THRESHOLD``) and the
alarm's cost as a ratio to plain scoring measured in the same run, plus the machine line.

    python benchmarks/attack_alarm.py                        # 200 + 200 faces: 37 min on 2 busy cores
    python benchmarks/attack_alarm.py --n 50 --n-val 50 --eps 2 --adaptive-n 20     # a quick look
"""

from __future__ import annotations

import argparse
import csv
import random
import time
from pathlib import Path

import numpy as np
import torch
from machine import machine_line
from sklearn.metrics import roc_auc_score
from torch import nn

from deepshield.attacks import FGSM, PGD
from deepshield.data.datasets import read_crop
from deepshield.models.loading import load_model_and_config
from deepshield.threats.alarm import DEFAULT_THRESHOLD, AttackAlarm, calibrate
from deepshield.threats.defenses import DefendedModel

CATALOG = Path(__file__).resolve().parents[1] / "runs" / "results" / "faces" / "catalog.csv"


def load_faces(catalog: Path, split: str, n: int, size: int,
               seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` random crops (uint8 HxWx3 at the model's size) of ``split`` and their labels (1 = fake)."""
    with catalog.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == split]
    random.Random(seed).shuffle(rows)
    rows = rows[:n]
    crops = [read_crop(catalog.parent / r["path"], size).transpose(1, 2, 0) for r in rows]
    return crops, np.array([int(r["label"]) for r in rows])


class ProbeStack(nn.Module):
    """Logits of ``model`` on x and on each probe of x (BPDA through non-differentiable probes), side by
    side: [N, 2 * (1 + probes)]; the losses below split them."""

    def __init__(self, model: nn.Module, probes: tuple[str, ...]) -> None:
        super().__init__()
        self.members = nn.ModuleList([model] + [DefendedModel(model, p, adaptive=True) for p in probes])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m(x).float() for m in self.members], 1)


def eot_loss(stacked: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of every member (ascended: all of them wrong, confidently)."""
    return sum(nn.functional.cross_entropy(z, y, reduction="sum") for z in stacked.split(2, 1))


def alarm_aware_loss(kappa: float):
    """Every member just past the boundary (CW hinge, margin ``kappa``), their log-odds alike."""

    def loss(stacked: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        members = stacked.split(2, 1)
        sign = 1.0 - 2.0 * y.float()  # log-odds of fake pushed up for reals, down for fakes
        odds = [sign * (z[:, 1] - z[:, 0]) for z in members]
        hinge = sum(torch.relu(kappa - o) for o in odds)
        spread = sum((o - odds[0]).abs() for o in odds[1:])
        return -(hinge + spread).sum()

    return loss


def to_tensor(crops: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)


def to_crops(x: torch.Tensor) -> list[np.ndarray]:
    return list((x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())


def attack_in_batches(attack, model: nn.Module, crops: list[np.ndarray], y: np.ndarray,
                      batch: int) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for i in range(0, len(crops), batch):
        x = to_tensor(crops[i:i + batch])
        out += to_crops(attack(model, x, torch.from_numpy(y[i:i + batch])))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default="default")
    ap.add_argument("--catalog", type=Path, default=CATALOG)
    ap.add_argument("--n", type=int, default=200, help="clean test faces (default: 200)")
    ap.add_argument("--n-val", type=int, default=200, help="clean validation faces to calibrate on")
    ap.add_argument("--far", type=float, default=0.05, help="false-alarm rate to calibrate for")
    ap.add_argument("--eps", default="1,2,4", help="L-inf budgets in /255 (default: 1,2,4)")
    ap.add_argument("--adaptive-n", type=int, default=64, help="faces for the adaptive attacks")
    ap.add_argument("--adaptive-eps", type=float, default=2.0, help="their budget in /255 (default: 2)")
    ap.add_argument("--kappa", type=float, default=1.0, help="the adaptive attack's target log-odds margin")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model, train_cfg, _ = load_model_and_config(args.checkpoint, torch.device("cpu"))
    size = train_cfg.image_size

    @torch.no_grad()
    def score_fn(crops: list[np.ndarray]) -> np.ndarray:
        x = to_tensor(crops)
        return torch.cat([torch.softmax(model(x[i:i + args.batch]).float(), 1)[:, 1]
                          for i in range(0, len(x), args.batch)]).numpy()

    start = time.perf_counter()
    val, _ = load_faces(args.catalog, "val", args.n_val, size, args.seed)
    test, y = load_faces(args.catalog, "test", args.n, size, args.seed + 1)
    probe = AttackAlarm()
    val_scores, _ = probe.face_scores(score_fn, val)
    threshold = calibrate(val_scores, args.far)
    alarm = AttackAlarm(threshold=threshold)
    print(f"threshold {threshold:.3f} (|Δ log-odds| at {args.far:.0%} false alarms on {len(val)} clean val "
          f"faces; DEFAULT_THRESHOLD in threats/alarm.py is {DEFAULT_THRESHOLD}), "
          f"probes {', '.join(alarm.probes)}")

    t0 = time.perf_counter()
    p_clean = score_fn(test)
    t_plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    clean_scores, _ = alarm.face_scores(score_fn, test, p_clean)
    t_alarm = time.perf_counter() - t0
    clean_acc = float(((p_clean >= 0.5) == y).mean())
    print(f"clean test faces: {len(test)}, accuracy {clean_acc:.3f}, false alarms "
          f"{(clean_scores > threshold).mean():.3f} (at the default threshold "
          f"{(clean_scores > DEFAULT_THRESHOLD).mean():.3f})")
    print(f"alarm cost: {(t_plain + t_alarm) / t_plain:.2f}x the time of plain scoring "
          f"({len(alarm.probes)} probes; measured in this run)")

    eps_list = [float(e) for e in args.eps.split(",")]
    rows = [(f"{name} {e:g}/255", attack, test, y)
            for e in eps_list
            for name, attack in (("FGSM", FGSM(eps=e / 255)),
                                 ("PGD-10 early stop", PGD(eps=e / 255, alpha=2.5 * e / 255 / 10, steps=10,
                                                           early_stop=True, seed=args.seed)),
                                 ("PGD-10 all steps", PGD(eps=e / 255, alpha=2.5 * e / 255 / 10, steps=10,
                                                          seed=args.seed)))]
    e, faces, labels = args.adaptive_eps, test[:args.adaptive_n], y[:args.adaptive_n]
    pgd20 = {"eps": e / 255, "alpha": 2.5 * e / 255 / 20, "steps": 20, "seed": args.seed}
    stack = ProbeStack(model, alarm.probes)
    rows += [(f"plain PGD-20 {e:g}/255 (adaptive rows' faces)", PGD(**pgd20), faces, labels),
             (f"EOT PGD-20 {e:g}/255 (CE through the probes)", (PGD(**pgd20, loss_fn=eot_loss), stack),
              faces, labels),
             (f"adaptive PGD-20 {e:g}/255 (alarm-aware)",
              (PGD(**pgd20, loss_fn=alarm_aware_loss(args.kappa)), stack), faces, labels)]

    print(f"\n{'attack':<48} {'n':>4} {'fooled':>7} {'detected':>9} {'det|fooled':>10} {'evades':>7} "
          f"{'AUC':>5}")
    for label, attack, crops, labels in rows:
        attack, target = attack if isinstance(attack, tuple) else (attack, model)
        adv = attack_in_batches(attack, target, crops, labels, args.batch)
        p_adv = score_fn(adv)
        scores, _ = alarm.face_scores(score_fn, adv, p_adv)
        fooled = (p_adv >= 0.5) != labels
        flagged = scores > threshold
        auc = roc_auc_score(np.r_[np.zeros(len(clean_scores)), np.ones(len(scores))],
                            np.r_[clean_scores, scores])
        det_fooled = f"{flagged[fooled].mean():.3f}" if fooled.any() else "-"
        print(f"{label:<48} {len(adv):>4} {fooled.mean():>7.3f} {flagged.mean():>9.3f} {det_fooled:>10} "
              f"{(fooled & ~flagged).mean():>7.3f} {auc:>5.3f}")
    print(f"\n{machine_line()}; {time.perf_counter() - start:.0f} s in all "
          "(timings noisy on a shared machine)")


if __name__ == "__main__":
    main()
