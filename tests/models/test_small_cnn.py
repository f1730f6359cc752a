import pytest
import torch

from deepshield.models import SmallCNN, build_model, count_parameters


def test_pixel_space_in_logits_out():
    model = build_model("small_cnn").eval()
    x = torch.rand(3, 3, 64, 64)
    out = model(x)
    assert out.shape == (3, 2)
    # Normalization lives inside the model: it is a module with buffers, saved in the state dict.
    assert "normalize.mean" in model.state_dict()
    assert isinstance(model, SmallCNN)


def test_count_parameters_and_registry_errors():
    model = build_model("small_cnn")
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())
    model.head.weight.requires_grad_(False)
    frozen = model.head.weight.numel()
    assert count_parameters(model) == count_parameters(model, trainable_only=False) - frozen
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        build_model("nope")
