"""Fine-tuning: which parameters train at each epoch, and the head/backbone learning rates."""

from __future__ import annotations

import pytest
import torch

from deepshield.config import TrainConfig
from deepshield.models import build_model, model_parts
from deepshield.training.optim import build_optimizer, build_unfreeze_schedule, stages_unfrozen


def _trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name", ["small_cnn", "efficientnet_b0"])
def test_head_only_then_one_more_stage_from_the_top_every_k_epochs(name):
    model = build_model(name)
    parts = model_parts(model)
    n = len(parts.stages)
    cfg = TrainConfig(backbone=name, freeze_epochs=2, unfreeze_every=2, epochs=2 + 2 * n + 2)
    unfreeze = build_unfreeze_schedule(model, cfg)
    head = set(parts.head)
    for epoch in range(cfg.epochs):
        unfreeze(epoch)
        k = 0 if epoch < 2 else min(n, 1 + (epoch - 2) // 2)
        expected = head | {p for s in parts.stages[n - k:] for p in s} if k else head
        assert _trainable(model) == expected, f"epoch {epoch}"
    assert _trainable(model) == {n for n, _ in model.named_parameters()}
    unfreeze(0)  # pure in the epoch: going back (resume) freezes again
    assert _trainable(model) == head


def test_no_freezing_by_default_and_all_at_once_with_unfreeze_every_0():
    model = build_model("small_cnn")
    everything = {n for n, _ in model.named_parameters()}
    build_unfreeze_schedule(model, TrainConfig())(0)
    assert _trainable(model) == everything
    sched = build_unfreeze_schedule(model, TrainConfig(freeze_epochs=1, unfreeze_every=0))
    assert sched(0) and not sched(0)  # reports a change only when one happens
    assert _trainable(model) == set(model_parts(model).head)
    assert sched(1) and not sched(2)
    assert _trainable(model) == everything
    assert [stages_unfrozen(e, 3, 1, 1) for e in range(5)] == [0, 1, 2, 3, 3]


def test_optimizer_gives_backbone_the_scaled_lr_when_fine_tuning():
    model = build_model("efficientnet_b0")
    cfg = TrainConfig(backbone="efficientnet_b0", pretrained="weights.pth", lr=1e-3, backbone_lr_scale=0.1)
    opt = build_optimizer(model, cfg)
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["head"]["lr"] == pytest.approx(1e-3) and groups["backbone"]["lr"] == pytest.approx(1e-4)
    assert opt.param_groups[0]["name"] == "head"
    head_ids = {id(p) for p in groups["head"]["params"]}
    assert head_ids == {id(model.net.classifier.weight), id(model.net.classifier.bias)}
    n_params = sum(len(g["params"]) for g in opt.param_groups)
    assert n_params == len(list(model.parameters()))


def test_from_scratch_both_groups_use_the_base_lr_and_frozen_params_do_not_move():
    model = build_model("small_cnn")
    cfg = TrainConfig(lr=1e-2, freeze_epochs=1)
    opt = build_optimizer(model, cfg)
    assert [g["lr"] for g in opt.param_groups] == [1e-2, 1e-2]
    build_unfreeze_schedule(model, cfg)(0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = torch.nn.functional.cross_entropy(model(torch.rand(4, 3, 32, 32)), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    opt.step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved == set(model_parts(model).head)
