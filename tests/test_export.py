"""``deepshield export`` (ONNX, TorchScript) and ``predict --runtime``: parity with PyTorch on real faces."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from deepshield.cli import main
from deepshield.config import ExportConfig, TrainConfig
from deepshield.export import (
    CLASS_NAMES,
    EXPORT_FORMATS,
    PARITY_TOL,
    ExportError,
    export_model,
    exported_file,
    load_exported,
)
from deepshield.training.checkpoint import save_checkpoint

PREPROCESS = {"detector": "mtcnn", "margin": 0.7, "shift": 0.1, "size": 224, "min_score": 0.9,
              "faces": "largest", "max_side": 640, "fps": None, "frames_per_video": None}
REAL_VIDEO = "ffpp/original_sequences/youtube/c23/videos/004.mp4"


@pytest.fixture(scope="module")
def checkpoint(trained_cnn, tmp_path_factory):
    """The briefly trained SmallCNN (32 px) as a checkpoint that records crop settings, as real runs do."""
    path = tmp_path_factory.mktemp("run") / "best.pt"
    config = {**TrainConfig(image_size=32).to_dict(), "preprocess": PREPROCESS}
    save_checkpoint(path, model=trained_cnn.state_dict(), config=config)
    return path


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """A private export cache for this module (``predict --runtime onnx`` exports checkpoints into it)."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("cache")
        mp.setenv("DEEPSHIELD_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def onnx_file(checkpoint, cache):
    """The checkpoint exported into the cache, as ``predict --runtime onnx`` does on first use."""
    path = exported_file(str(checkpoint), "onnx")
    assert path.parent == cache / "export" and path.name.startswith("best-")
    return path


def real_faces(root, size: int, n: int = 8) -> np.ndarray:
    """``n`` DFDC dev crops (half real, half fake), resized as the datasets do: [n, 3, S, S] in [0, 1]."""
    with (root / "metadata.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    picked = [r for label in ("REAL", "FAKE") for r in [r for r in rows if r["label"] == label][: n // 2]]
    images = [np.asarray(Image.open(root / r["file"]).convert("RGB").resize((size, size), Image.BILINEAR))
              for r in picked]
    return np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 255


def torch_probs(model: torch.nn.Module, pixels: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(pixels)), 1).numpy()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_pytorch_on_real_faces(fmt, checkpoint, trained_cnn, dev_dfdc, tmp_path, capsys):
    out = tmp_path / f"model{EXPORT_FORMATS[fmt].suffix}"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", fmt, "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    model = load_exported(out)
    meta = model.metadata
    assert model.format == fmt and model.image_size == 32
    assert json.loads(meta["class_names"]) == list(CLASS_NAMES)
    assert json.loads(meta["preprocess"]) == PREPROCESS and model.train_config["backbone"] == "small_cnn"
    assert meta["deepshield_version"] and "[0, 1]" in meta["input"]
    faces = real_faces(dev_dfdc, 32)
    expected = torch_probs(trained_cnn, faces)
    got = model(faces)
    assert got.shape == (8, 2) and np.allclose(got.sum(1), 1, atol=1e-5)
    assert np.abs(got - expected).max() <= PARITY_TOL
    assert np.ptp(expected[:, 1]) > 0.01  # the faces are scored differently: the check can fail
    assert np.abs(model(faces[:1]) - expected[:1]).max() <= PARITY_TOL  # dynamic batch axis
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


@pytest.mark.slow
@pytest.mark.parametrize("name", ["default", "robust"])
def test_bundled_model_onnx_parity_on_real_faces(dev_dfdc, tmp_path, name):
    """The bundled EfficientNet-Lite0s through ONNX Runtime (about 10 s of export each on 2 cores); the
    robust one has its activations swapped (SiLU), which the export must carry."""
    from deepshield.models.loading import load_model

    result = export_model(ExportConfig(checkpoint=name, format="onnx", out=str(tmp_path / "d.onnx")))
    model, cfg = load_model(name, torch.device("cpu"))
    faces = real_faces(dev_dfdc, cfg.image_size)
    got, expected = load_exported(result.path)(faces), torch_probs(model, faces)
    assert np.abs(got - expected).max() <= PARITY_TOL
    assert json.loads(result.metadata["preprocess"])["margin"] == 0.7  # predict crops as training did


def test_bad_out_and_failed_parity_leave_no_file(checkpoint, tmp_path, monkeypatch, capsys):
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "m.txt")]) == 2
    assert "must end in .onnx" in capsys.readouterr().err
    monkeypatch.setattr("deepshield.export.PARITY_TOL", -1.0)  # any difference (even 0) now fails
    with pytest.raises(ExportError, match="differ from PyTorch"):
        export_model(ExportConfig(checkpoint=str(checkpoint), format="torchscript",
                                  out=str(tmp_path / "m.torchscript")))
    assert list(tmp_path.iterdir()) == []


def test_load_exported_refuses_foreign_files(onnx_file, tmp_path):
    import onnx

    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(ExportError, match="not a readable ONNX model"):
        load_exported(tmp_path / "text.onnx")
    proto = onnx.load(str(onnx_file))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "plain.onnx"))
    with pytest.raises(ExportError, match="not written by 'deepshield export'"):
        load_exported(tmp_path / "plain.onnx")


def _predict_json(capsys, *argv) -> dict:
    rc = main(["predict", *map(str, argv), "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return json.loads(out.out)


def test_predict_onnx_runtime_matches_torch(dev_data, checkpoint, onnx_file, tmp_path, capsys):
    from deepshield.data.video import read_media

    image = tmp_path / "face.png"
    Image.fromarray(next(read_media(dev_data / REAL_VIDEO, num_frames=1)).image).save(image)
    torch_run = _predict_json(capsys, image, "--checkpoint", checkpoint)
    mtime = onnx_file.stat().st_mtime_ns
    onnx_run = _predict_json(capsys, image, "--checkpoint", checkpoint, "--runtime", "onnx")
    assert onnx_file.stat().st_mtime_ns == mtime  # the cached export was used, not redone
    file_run = _predict_json(capsys, image, "--checkpoint", onnx_file, "--runtime", "onnx")
    assert torch_run["face_settings"]["margin"] == PREPROCESS["margin"]
    expected = torch_run["results"][0]
    for run in (onnx_run, file_run):
        assert run["face_settings"] == torch_run["face_settings"]  # crop settings from the metadata
        result = run["results"][0]
        assert [f["box"] for f in result["faces"]] == [f["box"] for f in expected["faces"]]  # same crops
        assert result["faces"] and abs(result["p_fake"] - expected["p_fake"]) <= PARITY_TOL


def test_torchscript_runtime_scores_crops_like_torch(checkpoint):
    from deepshield.config import PredictConfig
    from deepshield.predict import RUNTIMES

    crops = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    cfg = PredictConfig(inputs=(), checkpoint=str(checkpoint))
    expected = RUNTIMES["torch"](cfg).score(crops)
    scorer = RUNTIMES["torchscript"](cfg)
    assert scorer.model is None and scorer.raw["preprocess"] == PREPROCESS
    assert np.abs(scorer.score(crops) - expected).max() <= PARITY_TOL


@pytest.mark.parametrize(("flags", "message"), [
    (["--defense", "jpeg:75"], "--defense need the PyTorch model"),
    (["--device", "cuda"], "--runtime onnx runs on the CPU"),
    (["--checkpoint", "missing.onnx"], "missing.onnx not found"),
    (["--checkpoint", "model.torchscript"], "is a torchscript file; use --runtime torchscript"),
])
def test_onnx_runtime_refuses_what_it_cannot_do(flags, message, checkpoint, tmp_path, capsys):
    image = tmp_path / "x.png"
    Image.new("RGB", (64, 64)).save(image)
    argv = ["predict", str(image), "--runtime", "onnx", "--checkpoint", str(checkpoint), *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_the_calibrated_threshold_travels_in_the_export_metadata(trained_cnn, checkpoint, tmp_path):
    from deepshield.config import PredictConfig
    from deepshield.contracts.threshold import Threshold
    from deepshield.predict import Predictor

    t = Threshold(0.31, "fpr5", "the validation videos of dfdc", 5, 7)
    calibrated = tmp_path / "calibrated.pt"
    save_checkpoint(calibrated, model=trained_cnn.state_dict(),
                    config={**TrainConfig(image_size=32).to_dict(), "threshold": t.to_json()})
    result = export_model(ExportConfig(checkpoint=str(calibrated), format="torchscript",
                                       out=str(tmp_path / "calibrated.torchscript")))
    assert Threshold.from_json(json.loads(result.metadata["threshold"])) == t
    assert Threshold.from_json(load_exported(result.path).threshold) == t
    p = Predictor(PredictConfig(inputs=(), checkpoint=str(result.path), runtime="torchscript"))
    assert (p.threshold, p.threshold_source) == (0.31, t.source)  # predict's exported runtimes see it too
    assert load_exported(exported_file(str(checkpoint), "torchscript")).threshold is None
