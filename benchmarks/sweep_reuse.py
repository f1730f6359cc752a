"""The robust-evaluation sweep a user runs, vs the naive loop: FGSM + PGD-10 + APGD-10 at
ε ∈ {1, 2, 4, 8}/255 on a PGD-AT-trained SmallCNN (most faces robust at small ε).

- naive: one independent run per (attack, ε) on every face: torchattacks FGSM and PGD, ART APGD-CE;
- ours, independent: ``sweep(reuse=False)`` (AutoAttack protocol: correct faces only, early stop; our
  APGD);
- ours: ``sweep()`` (beyond the sanity subset, also reuses fooling points across ε and attacks and
  attacks only the survivors). The real-model version is ``benchmarks/sweep_vs_libraries.py``.

Prints seconds, the ratio to the naive loop, and robust accuracy per ε (ours must be no higher).

    python benchmarks/sweep_reuse.py [--n 1024] [--epochs 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace

import numpy as np
import torch
from machine import machine_line

from deepshield.attacks.external import ARTAPGD
from deepshield.config import SweepSpec, TrainConfig
from deepshield.data.synthetic import SyntheticDeepfakeDataset
from deepshield.evaluation.robust import sweep
from deepshield.models.loading import load_model
from deepshield.training.trainer import train

EPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)


def naive(model, data, batch: int = 256) -> tuple[float, dict]:
    import torchattacks

    x_all, y_all = data.images, data.labels
    start, acc = time.perf_counter(), {}
    for eps in EPS:
        attacks = {"fgsm": torchattacks.FGSM(model, eps=eps),
                   "pgd": torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / 10, steps=10, random_start=True),
                   "apgd": lambda x, y, eps=eps: ARTAPGD(eps=eps, steps=10, seed=0)(model, x, y)}
        for name, attack in attacks.items():
            right = 0
            for i in range(0, len(x_all), batch):
                x, y = x_all[i:i + batch], y_all[i:i + batch]
                x_adv = attack(x, y)
                with torch.no_grad():
                    right += int((model(x_adv).argmax(1) == y).sum())
            acc[(name, eps)] = right / len(x_all)
    return time.perf_counter() - start, acc


def ours(model, data, spec: SweepSpec) -> tuple[float, dict]:
    start = time.perf_counter()
    result, _ = sweep(model, data, spec, torch.device("cpu"), batch_size=256)
    return time.perf_counter() - start, {(r.attack, r.eps): r.metrics.acc for r in result.robust}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1024, help="test faces (default: 1024)")
    ap.add_argument("--epochs", type=int, default=4, help="PGD-AT epochs of the SmallCNN (default: 4)")
    args = ap.parse_args()
    print(f"# sweep vs naive loop; {machine_line()}")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(adv="pgd", eps=4 / 255, steps=5, epochs=args.epochs, image_size=32, n_train=4000,
                          n_val=500, out=tmp, progress=False)
        model, _ = load_model(train(cfg).best_path, torch.device("cpu"))
    data = SyntheticDeepfakeDataset(args.n, image_size=32, seed=77)
    spec = SweepSpec(attacks=("fgsm", "pgd", "apgd"), eps=EPS, steps=10, gallery=0)
    t_naive, acc_naive = naive(model, data)
    t_ind, acc_ind = ours(model, data, replace(spec, reuse=False))
    t_ours, acc_ours = ours(model, data, spec)
    print(f"naive loop (torchattacks FGSM/PGD + ART APGD, every face): {t_naive:.1f} s")
    print(f"ours, independent runs (early stop): {t_ind:.1f} s ({t_naive / t_ind:.2f}x)")
    print(f"ours, reuse across eps and attacks: {t_ours:.1f} s ({t_naive / t_ours:.2f}x)")
    print("\n| attack | " + " | ".join(f"{e * 255:g}/255 naive / ours" for e in EPS) + " |")
    print("|---|" + "---|" * len(EPS))
    worse = []
    for a in spec.attacks:
        cells = []
        for e in EPS:
            cells.append(f"{acc_naive[(a, e)]:.3f} / {acc_ours[(a, e)]:.3f}")
            if acc_ours[(a, e)] > acc_naive[(a, e)] + 1e-9:
                worse.append((a, e))
        print(f"| {a} | " + " | ".join(cells) + " |")
    worst_naive = [min(acc_naive[(a, e)] for a in spec.attacks) for e in EPS]
    worst_ours = [min(acc_ours[(a, e)] for a in spec.attacks) for e in EPS]
    pairs = zip(worst_naive, worst_ours, strict=True)
    print("| worst case | " + " | ".join(f"{n:.3f} / {o:.3f}" for n, o in pairs) + " |")
    mean_pgd = np.mean([acc_ours[("pgd", e)] for e in EPS])
    print(f"\nours higher than naive at: {worse or 'nowhere'}; speed-up {t_naive / t_ours:.2f}x "
          f"(target >= 3x); mean PGD accuracy over eps {mean_pgd:.3f}")


if __name__ == "__main__":
    main()
