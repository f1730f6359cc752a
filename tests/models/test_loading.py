"""models.loading: checkpoints in (weights_only), models out; foreign files fail in one line."""

import pytest
import torch

from deepshield.config import TrainConfig
from deepshield.models import build_model, loading
from deepshield.training.checkpoint import save_checkpoint


def test_foreign_and_missing_files_fail_in_one_line(tmp_path):
    with pytest.raises(loading.CheckpointError, match="not found"):
        loading.load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(loading.CheckpointError, match="not a readable deepshield checkpoint"):
        loading.load_checkpoint(tmp_path / "junk.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(loading.CheckpointError, match="not a deepshield checkpoint"):
        loading.load_checkpoint(tmp_path / "other.pt")



def test_load_model_rebuilds_the_trained_network(tmp_path):
    cfg = TrainConfig(backbone="small_cnn", image_size=32)
    net = build_model("small_cnn", image_size=32)
    save_checkpoint(tmp_path / "best.pt", model=net.state_dict(), config=cfg.to_dict())
    model, loaded_cfg, raw = loading.load_model_and_config(tmp_path / "best.pt", torch.device("cpu"))
    assert not model.training and loaded_cfg.image_size == 32 and raw["backbone"] == "small_cnn"
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(model(x), net.eval()(x))
