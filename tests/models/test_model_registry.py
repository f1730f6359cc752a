"""The model registry and the user-facing errors of deepshield.models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepshield.errors import ConfigError, DeepshieldError, MissingFileError
from deepshield.models import MODELS, PretrainedError, build_model, register_model, zoo


class Linear2(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean((2, 3)))


@pytest.fixture
def restore_models():
    """What a test registers does not outlive it."""
    saved = dict(MODELS)
    yield
    MODELS.clear()
    MODELS.update(saved)


@pytest.mark.usefixtures("restore_models")
def test_a_model_registered_in_a_test_file_is_built_by_name():
    @register_model("toy_linear")
    def build_toy(num_classes: int = 2, **_: object) -> nn.Module:
        return Linear2(num_classes)

    model = build_model("toy_linear", num_classes=3)
    assert isinstance(model, Linear2) and model(torch.rand(2, 3, 8, 8)).shape == (2, 3)
    assert "toy_linear" in MODELS
    with pytest.raises(ValueError, match="already registered"):  # a name clash is a bug: plain exception
        register_model("toy_linear")(lambda **kw: Linear2(2))


def test_unknown_model_is_a_user_error_listing_the_choices():
    with pytest.raises(DeepshieldError) as err:
        build_model("no_such_net")
    msg = str(err.value)
    assert isinstance(err.value, ConfigError) and isinstance(err.value, ValueError)
    assert "unknown model 'no_such_net'" in msg and "small_cnn" in msg and "timm" in msg and "\n" not in msg
    assert "toy_linear" not in msg


def test_pretrained_errors_are_config_errors(tmp_path):
    assert issubclass(PretrainedError, ConfigError) and issubclass(PretrainedError, ValueError)
    with pytest.raises(DeepshieldError, match="not found"):
        build_model("small_cnn", pretrained=str(tmp_path / "nope.pth"))
    with pytest.raises(DeepshieldError, match="no offline ImageNet weights"):
        build_model("resnet50", pretrained="imagenet")


def test_missing_bundled_model_is_a_missing_file_error(monkeypatch, tmp_path):
    monkeypatch.setitem(zoo.BUNDLED, "default", tmp_path / "default.pt")
    with pytest.raises(MissingFileError, match="reinstall deepshield") as err:
        zoo.resolve_checkpoint(None)
    assert isinstance(err.value, FileNotFoundError)


def test_moved_names_stay_importable_from_backbones():
    from deepshield.models import backbones, parts, pretrained

    assert backbones.load_pretrained is pretrained.load_pretrained
    assert backbones.PretrainedError is pretrained.PretrainedError
    assert backbones.model_parts is parts.model_parts and backbones.ModelParts is parts.ModelParts
    assert backbones.imagenet_weights is pretrained.imagenet_weights
