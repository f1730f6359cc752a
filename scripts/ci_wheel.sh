#!/usr/bin/env bash
# CI: the wheel runs without the dev extras. Build it, install it into a FRESH venv that never saw `.[dev]`,
# check that no dev tool is importable there, then run what a `pip install deepshield` user runs:
# `deepshield --help`, `deepshield predict` on one FF++ dev video, and `deepshield evaluate --checkpoint
# default` on 16 DFDC dev faces (FGSM, the default JPEG/H.264 re-encoding rows, so threats.reencode loads).
#
# Torch is not downloaded again (~6 GB): torch, torchvision, triton and their CUDA wheels (nvidia-*, cuda-*)
# of .venv are symlinked, each package folder and its dist-info, into a separate folder that a .pth file
# puts on the fresh venv's path. pip sees them as installed and resolves everything else from the index.
# That folder is outside the fresh venv, and pip does not uninstall what lies outside it (here that would
# delete .venv's files through the links); a constraints file pins them to .venv's versions, so a dependency
# that wanted another torch fails the install instead of pulling one. facenet-pytorch 2.5.3 (unlike 2.6.0)
# has loose pins and installs normally: no --no-deps step is needed (dependencies.md, "Later check").
#
# Takes about 3.5 minutes on 2 cores (measured while a training job shared them, load ~5; pip cache warm):
# build 8 s, venv + links 7 s, pip install 36 s, import checks 12 s, --help 10 s, predict 17 s, preprocess +
# evaluate 60 s, deleting the temp venv (~1 GB of small files) 50 s.
# Everything lives in a temp dir under /tmp (DEEPSHIELD_CI_TMP to move it), removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DEV=${DEV_DATA:-$REPO/../shared/data/dev}
PY=$REPO/.venv/bin/python
test -x "$PY" || { echo "ci_wheel: no .venv (run make setup first)" >&2; exit 2; }
WORK=$(mktemp -d "${DEEPSHIELD_CI_TMP:-/tmp}/deepshield-wheel.XXXXXX")
start=$SECONDS
step() { echo "== ci_wheel [$((SECONDS - start)) s] $*"; }
trap 'step "remove $WORK"; rm -rf "$WORK"; step "removed"' EXIT
export HF_HUB_OFFLINE=1 MPLBACKEND=Agg PIP_DISABLE_PIP_VERSION_CHECK=1

step "build the wheel (from a copy of the tree: setuptools writes build/ in it)"
mkdir "$WORK/tree"
tar -cf - --exclude=__pycache__ --exclude='*.egg-info' pyproject.toml README.md src \
  | tar -xf - -C "$WORK/tree"
"$PY" -m pip wheel -q --no-deps -w "$WORK/dist" "$WORK/tree"
WHEEL=$(ls "$WORK"/dist/deepshield-*.whl)

step "fresh venv + .venv's torch stack, linked (not copied)"
"$("$PY" -c 'import sys; print(sys._base_executable)')" -m venv "$WORK/venv"
V=$WORK/venv/bin
"$PY" - "$WORK/heavy" "$WORK/constraints.txt" <<'EOF'
"""Symlink the torch stack's top-level entries (packages, dist-info) into HEAVY; pin them in CONSTRAINTS."""
import importlib.metadata as md
import re
import sys
from collections import defaultdict
from pathlib import Path

heavy, constraints = Path(sys.argv[1]), Path(sys.argv[2])


def wanted(name: str) -> bool:
    return name in {"torch", "torchvision", "triton"} or name.startswith(("nvidia-", "cuda-"))


owners, where, pins = defaultdict(set), {}, []
for dist in md.distributions():
    name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
    for f in dist.files or []:
        if f.parts[0] not in ("..", "__pycache__"):  # console scripts live in bin/, not linked
            owners[f.parts[0]].add(name)
            where[f.parts[0]] = Path(dist.locate_file(f.parts[0]))
    if wanted(name):
        pins.append(f"{name}=={dist.version}")
heavy.mkdir()
for top, names in sorted(owners.items()):
    if any(map(wanted, names)):
        others = sorted(n for n in names if not wanted(n))
        if others:  # e.g. a namespace folder shared with a light package: linking it would expose that one
            sys.exit(f"ci_wheel: {top} is shared by {sorted(names)}; {others} would leak into the fresh venv")
        (heavy / top).symlink_to(where[top])
assert any(p.startswith("torch==") for p in pins), "ci_wheel: torch is not installed in .venv"
constraints.write_text("\n".join(sorted(pins)) + "\n")
print(f"linked {len(list(heavy.iterdir()))} entries of {len(pins)} distributions")
EOF
SITE=$("$V/python" -c 'import site; print(site.getsitepackages()[0])')
echo "$WORK/heavy" >"$SITE/zz_ci_torch_stack.pth"

step "pip install the wheel (no extras)"
# --no-compile: no .pyc for ~1 GB of packages that run once (install 76 s -> 36 s here, and a faster delete).
"$V/pip" install -q --no-compile -c "$WORK/constraints.txt" "$WHEEL"

step "only what the wheel pulls is there"
cd "$WORK"  # not the repo root: nothing from src/ or .venv may be importable by accident
export PYTHONDONTWRITEBYTECODE=1  # never write __pycache__ into .venv's torch through the links
"$V/python" - "$REPO" <<'EOF'
import importlib.util
import sys
from pathlib import Path

repo = Path(sys.argv[1])
leaks = [p for p in sys.path if p.startswith(str(repo))]
assert not leaks, f"the repo or its .venv is on the fresh venv's path: {leaks}"
dev = [m for m in ("pytest", "xdist", "ruff", "playwright", "torchattacks") if importlib.util.find_spec(m)]
assert not dev, f"dev-only packages importable without the dev extra: {dev}"
import deepshield
import skimage
import torch

assert str(repo) not in deepshield.__file__, deepshield.__file__
assert skimage.__file__.startswith(sys.prefix), f"skimage from {skimage.__file__}, not from the wheel's deps"
from deepshield.threats.reencode import psnr, ssim  # skimage is imported inside these two

import numpy as np
a = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
b = np.clip(a.astype(int) + 3, 0, 255).astype(np.uint8)
print(f"ok: torch {torch.__version__} linked, deepshield from {Path(deepshield.__file__).parent}, "
      f"psnr {psnr(a, b):.1f} dB, ssim {ssim(a, b):.3f}")
EOF

step "deepshield --help"
"$V/deepshield" --help >/dev/null

step "deepshield predict (one FF++ dev video; the wheel's MTCNN nets run on ONNX Runtime)"
"$V/python" -c 'from deepshield.data.mtcnn_onnx import nets_available; assert nets_available(), "no MTCNN nets"'
"$V/deepshield" predict "$DEV/ffpp/original_sequences/youtube/c23/videos/004.mp4"

step "deepshield evaluate --checkpoint default (16 DFDC dev faces)"
"$V/python" - "$DEV/dfdc_faces/metadata.csv" "$WORK/pairs.csv" <<'EOF'
"""The first 8 DFDC groups (a real crop and its fake): 16 faces, both labels."""
import csv
import sys

with open(sys.argv[1], newline="") as f:
    rows = list(csv.DictReader(f))
reals = {r["video"]: r for r in rows if r["label"] == "REAL"}
fakes = [r for r in rows if r["label"] == "FAKE" and r["original"] in reals][:8]
with open(sys.argv[2], "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    for fake in fakes:
        writer.writerows([reals[fake["original"]], fake])
EOF
"$V/deepshield" preprocess "$DEV/dfdc_faces" --layout faces --metadata "$WORK/pairs.csv" --out "$WORK/faces" \
  --margin 0.7 --shift 0.1 --format jpg --quiet
"$V/deepshield" evaluate --checkpoint default --dataset "catalog:$WORK/faces/catalog.csv" --max-videos 16 \
  --attacks fgsm --eps 2/255 --no-sanity --no-corruptions --gallery 0 --out "$WORK/eval" --quiet
test -s "$WORK/eval/results.json"
step "done: the wheel runs without the dev extras"
