"""Grad-CAM (deepshield.explain): located evidence, range, an untouched model, and predict --explain."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from deepshield.cli import main
from deepshield.config import PredictConfig
from deepshield.data.video import read_media
from deepshield.errors import ConfigError
from deepshield.explain import find_layer, gradcam, overlay
from deepshield.models import build_model
from deepshield.predict import Predictor

REAL_VIDEO = "ffpp/original_sequences/youtube/c23/videos/004.mp4"


class RedDetector(nn.Module):
    """p(fake) rises with the amount of pure red in the image: a 1x1 conv "red" channel, pooled."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[1.0, -1.0, -1.0], [0.0, 0.0, 0.0]]).view(2, 3, 1, 1))
            self.conv.bias.zero_()
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(2, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[0.0, 0.0], [20.0, 0.0]]))
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.act(self.conv(x))).flatten(1))


def _grey_with_red_patch(left: bool) -> torch.Tensor:
    x = torch.full((1, 3, 32, 32), 0.5)
    cols = slice(2, 10) if left else slice(22, 30)
    x[0, :, 12:20, cols] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    return x


def test_the_map_sits_on_the_evidence():
    model = RedDetector().eval()
    x = torch.cat([_grey_with_red_patch(left=True), _grey_with_red_patch(left=False)])
    heat = gradcam(model, x)
    assert heat.shape == (2, 32, 32) and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    left, right = heat[:, :, :16].sum((1, 2)), heat[:, :, 16:].sum((1, 2))
    assert left[0] > 10 * right[0] and right[1] > 10 * left[1]
    assert heat[0, 12:20, 2:10].mean() > 0.8 and heat[0, :8].max() < 0.2
    # nothing speaks for "real" in this model: the map of class 0 is empty
    assert np.all(gradcam(model, x, target=0) == 0)


def test_model_is_left_untouched():
    torch.manual_seed(0)
    model = build_model("small_cnn").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    heat = gradcam(model, torch.rand(5, 3, 32, 32), batch_size=2)
    assert heat.shape == (5, 32, 32) and 0 <= heat.min() and heat.max() <= 1
    assert model.training  # mode restored
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN stats untouched


def test_layer_is_the_last_conv_stage():
    assert find_layer(build_model("small_cnn"), torch.rand(1, 3, 32, 32)) in ("features", "features.15")
    lite = build_model("tf_efficientnet_lite0")
    assert find_layer(lite, torch.rand(1, 3, 64, 64)) == "net.bn2"
    heat = gradcam(lite, torch.rand(2, 3, 64, 64), layer="net.conv_head")
    assert heat.shape == (2, 64, 64)
    with pytest.raises(ConfigError, match="not a module"):
        gradcam(lite, torch.rand(1, 3, 64, 64), layer="net.nope")


def test_overlay_blends_a_colormap():
    crop = np.full((40, 40, 3), 128, np.uint8)
    heat = np.zeros((10, 10), np.float32)
    heat[:, 5:] = 1.0
    out = overlay(crop, heat)
    assert out.shape == crop.shape and out.dtype == np.uint8
    assert out[20, 35, 0] > out[20, 35, 2] and out[20, 5, 2] > out[20, 5, 0]  # jet: hot red, cold blue
    assert np.array_equal(overlay(crop, heat, alpha=0.0), crop)


def test_predict_keeps_crops_heatmaps_and_faceless_frames(dev_data, checkpoint, tmp_path, one_torch_thread):
    frame = next(read_media(dev_data / REAL_VIDEO, num_frames=1)).image
    Image.fromarray(frame).save(tmp_path / "face.png")
    Image.fromarray(np.full((96, 96, 3), 90, np.uint8)).save(tmp_path / "blank.png")
    predictor = Predictor(PredictConfig(inputs=(), checkpoint=str(checkpoint)))
    plain = predictor.predict(tmp_path / "face.png")
    assert plain.crops is None and plain.heatmaps is None and plain.alarm is None
    assert plain.no_face_frames == []
    kept = predictor.predict(tmp_path / "face.png", keep_crops=True)
    assert kept.heatmaps is None and len(kept.crops) == len(kept.faces) >= 1
    assert kept.crops[0].shape == (32, 32, 3) and kept.crops[0].dtype == np.uint8
    result = predictor.predict(tmp_path / "face.png", explain=True)
    assert len(result.heatmaps) == len(result.crops) == len(result.faces)
    heat = result.heatmaps[0]
    assert heat.shape == (32, 32) and 0 <= heat.min() <= heat.max() <= 1
    assert "crops" not in result.to_dict() and "heatmaps" not in result.to_dict()
    blank = predictor.predict(tmp_path / "blank.png", keep_crops=True)
    assert blank.status == "no_face" and blank.no_face_frames == [(0, 0.0)] and blank.crops == []
    assert blank.to_dict()["no_face_frames"] == [[0, 0.0]]


def test_predict_explain_writes_overlays_and_an_index(dev_data, checkpoint, tmp_path, capsys,
                                                      one_torch_thread):
    out = tmp_path / "cam"
    rc = main(["predict", str(dev_data / REAL_VIDEO), "--checkpoint", str(checkpoint), "--frames", "2",
               "--explain", str(out)])
    assert rc == 0, capsys.readouterr().err
    index = json.loads((out / "index.json").read_text())
    faces = index["inputs"][0]["faces"]
    assert index["inputs"][0]["path"].endswith("004.mp4") and len(faces) >= 1
    image = np.asarray(Image.open(out / faces[0]["image"]))
    assert image.shape == (32, 64, 3)  # the crop | its overlay
    assert not list(out.rglob("*.tmp"))


def test_report_gallery_draws_grad_cam_rows(tmp_path):
    from deepshield.contracts.rows import Gallery, GalleryItem
    from deepshield.evaluation.plots import plot_gallery
    from deepshield.explain import gallery_heatmaps

    torch.manual_seed(0)
    clean = torch.rand(2, 3, 32, 32).numpy()
    adv = np.clip(clean + 4 / 255, 0, 1)
    heat_clean, heat_adv = gallery_heatmaps(build_model("small_cnn").eval(), clean, adv)
    assert heat_clean.shape == heat_adv.shape == (2, 32, 32)
    flat = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 2))
    assert gallery_heatmaps(flat, clean, adv) == (None, None)  # no spatial map: the gallery draws without
    meta = Gallery("pgd", 4 / 255, "linf", tuple(GalleryItem(i, i, 0.3, 0.8) for i in range(2)))
    plain = np.asarray(Image.open(plot_gallery(clean, adv, meta, tmp_path / "plain.png")))
    cam = plot_gallery(clean, adv, meta, tmp_path / "cam.png", heat_clean=heat_clean, heat_adv=heat_adv)
    with_cam = np.asarray(Image.open(cam))
    assert with_cam.shape[0] > 1.4 * plain.shape[0]
    assert with_cam.shape[1] == pytest.approx(plain.shape[1], rel=0.1)
