"""Cost and effect of each training objective on the same data and epochs.

For each model: the training loop's time per epoch (the trainer's images/s, validation excluded) of every
objective relative to standard training (measured in this run), and clean / PGD-10 (ε = train ε, L∞)
accuracy on held-out synthetic images after the same number of epochs. Papers: single-step AT (FGSM-RS,
N-FGSM) costs about 2x standard; PGD-AT with k steps about (k+1)x. Prints a table; asserts nothing.

    python benchmarks/adv_training.py [--models small_cnn,efficientnet_b0] [--n-train 2000] [--epochs 3]
    python benchmarks/adv_training.py --models tf_efficientnet_lite0 --objectives none,n-fgsm,pgd --steps 2
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from deepshield.attacks import PGD
from deepshield.config import TrainConfig
from deepshield.data.synthetic import SyntheticDeepfakeDataset
from deepshield.models import build_model
from deepshield.models.loading import load_checkpoint
from deepshield.training.loops import predict
from deepshield.training.objectives import OBJECTIVES
from deepshield.training.trainer import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="small_cnn,efficientnet_b0")
    ap.add_argument("--objectives", default=",".join(OBJECTIVES))
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--eps", type=float, default=4 / 255)
    ap.add_argument("--steps", type=int, default=7, help="attack steps of PGD-AT, TRADES, MART (default: 7)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    test_set = SyntheticDeepfakeDataset(args.n_test, image_size=args.image_size, seed=20_000)
    test = DataLoader(test_set, batch_size=128)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.n_train} train images at "
          f"{args.image_size} px, {args.epochs} epochs, eps {args.eps * 255:.3g}/255, {args.steps}-step "
          "attacks in training (step eps/2)\n")
    for model_name in args.models.split(","):
        n_train = args.n_train if model_name == "small_cnn" else max(256, args.n_train // 4)
        rows = []
        for objective in args.objectives.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                cfg = TrainConfig(backbone=model_name, adv=objective, eps=args.eps, steps=args.steps,
                                  alpha=args.eps / 2 if objective != "n-fgsm" else None, epochs=args.epochs,
                                  n_train=n_train, n_val=128, image_size=args.image_size, progress=False,
                                  lr=1e-3, out=str(Path(tmp) / "run"))
                result = train(cfg)
                seconds = n_train / result.metrics["images_per_s"]  # the training loop of the last epoch
                model = build_model(model_name, image_size=args.image_size)
                model.load_state_dict(load_checkpoint(result.last_path)["model"])
                model.eval()
                clean = predict(model, test, torch.device("cpu")).acc
                attack = PGD(eps=args.eps, alpha=args.eps / 4, steps=10, seed=0, early_stop=True)
                robust = predict(model, test, torch.device("cpu"), attack=attack).acc
            rows.append((objective, seconds, clean, robust))
        base = next(r[1] for r in rows if r[0] == "none")
        print(f"## {model_name} ({n_train} train images)")
        print("| objective | s/epoch | cost vs standard | clean acc | PGD-10 acc |\n|---|---|---|---|---|")
        for objective, seconds, clean, robust in rows:
            print(f"| {objective} | {seconds:.1f} | {seconds / base:.2f}x | {clean:.3f} | {robust:.3f} |")
        print(flush=True)


if __name__ == "__main__":
    main()
