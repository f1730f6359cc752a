"""Precision choice per device, and attacks/training steps that still work inside the autocast context."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deepshield.attacks import PGD
from deepshield.config import TrainConfig
from deepshield.training.objectives import build_objective
from deepshield.training.precision import build_precision, choose_precision


@pytest.mark.parametrize(("device", "amp", "cpu_bf16", "cuda_bf16", "expected"), [
    ("cpu", None, False, False, "fp32"),   # AVX2-only CPU: bf16 is emulated and slower
    ("cpu", None, True, False, "fp32"),    # AVX512-BF16 / AMX: fp32 unless the probe measures bf16 faster
    ("cpu", True, False, False, "bf16"),   # forced
    ("cpu", False, True, False, "fp32"),
    ("cuda", None, False, True, "bf16"),   # Ampere+: no scaler, no underflow of input gradients
    ("cuda", None, False, False, "fp16"),  # older GPUs: fp16 + GradScaler
    ("cuda", False, False, True, "fp32"),
    ("mps", None, False, False, "fp32"),
])
def test_choose_precision(device, amp, cpu_bf16, cuda_bf16, expected):
    assert choose_precision(device, amp, cpu_bf16, cuda_bf16) == expected


def test_auto_on_this_cpu_is_fp32_without_a_measurement():
    p = build_precision(TrainConfig(amp=None), torch.device("cpu"))
    assert p.name == "fp32"
    assert p.scaler is None and p.threads is not None and p.threads >= 1
    assert build_precision(TrainConfig(amp=False), torch.device("cpu")).name == "fp32"


def test_forced_bf16_autocast_runs_bf16_convs():
    p = build_precision(TrainConfig(amp=True), torch.device("cpu"))
    conv = torch.nn.Conv2d(3, 4, 3)
    with p.autocast():
        assert conv(torch.rand(1, 3, 8, 8)).dtype == torch.bfloat16


def test_pgd_and_pgd_training_work_inside_autocast():
    from deepshield.data.synthetic import SyntheticDeepfakeDataset
    from deepshield.models import build_model

    torch.manual_seed(0)
    model = build_model("small_cnn").eval()
    ds = SyntheticDeepfakeDataset(32, image_size=32, seed=5)
    x, y = ds.images, ds.labels
    p = build_precision(TrainConfig(amp=True), torch.device("cpu"))
    eps = 8 / 255
    attack = PGD(eps=eps, alpha=2 / 255, steps=5, seed=0)
    with p.autocast():
        x_adv = attack(model, x, y)
    assert x_adv.dtype == torch.float32
    assert (x_adv - x).abs().max() <= eps + 1e-6 and (x_adv - x).abs().amax((1, 2, 3)).min() > eps / 2
    with torch.no_grad():
        clean_loss = F.cross_entropy(model(x), y)
        gain_bf16 = F.cross_entropy(model(x_adv), y) - clean_loss
        gain_fp32 = F.cross_entropy(model(attack(model, x, y)), y) - clean_loss
    assert gain_fp32 > 0 and gain_bf16 > 0.5 * gain_fp32  # bf16 input gradients still point uphill
    model.train()
    objective = build_objective("pgd", eps=eps, alpha=2 / 255, steps=2)
    with p.autocast():
        out = objective(model, x, y)
    out.loss.backward()
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    assert all(q.grad is not None and torch.isfinite(q.grad).all() for q in model.parameters())
