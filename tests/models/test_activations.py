import pytest
import torch
from torch import nn

from deepshield.errors import ConfigError
from deepshield.models import build_model, swap_activation


def _count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def test_swap_replaces_every_relu6_of_a_timm_backbone_and_keeps_the_weights():
    torch.manual_seed(0)
    plain = build_model("tf_efficientnet_lite0", image_size=32).eval()
    smooth = build_model("tf_efficientnet_lite0", image_size=32, act="silu").eval()
    relus = _count(plain, nn.ReLU6)
    assert relus > 10 and _count(smooth, nn.ReLU6) == 0 and _count(smooth, nn.SiLU) == relus
    smooth.load_state_dict(plain.state_dict())  # same parameters: the swap adds and drops none
    x = torch.rand(2, 3, 32, 32)
    assert not torch.allclose(plain(x), smooth(x))  # and it changes the function


def test_swap_on_a_model_without_relu_is_a_one_line_error():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.SiLU())
    with pytest.raises(ConfigError, match="--act softplus: Sequential has no ReLU/ReLU6") as err:
        swap_activation(model, "softplus")
    assert "\n" not in str(err.value)


def test_unknown_activation_names_the_choices():
    with pytest.raises(ConfigError, match="choose from.*silu"):
        build_model("small_cnn", act="swish2")


def test_a_swapped_checkpoint_reloads_with_its_activation(tmp_path):
    """train --act silu records the swap; evaluation rebuilds the same network from the checkpoint."""
    from deepshield.cli import main
    from deepshield.models.loading import load_model

    assert main(["train", "--smoke", "--act", "silu", "--out", str(tmp_path), "--quiet"]) == 0
    model, cfg = load_model(tmp_path / "best.pt", torch.device("cpu"))
    assert cfg.act == "silu" and _count(model, nn.SiLU) > 0 and _count(model, nn.ReLU) == 0
