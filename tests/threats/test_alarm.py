"""The attack alarm (threats.alarm): probes, calibration, detection of PGD, and predict --check-attack."""

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

import deepshield.predict as predict_module
from deepshield.attacks import PGD
from deepshield.cli import main
from deepshield.config import TrainConfig
from deepshield.data.video import read_media
from deepshield.errors import ConfigError
from deepshield.models.loading import load_model_and_config
from deepshield.threats.alarm import AttackAlarm, calibrate, log_odds, probe_crops
from deepshield.training.checkpoint import save_checkpoint

REAL_VIDEO = "ffpp/original_sequences/youtube/c23/videos/004.mp4"


def _crops(x: torch.Tensor) -> list[np.ndarray]:
    return list((x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())


def _score_fn(model):
    @torch.no_grad()
    def score(crops: list[np.ndarray]) -> np.ndarray:
        x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255
        return torch.softmax(model(x), 1)[:, 1].numpy()

    return score


def test_probes_keep_shape_and_type():
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (24, 24, 3), dtype=np.uint8) for _ in range(3)]
    for spec in ("jpeg:75", "median:3", "bits:5", "noise:0.01"):
        out = probe_crops(crops, spec)
        assert len(out) == 3 and all(o.shape == (24, 24, 3) and o.dtype == np.uint8 for o in out)
        assert not np.array_equal(out[0], crops[0])
    assert probe_crops([], "jpeg:75") == []
    with pytest.raises(ConfigError, match="unknown defense"):
        AttackAlarm(probes=("jpgg:75",))


def test_calibrate_is_the_clean_quantile():
    scores = np.arange(100) / 10
    threshold = calibrate(scores, far=0.1)
    assert np.mean(scores > threshold) <= 0.1 and np.mean(scores >= threshold) > 0.05
    with pytest.raises(ConfigError):
        calibrate([], 0.05)
    with pytest.raises(ConfigError):
        calibrate(scores, 1.5)
    assert log_odds(np.array([0.5]))[0] == 0 and np.isfinite(log_odds(np.array([0.0, 1.0]))).all()


def test_pgd_faces_are_flagged_clean_ones_rarely(dev_dfdc, one_torch_thread):
    """The bundled model and its calibrated threshold on 16 real DFDC faces, clean and PGD-attacked at
    2/255 (saved as uint8): every attacked face is flagged, few clean ones."""
    rows = list(csv.DictReader((dev_dfdc / "metadata.csv").open()))[32:48]
    crops = [np.asarray(Image.open(dev_dfdc / r["file"]).convert("RGB").resize((128, 128), Image.BILINEAR))
             for r in rows]
    y = torch.tensor([int(r["label"] == "FAKE") for r in rows])
    model, _, _ = load_model_and_config("default", torch.device("cpu"))
    score = _score_fn(model)
    alarm = AttackAlarm()
    clean, _ = alarm.face_scores(score, crops)
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255
    adv = _crops(PGD(eps=2 / 255, alpha=0.5 / 255, steps=4, seed=0)(model, x, y))
    p_adv = score(adv)
    assert ((p_adv >= 0.5) != y.numpy()).mean() >= 0.9  # the attack works
    attacked, probed = alarm.face_scores(score, adv, p_adv)
    assert set(probed) == {"jpeg:75", "median:3"}
    assert (clean > alarm.threshold).mean() <= 0.25 and (attacked > alarm.threshold).all()
    assert np.median(attacked) > 3 * np.median(clean)
    report = alarm.check(score, adv, p_adv)
    assert report.flagged and report.score > report.threshold
    assert len(report.face_scores) == 16
    assert report.to_json()["details"]["face_scores"] == list(report.face_scores)
    assert set(report.mean_change_p) == set(probed)
    assert "ABSTAIN" in report.line("a.png")
    assert "no sign" in replace(report, flagged=False).line("b.png")
    with pytest.raises(ConfigError, match="at least one face"):
        alarm.check(score, [])


@pytest.fixture(scope="module")
def face_image(dev_data, tmp_path_factory):
    path = tmp_path_factory.mktemp("alarm") / "face.png"
    Image.fromarray(next(read_media(dev_data / REAL_VIDEO, num_frames=1)).image).save(path)
    return path


@pytest.mark.parametrize(("threshold", "label", "rc"), [(-1.0, "ABSTAIN", 4), (1e9, None, 0)])
def test_predict_check_attack_abstains_when_flagged(trained_cnn, face_image, tmp_path, capsys, monkeypatch,
                                                    one_torch_thread, threshold, label, rc):
    checkpoint = tmp_path / "best.pt"
    save_checkpoint(checkpoint, model=trained_cnn.state_dict(), config=TrainConfig(image_size=32).to_dict())
    monkeypatch.setattr(predict_module, "_attack_alarm", lambda cfg, w: AttackAlarm(threshold=threshold))
    argv = ["predict", str(face_image), "--checkpoint", str(checkpoint), "--check-attack"]
    assert main([*argv, "--json"]) == rc
    result = json.loads(capsys.readouterr().out)["results"][0]
    assert result["alarm"]["flagged"] is (rc == 4) and result["alarm"]["threshold"] == threshold
    assert result["label"] == (label or result["label"]) and result["label"] in ("ABSTAIN", "REAL", "FAKE")
    assert (result["label"] == "ABSTAIN") is (rc == 4) and result["p_fake"] is not None
    assert main(argv) == rc
    out = capsys.readouterr().out
    assert "attack alarm: " in out and ("ABSTAIN" in out) is (rc == 4)


def test_other_checkpoints_get_a_calibration_warning(trained_cnn, face_image, tmp_path, capsys,
                                                     one_torch_thread):
    checkpoint = tmp_path / "best.pt"
    save_checkpoint(checkpoint, model=trained_cnn.state_dict(), config=TrainConfig(image_size=32).to_dict())
    main(["predict", str(face_image), "--checkpoint", str(checkpoint), "--check-attack"])
    assert "calibrated for the bundled model" in capsys.readouterr().err
