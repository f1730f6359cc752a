"""Copy a trained model into the package as a bundled detector (weights + config only).

    python scripts/bundle.py runs/results/dfdc-faces-standard/best.pt            # the default model
    python scripts/bundle.py runs/frontier/pgd-1/best.pt --name robust           # the robust model
    python scripts/bundle.py --mtcnn                                              # MTCNN's nets as ONNX

Writes ``src/deepshield/models/weights/NAME.pt``: the model's state dict, its run config (with the
crop settings predict needs), its validation metrics and where it came from; no optimizer state. And
``NAME.onnx`` beside it (parity-checked against PyTorch), which ``predict``'s default runtime uses.
``--mtcnn`` writes facenet-pytorch's MTCNN nets as ONNX into ``src/deepshield/data/mtcnn_nets/`` (each
checked against PyTorch), which predict's default face detector runs without torch.
Update its model card beside it (``MODEL_CARD.md``, ``MODEL_CARD_robust.md``) with the numbers of
RESULTS.md when you change it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from deepshield.config import ExportConfig  # noqa: E402
from deepshield.data.mtcnn_onnx import NETS_DIR, export_nets  # noqa: E402
from deepshield.export import export_model  # noqa: E402
from deepshield.models.loading import load_checkpoint  # noqa: E402
from deepshield.models.zoo import BUNDLED  # noqa: E402
from deepshield.training.checkpoint import save_checkpoint  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", help="a run's best.pt")
    parser.add_argument("--name", default="default", choices=sorted(BUNDLED), help="(default: default)")
    parser.add_argument("--mtcnn", action="store_true", help="(re)write MTCNN's nets as ONNX instead")
    args = parser.parse_args()
    if args.mtcnn:
        for net, diff in export_nets(NETS_DIR).items():
            print(f"wrote {NETS_DIR / net}.onnx, max |onnx - torch| = {diff:.1e}")
        return 0
    if not args.checkpoint:
        parser.error("give a run's best.pt (or --mtcnn)")
    ckpt = load_checkpoint(args.checkpoint)
    config = ckpt["config"]
    if not config.get("preprocess"):
        sys.exit(f"{args.checkpoint}: its config records no crop settings; train on a preprocessed catalog")
    model = {k: v.contiguous() for k, v in ckpt["model"].items()}
    path = save_checkpoint(BUNDLED[args.name], model=model, config=config, metrics=ckpt.get("metrics", {}),
                           source=str(Path(args.checkpoint)), epoch=ckpt.get("epoch"))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) from {args.checkpoint}")
    # The ONNX export ships beside it, so predict's default runtime needs no export on a user's first call;
    # export_model refuses a file whose probabilities differ from PyTorch's by more than PARITY_TOL.
    onnx = path.with_suffix(".onnx")
    done = export_model(ExportConfig(checkpoint=str(path), format="onnx", out=str(onnx)))
    print(f"wrote {onnx} ({onnx.stat().st_size / 1e6:.1f} MB), max |p - p_torch| = {done.max_abs_diff:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
