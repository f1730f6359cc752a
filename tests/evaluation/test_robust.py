"""Robust sweep: AutoAttack protocol, per-video/method rows, and the sanity checks on a standard model
and on deliberately gradient-masked ones."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Subset, TensorDataset

from deepshield.attacks.base import Attack
from deepshield.config import EvalConfig, SweepSpec
from deepshield.contracts.rows import Check
from deepshield.evaluation.checks import (
    failed,
    first_look_note,
    format_checks,
    noise_tolerance,
    sanity_checks,
)
from deepshield.evaluation.formatting import row_key
from deepshield.evaluation.robust import attack_correct, robust_mask, sweep, worst_case

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def fgsm_pgd(trained_cnn, test_faces):
    spec = SweepSpec(attacks=("fgsm", "pgd"), eps=(2 / 255, 8 / 255), steps=5, gallery=4)
    return spec, *sweep(trained_cnn, test_faces, spec, CPU, batch_size=64)


def test_sweep_rows_match_per_sample_scores(fgsm_pgd):
    spec, result, images = fgsm_pgd
    res = result.to_json()
    labels = np.array(res["samples"]["labels"])
    assert res["n"] == 128 and len(res["robust"]) == 4 and len(res["worst_case"]) == 2
    assert res["clean"]["acc"] > 0.9
    for row in res["robust"] + res["worst_case"]:
        scores = np.array(res["samples"]["scores"][row["key"]])
        assert row["acc"] == pytest.approx(robust_mask(labels, scores).mean())
        assert row["acc"] <= res["clean"]["acc"] + 1e-9  # misclassified samples stay misclassified
    for r in res["robust"]:
        assert r["attacked"] == round(res["clean"]["acc"] * 128)  # only the correct ones were attacked
    by = {(r["attack"], r["eps"]): r["acc"] for r in res["robust"]}
    for w in res["worst_case"]:
        assert w["acc"] <= min(by[("fgsm", w["eps"])], by[("pgd", w["eps"])]) + 1e-9
    assert by[("pgd", 8 / 255)] < 0.2  # a standard model is not robust
    g = res["gallery"]
    assert len(g["items"]) == 4 and [i["label"] for i in g["items"]] == [0, 1, 0, 1]
    assert "_gallery_arrays" not in res and images.adv.shape == (4, 3, 32, 32)  # images travel apart
    delta = images.adv - images.clean
    assert np.abs(delta).max() <= 8 / 255 + 1e-6


def test_worst_case_takes_the_most_wrong_score():
    labels = np.array([0, 1])
    assert worst_case(labels, [np.array([0.2, 0.9]), np.array([0.6, 0.4])]).tolist() == [0.6, 0.4]


class CountingAttack(Attack):
    """Records the labels it was asked to attack; returns x unchanged."""

    def __init__(self):
        super().__init__(eps=1 / 255)
        self.seen = []

    def _perturb(self, model, x, y):
        self.seen.append(y.clone())
        return x


def test_only_correctly_classified_samples_are_attacked(trained_cnn, test_faces):
    x, y = test_faces.images[:32], test_faces.labels[:32].clone()
    y[:5] = 1 - y[:5]  # five samples the model now gets wrong
    attack = CountingAttack()
    x_adv, p = attack_correct(trained_cnn, x, y, attack)
    correct = (trained_cnn(x).argmax(1) == y)
    assert len(attack.seen[0]) == int(correct.sum()) <= 27
    assert torch.equal(x_adv, x) and p.shape == (32,)
    attack.seen.clear()
    attack_correct(trained_cnn, x, y, attack, only_correct=False)
    assert len(attack.seen[0]) == 32


def test_video_and_method_breakdown(trained_cnn, video_frames):
    spec = SweepSpec(attacks=("fgsm",), eps=(4 / 255,), gallery=0)
    res = sweep(trained_cnn, video_frames, spec, CPU, batch_size=32)[0].to_json()
    assert res["samples"]["video_ids"][:4] == ["ds/v000"] * 4
    assert res["clean"]["video"]["mean"]["n"] == 16 and set(res["clean"]["video"]) == {"mean", "top50"}
    assert set(res["clean"]["by_method"]) == {"real", "Deepfakes", "FaceSwap"}
    row = res["robust"][0]
    assert row["video"]["mean"]["n"] == 16 and set(row["by_method"]) == {"real", "Deepfakes", "FaceSwap"}
    assert res["worst_case"] == [] and "gallery" not in res


def test_no_early_stop_attacks_every_sample(trained_cnn, test_faces):
    spec = SweepSpec(attacks=("pgd",), eps=(2 / 255,), steps=2, early_stop=False, gallery=0)
    res = sweep(trained_cnn, Subset(test_faces, range(40)), spec, CPU)[0].to_json()
    assert res["robust"][0]["attacked"] == 40


def test_sweep_and_checks_restore_every_module_mode(test_faces):
    from deepshield.models import build_model

    model = build_model("small_cnn").train()
    model.features[1].eval()
    modes = [m.training for m in model.modules()]
    data = Subset(test_faces, range(16))
    spec = SweepSpec(attacks=("fgsm",), eps=(2 / 255,), square_queries=2, sanity_n=8, gallery=0)
    res, _ = sweep(model, data, spec, CPU)
    lines = []
    sanity_checks(model, data, spec, res, CPU, log=lines.append)
    assert [m.training for m in model.modules()] == modes
    assert any("--thorough attacks 256 images" in line for line in lines)  # the log says what it adds


def test_thorough_restores_the_full_budget():
    first, full = EvalConfig(checkpoint="default"), EvalConfig(checkpoint="default", thorough=True)
    assert full.sweep == first.sweep.thorough() != first.sweep
    assert full.sweep.square_queries == 1000 and full.sweep.sanity_n == 256
    assert "1000 queries" in first_look_note(first.sweep) and first_look_note(full.sweep) is None
    mine = EvalConfig(checkpoint="default", sweep=SweepSpec(square_queries=5000), thorough=True)
    assert mine.sweep.square_queries == 5000  # at least the full budget: larger settings stay


def test_noise_tolerance_and_loud_failures():
    assert noise_tolerance(100) == pytest.approx(1.5 * 0.05)
    assert noise_tolerance(1) == 1.0
    text = format_checks([Check("x", "x", False, "d"), Check("y", "y", True)])
    assert "FAIL  x: d" in text and "PASS  y" in text and "1 SANITY CHECK(S) FAILED" in text
    assert "FAILED" not in format_checks([Check("y", "y", True)])


@pytest.mark.slow
def test_sanity_checks_pass_for_a_standard_model(trained_cnn, test_faces):
    data = Subset(test_faces, range(64))
    spec = SweepSpec(attacks=("fgsm", "pgd", "apgd", "square"), eps=(2 / 255, 8 / 255), steps=5,
                     square_queries=25, sanity_n=64, gallery=0)
    res, _ = sweep(trained_cnn, data, spec, CPU)
    checks = sanity_checks(trained_cnn, data, spec, res, CPU)
    ids = {c.id for c in checks}
    assert {"monotone:pgd", "monotone:square", "iterative_vs_single_step", "blackbox_vs_whitebox",
            "more_steps", "huge_eps", "nonzero_gradients"} <= ids
    assert "monotone:fgsm" not in ids  # one step of size eps may overshoot: no claim rests on it
    assert not failed(checks), format_checks(checks)
    assert trained_cnn.training is False


@pytest.mark.slow
def test_quantized_model_is_flagged(masked_cnn, test_faces):
    """round(x*8)/8 in front of the CNN: zero input gradient, so PGD reports ~100% robust accuracy."""
    data = Subset(test_faces, range(64))
    spec = SweepSpec(attacks=("pgd",), eps=(4 / 255, 8 / 255), square_queries=20, sanity_n=64, gallery=0)
    res, _ = sweep(masked_cnn, data, spec, CPU)
    assert res.clean.acc > 0.9 and res.robust[-1].metrics.acc > 0.9  # the false robustness
    flagged = {c.id for c in failed(sanity_checks(masked_cnn, data, spec, res, CPU))}
    assert {"nonzero_gradients", "huge_eps"} <= flagged


class MaskedBrightness(nn.Module):
    """Calls an image fake when its (quantized) mean brightness is above 0.5: trivially flipped by moving
    the brightness, but the rounding makes every input gradient exactly zero."""

    def forward(self, x):
        m = torch.round(x * 255).div(255).mean((1, 2, 3))
        return torch.stack([-(m - 0.5) * 400, (m - 0.5) * 400], 1)


def test_black_box_beating_white_box_is_flagged():
    gen = torch.Generator().manual_seed(0)
    level = torch.where(torch.arange(32) % 2 == 0, 0.495, 0.505)
    x = (level.view(-1, 1, 1, 1) + 0.05 * torch.rand(32, 3, 16, 16, generator=gen) - 0.025).clamp(0, 1)
    y = (x.mean((1, 2, 3)) > 0.5).long()
    data = TensorDataset(x, y)
    model = MaskedBrightness()
    spec = SweepSpec(attacks=("pgd", "square"), eps=(8 / 255,), square_queries=60, sanity_n=32, gallery=0)
    res, _ = sweep(model, data, spec, CPU)
    by = {r.attack: r.metrics.acc for r in res.robust}
    assert res.clean.acc == 1.0 and by["pgd"] == 1.0 and by["square"] < 0.3
    checks = {c.id: c for c in sanity_checks(model, data, spec, res, CPU)}
    assert not checks["blackbox_vs_whitebox"].passed
    assert not checks["nonzero_gradients"].passed


def test_reuse_across_eps_and_attacks_is_never_weaker(trained_cnn, test_faces):
    """Beyond the independent sanity subset, fooled faces keep their point and only survivors are
    attacked; rows are at least as strong as independent runs and monotone in ε, and the subset's
    scores are exactly the independent ones."""
    spec = SweepSpec(attacks=("fgsm", "pgd", "apgd"), eps=(1 / 255, 2 / 255, 4 / 255), steps=5, sanity_n=32,
                     gallery=0)
    reused, _ = sweep(trained_cnn, test_faces, spec, CPU)
    independent, _ = sweep(trained_cnn, test_faces, replace(spec, reuse=False), CPU)
    by_r = {(r.attack, r.eps): r.metrics.acc for r in reused.robust}
    by_i = {(r.attack, r.eps): r.metrics.acc for r in independent.robust}
    tol = noise_tolerance(len(test_faces))
    for key, acc in by_r.items():
        assert acc <= by_i[key] + tol, key
    assert sum(by_r.values()) <= sum(by_i.values())  # no weaker on the whole sweep, not even by noise
    for w_r, w_i in zip(reused.worst_case, independent.worst_case, strict=True):
        assert w_r.metrics.acc <= w_i.metrics.acc + 1 / len(test_faces), w_r.key
    # Beyond the subset, per face: fooled at a smaller ε or by a cheaper attack means fooled here too.
    labels = np.array(reused.samples.labels)
    robust = {(a, e): robust_mask(labels, np.array(reused.samples.scores[row_key(a, e, "linf")]))[32:]
              for a in spec.attacks for e in spec.eps}
    for e, larger in zip(spec.eps, spec.eps[1:], strict=False):
        assert all((robust[(a, larger)] <= robust[(a, e)]).all() for a in spec.attacks)
    for e in spec.eps:
        assert (robust[("apgd", e)] <= robust[("pgd", e)]).all()
        assert (robust[("pgd", e)] <= robust[("fgsm", e)]).all()
    for key, scores in reused.samples.scores.items():
        assert scores[:32] == independent.samples.scores[key][:32]  # the sanity subset: independent


def test_cascade_attacks_only_the_survivors(trained_cnn, test_faces, monkeypatch):
    """Beyond the sanity subset, each attack runs only on the faces no cheaper attack or smaller ε
    fooled, from its own fresh start (a warm start from the smaller ε's point got stuck on flat regions
    of a real model)."""
    calls = []
    call = Attack.__call__

    def spy(self, model, x, y, init=None):
        calls.append((self.name, round(self.eps * 255), init is not None, len(x)))
        return call(self, model, x, y, init=init)

    monkeypatch.setattr(Attack, "__call__", spy)
    spec = SweepSpec(attacks=("fgsm", "pgd", "apgd"), eps=(1 / 255, 4 / 255), steps=3, sanity_n=64, gallery=0)
    sweep(trained_cnn, test_faces, spec, CPU, batch_size=64)
    first, second = calls[: len(calls) // 2], calls[len(calls) // 2:]  # batch 1: the independent subset
    assert not any(warm for _, _, warm, _ in calls)
    sizes = {(name, eps): n for name, eps, _, n in second}
    assert sizes[("pgd", 4)] < sizes[("fgsm", 1)]  # only the survivors are attacked again
    assert len({n for *_, n in first}) == 1  # the subset: every correct face at every key
