"""Robust-accuracy evaluation speed: PGD-10 L∞ ε=4/255 on the same model and the same images, three ways.

- ours: deepshield's evaluation path (``evaluation.robust.attack_correct``): only correctly classified
  images are attacked, and PGD stops on each image as soon as it is fooled;
- torchattacks.PGD: every image, every step;
- ART ProjectedGradientDescent (PyTorchClassifier): every image, every step, via numpy.

All three use α = ε/4, a uniform random start, 10 steps, the same batches; each is timed from clean
images to predictions on the adversarial images. Prints images/s, the ratios, and the robust accuracy
each finds (ours should be no higher: it keeps the first iterate that fools a sample).
Goal: ours >= 3x torchattacks. SmallCNN is trained for a few seconds on synthetic faces first so that
robust accuracy means something; efficientnet_b0 is untrained (random init, no download).
"gradient steps per image" counts images through gradient-enabled forward passes (torchattacks and
ART: steps x images; ours: only until each image is fooled, and none for misclassified images).

    python benchmarks/attack_speed.py                      # SmallCNN and efficientnet_b0, 128 px, 256 images
    python benchmarks/attack_speed.py --n 64 --models small_cnn
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from deepshield.attacks import PGD  # noqa: E402
from deepshield.data.synthetic import SyntheticDeepfakeDataset  # noqa: E402
from deepshield.evaluation.checks import noise_tolerance  # noqa: E402
from deepshield.evaluation.robust import attack_correct  # noqa: E402
from deepshield.models import build_model  # noqa: E402


def train_briefly(model: torch.nn.Module, size: int, seconds: float, seed: int = 0) -> torch.nn.Module:
    # Standard training on synthetic faces for about ``seconds``: accurate, not adversarially trained.
    torch.manual_seed(seed)
    data = SyntheticDeepfakeDataset(512, image_size=size, seed=seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        for x, y in DataLoader(data, batch_size=32, shuffle=True):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            steps += 1
            if time.perf_counter() - start >= seconds:
                break
    return model.eval()


def ours(model, batches, eps, alpha, steps):
    attack = PGD(eps=eps, alpha=alpha, steps=steps, random_start=True, early_stop=True, seed=0)
    correct = []
    for x, y in batches:
        _, p = attack_correct(model, x, y, attack)
        correct.append(((p >= 0.5).long() == y).numpy())
    return np.concatenate(correct)


def with_torchattacks(model, batches, eps, alpha, steps):
    import torchattacks

    attack = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
    correct = []
    for x, y in batches:
        x_adv = attack(x, y)
        with torch.no_grad():
            correct.append((model(x_adv).argmax(1) == y).numpy())
    return np.concatenate(correct)


def with_art(model, batches, eps, alpha, steps):
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    x0 = batches[0][0]
    clf = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(x0.shape[1:]),
                            nb_classes=2, clip_values=(0.0, 1.0), device_type="cpu")
    attack = ProjectedGradientDescent(clf, norm=np.inf, eps=eps, eps_step=alpha, max_iter=steps,
                                      num_random_init=1, batch_size=len(x0), verbose=False)
    correct = []
    for x, y in batches:
        x_adv = attack.generate(x.numpy(), y=y.numpy())
        with torch.no_grad():
            correct.append((model(torch.from_numpy(x_adv)).argmax(1) == y).numpy())
    return np.concatenate(correct)


METHODS = {"ours (deepshield eval path)": ours, "torchattacks.PGD": with_torchattacks, "ART PGD": with_art}


def bench_model(name: str, args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    model = build_model(name, num_classes=2, image_size=args.size, pretrained=None)
    trained = ""
    if name == "small_cnn" and args.train_seconds > 0:
        train_briefly(model, args.size, args.train_seconds)
        trained = f", trained {args.train_seconds:.0f} s on synthetic faces"
    model.eval()
    data = SyntheticDeepfakeDataset(args.n, image_size=args.size, seed=777)
    batches = [(x, y) for x, y in DataLoader(data, batch_size=args.batch_size)]
    with torch.no_grad():
        clean = float(np.mean([(model(x).argmax(1) == y).float().mean().item() for x, y in batches]))
    print(f"\n== {name} at {args.size} px, {args.n} images{trained}; clean accuracy {clean:.3f}")
    eps = args.eps / 255
    alpha = eps / 4
    warm = [(batches[0][0][:4], batches[0][1][:4])]
    results = {}
    passes = {"n": 0}  # images through gradient-enabled forwards: the attack's gradient steps

    def count(module, inputs, output):
        if torch.is_grad_enabled():
            passes["n"] += len(inputs[0])

    hook = model.register_forward_hook(count)
    for label, fn in METHODS.items():
        fn(model, warm, eps, alpha, args.steps)  # warm-up (allocations, lazy imports)
        best = None
        for _ in range(args.repeats):
            passes["n"] = 0
            start = time.perf_counter()
            correct = fn(model, batches, eps, alpha, args.steps)
            seconds = time.perf_counter() - start
            best = seconds if best is None else min(best, seconds)
        results[label] = (args.n / best, float(correct.mean()))
        print(f"  {label:<28} {args.n / best:8.1f} images/s   robust accuracy {correct.mean():.3f}   "
              f"gradient steps per image {passes['n'] / args.n:5.2f}", flush=True)
    hook.remove()
    ours_rate, ours_acc = results["ours (deepshield eval path)"]
    tol = noise_tolerance(args.n)  # random starts differ: 1.5 binomial standard errors
    for label in ("torchattacks.PGD", "ART PGD"):
        rate, acc = results[label]
        verdict = ("no higher" if ours_acc <= acc + 1e-9 else
                   f"higher, within noise ±{tol:.3f}" if ours_acc <= acc + tol else "HIGHER")
        print(f"  ours / {label:<16} {ours_rate / rate:5.2f}x faster; robust accuracy {ours_acc:.3f} vs "
              f"{acc:.3f} ({verdict})")
    ratio = ours_rate / results["torchattacks.PGD"][0]
    goal = ratio >= 3 and ours_acc <= results["torchattacks.PGD"][1] + tol
    print(f"  goal (>= 3x torchattacks, robust accuracy no higher beyond noise): {ratio:.2f}x, "
          f"{'MET' if goal else 'NOT MET'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=256, help="images (default: 256)")
    p.add_argument("--models", default="small_cnn,efficientnet_b0", help="comma-separated model names")
    p.add_argument("--size", type=int, default=128, help="image size in px (default: 128)")
    p.add_argument("--eps", type=float, default=4.0, help="L-inf budget in 1/255 units (default: 4)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--train-seconds", type=float, default=8.0, help="SmallCNN training time (default: 8)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per method; the fastest counts")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"PGD-{args.steps} L-inf eps={args.eps:g}/255 alpha=eps/4; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus")
    for name in args.models.split(","):
        bench_model(name.strip(), args)


if __name__ == "__main__":
    main()
