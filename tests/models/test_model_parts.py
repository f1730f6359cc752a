"""Head/stage splitting: the splitter registry picks up a family registered here, in the test only."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepshield.models import STAGE_SPLITTERS, model_parts
from deepshield.models.parts import register_stages, stage_splitter


class ToyNet(nn.Module):
    """Two 'blocks' in a ModuleList (no natural top-level split) and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3)])
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean((2, 3)))


class ToyNetSubclass(ToyNet):
    pass


@pytest.fixture
def private_registry():
    """What a test registers does not outlive it."""
    saved = dict(STAGE_SPLITTERS)
    yield
    STAGE_SPLITTERS.clear()
    STAGE_SPLITTERS.update(saved)


def test_default_splitter_uses_top_level_children():
    parts = model_parts(ToyNet())
    assert parts.head == ["head.weight", "head.bias"]
    assert parts.stages == [["blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias"]]


@pytest.mark.usefixtures("private_registry")
def test_a_registered_splitter_is_used_for_its_class_and_subclasses():
    @register_stages(ToyNet)
    def toy_stages(net: nn.Module) -> list[list[str]]:
        return [[f"blocks.{i}.{n}" for n, _ in b.named_parameters()] for i, b in enumerate(net.blocks)]

    for net in (ToyNet(), ToyNetSubclass()):
        assert stage_splitter(net) is toy_stages
        parts = model_parts(net)
        assert parts.stages == [["blocks.0.weight", "blocks.0.bias"], ["blocks.1.weight", "blocks.1.bias"]]
        assert parts.head == ["head.weight", "head.bias"]


@pytest.mark.usefixtures("private_registry")
def test_a_class_can_be_registered_by_its_dotted_path_and_the_most_specific_wins():
    @register_stages(f"{__name__}.ToyNet")
    def by_path(net: nn.Module) -> list[list[str]]:
        return [["blocks.0.weight"]]

    @register_stages(ToyNetSubclass)
    def sub_only(net: nn.Module) -> list[list[str]]:
        return [["blocks.1.weight"]]

    assert stage_splitter(ToyNet()) is by_path and stage_splitter(ToyNetSubclass()) is sub_only
    parts = model_parts(ToyNet())  # parameters the splitter did not name join the top stage
    assert parts.stages == [["blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias"]]
    assert model_parts(ToyNetSubclass()).stages[0][0] == "blocks.1.weight"


def test_registering_in_a_test_leaves_the_real_registry_alone():
    assert ToyNet not in STAGE_SPLITTERS and ToyNetSubclass not in STAGE_SPLITTERS
    assert stage_splitter(ToyNet()) is STAGE_SPLITTERS[nn.Module]
