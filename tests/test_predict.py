"""``deepshield predict`` on a real FF++ video, an image, a faceless video, a folder, and bad inputs."""

import json

import av
import numpy as np
import pytest
from PIL import Image

from deepshield.cli import main
from deepshield.config import PredictConfig, TrainConfig
from deepshield.data.video import read_media
from deepshield.predict import Predictor, face_settings
from deepshield.training.checkpoint import save_checkpoint

REAL_VIDEO = "ffpp/original_sequences/youtube/c23/videos/004.mp4"


@pytest.fixture(scope="module")
def no_face_video(tmp_path_factory):
    """20 frames of smooth colour noise (no face anywhere), written with PyAV."""
    path = tmp_path_factory.mktemp("media") / "noise.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 128, 128, "yuv420p"
        for _ in range(20):
            coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
            img = np.asarray(Image.fromarray(coarse).resize((128, 128), Image.BICUBIC))
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode())
    return path


def _run(capsys, *argv):
    rc = main(["predict", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_video_gets_a_probability_and_per_frame_scores(dev_data, checkpoint, capsys):
    rc, out, err = _run(capsys, dev_data / REAL_VIDEO, "--checkpoint", checkpoint, "--frames", "4", "--json")
    assert rc == 0, err
    result = json.loads(out)["results"][0]
    assert result["status"] == "ok" and 0.0 <= result["p_fake"] <= 1.0 and result["label"] in ("REAL", "FAKE")
    assert result["frames_sampled"] == 4 and result["faces_found"] >= 3
    faces = result["faces"]
    assert result["p_fake"] == pytest.approx(np.mean([f["p_fake"] for f in faces]))
    assert all(len(f["box"]) == 4 and f["face_score"] >= 0.9 for f in faces)
    rc, out, _ = _run(capsys, dev_data / REAL_VIDEO, "--checkpoint", checkpoint, "--frames", "2")
    assert rc == 0 and "004.mp4" in out and ("REAL" in out or "FAKE" in out)


def test_no_face_exits_3_with_a_message(no_face_video, checkpoint, capsys):
    rc, out, err = _run(capsys, no_face_video, "--checkpoint", checkpoint, "--frames", "5")
    assert rc == 3
    assert f"no face found in {no_face_video}" in err and "5 sampled frame(s)" in err
    assert "no face" in out


def test_folder_of_image_and_videos(dev_data, no_face_video, checkpoint, tmp_path, capsys):
    frame = next(read_media(dev_data / REAL_VIDEO, num_frames=1)).image
    Image.fromarray(frame).save(tmp_path / "face.png")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "noise.mp4").write_bytes(no_face_video.read_bytes())
    (tmp_path / "notes.txt").write_text("not media")
    rc, out, _ = _run(capsys, tmp_path, "--checkpoint", checkpoint, "--json")
    results = {r["path"].split("/")[-1]: r for r in json.loads(out)["results"]}
    assert sorted(results) == ["face.png", "noise.mp4"]
    assert results["face.png"]["status"] == "ok" and results["face.png"]["frames_sampled"] == 1
    assert results["noise.mp4"]["status"] == "no_face"
    assert rc == 3


def test_bad_inputs_exit_2(checkpoint, tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_text("this is not a video")
    rc, _, err = _run(capsys, bad, "--checkpoint", checkpoint)
    assert rc == 2 and "cannot read" in err
    rc, _, err = _run(capsys, tmp_path / "missing.mp4", "--checkpoint", checkpoint)
    assert rc == 2 and "not found" in err
    (tmp_path / "empty").mkdir()
    rc, _, err = _run(capsys, tmp_path / "empty", "--checkpoint", checkpoint)
    assert rc == 2 and "holds no videos or images" in err


def test_face_settings_follow_flags_then_checkpoint_then_defaults():
    cfg = PredictConfig(inputs=("x",), checkpoint="c")
    s = face_settings(cfg, {}, image_size=96)
    assert (s.margin, s.size, s.detector, s.min_score) == (1.3, 96, "mtcnn", 0.9)
    assert (s.faces, s.fps, s.frames_per_video, s.min_face_size) == ("largest", None, 32, 40)
    pre = {"preprocess": {"margin": 1.5, "size": 224, "min_score": 0.95, "fps": 1.0, "detector": "mtcnn",
                          "min_face_size": 24}}
    s = face_settings(cfg, pre, image_size=96)
    assert (s.margin, s.size, s.min_score, s.fps, s.frames_per_video) == (1.5, 224, 0.95, 1.0, None)
    assert s.min_face_size == 24
    s = face_settings(PredictConfig(inputs=("x",), checkpoint="c", margin=1.1, frames=4), pre, image_size=96)
    assert (s.margin, s.fps, s.frames_per_video) == (1.1, None, 4)
    with pytest.raises(ValueError, match="crop margin 0.0"):
        face_settings(PredictConfig(inputs=("x",), checkpoint="c", margin=0.0), {}, image_size=96)


def test_predictor_reads_preprocess_settings_from_checkpoint(trained_cnn, tmp_path):
    config = {**TrainConfig(image_size=32).to_dict(), "preprocess": {"margin": 1.6, "size": 64}}
    save_checkpoint(tmp_path / "best.pt", model=trained_cnn.state_dict(), config=config)
    p = Predictor(PredictConfig(inputs=(), checkpoint=str(tmp_path / "best.pt")))
    assert (p.settings.margin, p.settings.size) == (1.6, 64)
    crop = p._crop(np.zeros((100, 120, 3), np.uint8), (30, 20, 70, 60))
    assert crop.shape == (32, 32, 3)  # cropped at 64 px, then resized to the model's 32 px


HEAVY = ("matplotlib", "sklearn", "torchvision", "art", "onnx", "skimage", "deepshield.attacks",
         "deepshield.training", "deepshield.evaluation.metrics", "deepshield.evaluation.evaluate",
         "deepshield.data.preprocess")


def _loaded_after(code: str) -> set[str]:
    import subprocess
    import sys

    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_predict_and_the_cli_start_without_the_heavy_stacks():
    loaded = _loaded_after("import deepshield.predict")
    assert not [m for m in HEAVY if m in loaded], "predict imports what it does not need"
    help_only = _loaded_after("from deepshield.cli import parse_args\ntry:\n    parse_args(['--help'])\n"
                              "except SystemExit:\n    pass")
    assert "torch" not in help_only and "deepshield.cli" in help_only
    predict_cli = _loaded_after("from deepshield.cli import parse_args\nparse_args(['predict', 'x.mp4'])")
    assert "deepshield.data.pseudo_fakes" not in predict_cli  # train's flags are not built for predict


def test_predicting_a_face_with_the_bundled_model_never_imports_torch(dev_dfdc):
    """ONNX Runtime scores the crops and runs MTCNN's nets: a face image is judged without torch (~2.5 s
    of start-up); asking for the torch runtimes loads it."""
    face = sorted((dev_dfdc / "real").glob("*.jpg"))[0]
    code = ("from deepshield.config import PredictConfig\nfrom deepshield.predict import Predictor\n"
            "r = Predictor(PredictConfig(inputs=(), checkpoint='default')).predict({path!r})\n"
            "assert r.status == 'ok' and r.label in ('REAL', 'FAKE'), r")
    loaded = _loaded_after(code.format(path=str(face)))
    assert "torch" not in loaded and "facenet_pytorch" not in loaded and "onnxruntime" in loaded
    with_torch = _loaded_after(code.replace("checkpoint='default'", "checkpoint='default', "
                                            "detector_runtime='torch'").format(path=str(face)))
    assert "facenet_pytorch" in with_torch


@pytest.mark.parametrize("name", ["default", "robust"])
def test_auto_runtime_runs_the_shipped_onnx_where_it_agrees(name, tmp_path):
    from deepshield.models.zoo import bundled_export
    from deepshield.predict import fast_runtime

    assert bundled_export(name) is not None, "scripts/bundle.py ships NAME.onnx beside NAME.pt"
    auto = Predictor(PredictConfig(inputs=(), checkpoint=name))
    torch_run = Predictor(PredictConfig(inputs=(), checkpoint=name, runtime="torch"))
    assert auto.model is None and torch_run.model is not None  # ONNX Runtime, no PyTorch model loaded
    assert auto.settings == torch_run.settings  # the export carries the checkpoint's crop settings
    size = torch_run.train_cfg.image_size
    crops = np.random.default_rng(0).integers(0, 256, (6, size, size, 3), dtype=np.uint8)
    assert np.abs(auto._score(list(crops)) - torch_run._score(list(crops))).max() <= 1e-4
    for needs_torch in ({"explain": str(tmp_path)}, {"defense": "jpeg:75"}):
        assert fast_runtime(PredictConfig(inputs=(), checkpoint=name, **needs_torch)) == "torch"
    assert fast_runtime(PredictConfig(inputs=(), checkpoint="runs/x/best.pt")) == "torch"


def test_the_calibrated_threshold_judges_unless_threshold_is_given(trained_cnn, checkpoint, no_face_video,
                                                                   tmp_path, capsys):
    from deepshield.contracts.threshold import Threshold
    from deepshield.predict import FaceScore, MediaResult

    t = Threshold(0.25, "eer", "the validation videos of dfdc", 3, 4)
    path = tmp_path / "calibrated.pt"
    save_checkpoint(path, model=trained_cnn.state_dict(),
                    config={**TrainConfig(image_size=32).to_dict(), "threshold": t.to_json()})

    def verdict(cfg: PredictConfig) -> tuple[str, float, str]:
        p = Predictor(cfg)
        p._score = lambda crops: np.full(len(crops), 0.3)  # scores stay probabilities; only the label moves
        face = FaceScore(0, 0.0, 0, (0.0, 0.0, 8.0, 8.0), 0.99, 0.0)
        crop = np.zeros((32, 32, 3), np.uint8)
        result = p.judge(MediaResult("x.png", frames_sampled=1, faces=[face]), [crop])
        assert result.p_fake == pytest.approx(0.3)
        return result.label, p.threshold, p.threshold_source

    calibrated = verdict(PredictConfig(inputs=(), checkpoint=str(path)))
    assert calibrated == ("FAKE", 0.25, "calibrated: EER of the validation videos of dfdc")
    overridden = verdict(PredictConfig(inputs=(), checkpoint=str(path), threshold=0.5))
    assert overridden == ("REAL", 0.5, "--threshold")
    label, value, source = verdict(PredictConfig(inputs=(), checkpoint=str(checkpoint)))
    assert (label, value) == ("REAL", 0.5) and source.startswith("default 0.5: the model has no calibrated")

    rc, out, _ = _run(capsys, no_face_video, "--checkpoint", path, "--frames", "2", "--json")
    report = json.loads(out)
    assert rc == 3 and (report["threshold"], report["threshold_source"]) == (0.25, t.source)
    rc, out, _ = _run(capsys, no_face_video, "--checkpoint", path, "--frames", "2", "--threshold", "0.6")
    assert "(FAKE when p(fake) >= 0.6; --threshold)" in out
