"""The robust sweep a user runs, ours vs a loop over the libraries: FGSM + PGD-10 + APGD-CE-10 at
ε ∈ {1, 2, 4, 8}/255 on the PGD-AT-trained EfficientNet-Lite0 (128 px) and its real DFDC test crops.

- libraries: one independent run per (attack, ε) on every face: torchattacks FGSM and PGD (α = 2.5ε/10,
  random start), ART APGD-CE (10 iterations), each scored on the model;
- ours: ``evaluation.robust.sweep`` with the evaluation defaults: correct faces only, early stop, the
  first ``sanity_n`` faces attacked independently (for the sanity checks), the others in a cascade
  (ε ascending, cheap attack first, fooled faces keep their point, only survivors attacked again;
  APGD is our own, ``deepshield.attacks.apgd``).

Images are decoded once before timing; both are timed from images to scores. Prints the seconds, the
ratio (goal >= 3x) and the robust accuracy per attack and ε for both (ours must be no higher).

    python benchmarks/sweep_vs_libraries.py [--n 256] [--checkpoint runs/results/dfdc-faces-pgd-at/best.pt]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from machine import machine_line  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from deepshield.attacks.external import ARTAPGD  # noqa: E402
from deepshield.config import SweepSpec  # noqa: E402
from deepshield.data.datasets import build_eval_dataset  # noqa: E402
from deepshield.evaluation.robust import sweep  # noqa: E402
from deepshield.models.loading import load_model  # noqa: E402
from deepshield.training.loops import split_batch  # noqa: E402

EPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
ATTACKS = ("fgsm", "pgd", "apgd")
CPU = torch.device("cpu")


def libraries(model, x_all: torch.Tensor, y_all: torch.Tensor,
              batch: int) -> tuple[tuple[float, float], dict]:
    """(wall s, CPU s of this process) and, per (attack, ε), which faces stay correctly classified."""
    import torchattacks

    start, correct = (time.perf_counter(), time.process_time()), {}
    for eps in EPS:
        runs = {"fgsm": torchattacks.FGSM(model, eps=eps),
                "pgd": torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / 10, steps=10, random_start=True),
                "apgd": lambda x, y, eps=eps: ARTAPGD(eps=eps, steps=10, seed=0)(model, x, y)}
        for name, attack in runs.items():
            right = []
            for i in range(0, len(x_all), batch):
                x, y = x_all[i:i + batch], y_all[i:i + batch]
                x_adv = attack(x, y)
                with torch.no_grad():
                    right.append(model(x_adv).argmax(1) == y)
            correct[(name, eps)] = torch.cat(right)
    return (time.perf_counter() - start[0], time.process_time() - start[1]), correct


def ours(model, x_all: torch.Tensor, y_all: torch.Tensor, batch: int,
         spec: SweepSpec) -> tuple[tuple[float, float], dict]:
    start = (time.perf_counter(), time.process_time())
    result, _ = sweep(model, TensorDataset(x_all, y_all), spec, CPU, batch_size=batch)
    seconds = (time.perf_counter() - start[0], time.process_time() - start[1])
    correct = {(r.attack, r.eps): (torch.tensor(result.samples.scores[r.key]) >= 0.5).long() == y_all
               for r in result.robust}
    return seconds, correct


def load_faces(dataset: str, n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    data = build_eval_dataset(dataset, image_size=size, seed=seed, max_videos=n)
    xs, ys = [], []
    for batch in DataLoader(data, batch_size=64, shuffle=False):
        x, y, _ = split_batch(batch)
        xs.append(x)
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="runs/results/dfdc-faces-pgd-at/best.pt")
    ap.add_argument("--dataset", default="catalog:runs/results/faces/catalog.csv:test")
    ap.add_argument("--n", type=int, default=256,
                    help="test crops, a seeded label-balanced subset (default: 256)")
    ap.add_argument("--sanity-n", type=int, default=SweepSpec().sanity_n,
                    help="faces attacked independently for the sanity checks (default: the evaluation's)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    model, cfg = load_model(args.checkpoint, CPU)
    x_all, y_all = load_faces(args.dataset, args.n, cfg.image_size, args.seed)
    print(f"# robust sweep vs library loop; {machine_line()}")
    print(f"# {args.checkpoint} ({cfg.backbone}, {cfg.image_size} px), {len(y_all)} test crops "
          f"({int(y_all.sum())} fake), sanity subset {min(args.sanity_n, len(y_all))}; other processes may "
          f"share the CPU (load average {os.getloadavg()[0]:.1f})")
    with torch.no_grad():
        clean = float((model(x_all).argmax(1) == y_all).float().mean())
    spec = SweepSpec(attacks=ATTACKS, eps=EPS, steps=10, gallery=0, sanity_n=args.sanity_n)
    t_ours, acc_ours = ours(model, x_all, y_all, args.batch_size, spec)
    print(f"ours (cascade, our APGD): {t_ours[0]:.1f} s wall, {t_ours[1]:.1f} s CPU", flush=True)
    t_lib, acc_lib = libraries(model, x_all, y_all, args.batch_size)
    print(f"libraries (torchattacks FGSM/PGD + ART APGD, every (attack, eps) on every face): "
          f"{t_lib[0]:.1f} s wall, {t_lib[1]:.1f} s CPU")
    print(f"\nclean accuracy {clean:.3f}")
    print("| attack | " + " | ".join(f"{e * 255:g}/255 libraries / ours" for e in EPS) + " |")
    print("|---|" + "---|" * len(EPS))
    higher = []
    for a in (*ATTACKS, "worst case"):
        cells = []
        for e in EPS:
            names = ATTACKS if a == "worst case" else (a,)
            lib = float(torch.stack([acc_lib[(n, e)] for n in names]).all(0).float().mean())
            our = float(torch.stack([acc_ours[(n, e)] for n in names]).all(0).float().mean())
            cells.append(f"{lib:.3f} / {our:.3f}")
            if our > lib + 1e-9:
                higher.append(f"{a}@{e * 255:g}/255")
        print(f"| {a} | " + " | ".join(cells) + " |")
    print(f"\nspeed-up {t_lib[0] / t_ours[0]:.2f}x wall, {t_lib[1] / t_ours[1]:.2f}x CPU time (goal >= 3x; "
          f"CPU time is the steadier measure when other processes share the machine); ours higher than the "
          f"libraries at: {', '.join(higher) or 'nowhere'}")


if __name__ == "__main__":
    main()
