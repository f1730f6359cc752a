"""The bundled detectors (default, robust): small, self-describing, used by predict and evaluate by name."""

import json

import pytest

from deepshield.cli import main
from deepshield.data.preprocess import PreprocessConfig, run_preprocess
from deepshield.models.loading import load_checkpoint
from deepshield.models.zoo import BUNDLED, WEIGHTS_DIR, resolve_checkpoint

REAL_VIDEO = "ffpp/original_sequences/youtube/c23/videos/004.mp4"


@pytest.mark.parametrize("name, card", [("default", "MODEL_CARD.md"), ("robust", "MODEL_CARD_robust.md")])
def test_bundled_model_is_small_and_carries_its_crop_settings(name, card):
    path = resolve_checkpoint(name)
    assert path == BUNDLED[name] and path.stat().st_size <= 15e6
    ckpt = load_checkpoint(path)
    assert set(ckpt) >= {"model", "config", "metrics", "source"} and "optimizer" not in ckpt
    pre = ckpt["config"]["preprocess"]
    assert pre["detector"] == "mtcnn" and 0 < pre["margin"] <= 4 and pre["layout"] in ("faces", None)
    assert 0 < ckpt["config"]["threshold"]["value"] < 1  # calibrated on validation videos
    text = (WEIGHTS_DIR / card).read_text()
    assert ckpt["config"]["backbone"] in text and "DFDC" in text
    assert (ckpt["config"]["adv"] == "none") == (name == "default")  # robust is adversarially trained
    assert resolve_checkpoint("runs/x/best.pt").as_posix() == "runs/x/best.pt"


@pytest.mark.parametrize("name", [None, "robust"])
def test_predict_by_name_gives_a_verdict_on_a_real_video(dev_data, capsys, name):
    flags = ["--checkpoint", name] if name else []
    rc = main(["predict", str(dev_data / REAL_VIDEO), "--frames", "3", "--json", *flags])
    out = capsys.readouterr()
    assert rc == 0, out.err
    data = json.loads(out.out)
    result = data["results"][0]
    assert data["checkpoint"] == (name or "default") and result["label"] in ("REAL", "FAKE")
    assert result["faces_found"] == 3 and 0 <= result["p_fake"] <= 1
    pre = load_checkpoint(resolve_checkpoint(name or "default"))["config"]["preprocess"]
    assert data["face_settings"]["margin"] == pre["margin"] and data["face_settings"]["shift"] == pre["shift"]
    assert "warning" not in out.err


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("name", ["default", "robust"])
def test_evaluate_accepts_a_bundled_checkpoint(dev_dfdc, dfdc_pairs_csv, tmp_path, capsys, name):
    run_preprocess(PreprocessConfig(root=dev_dfdc, layout="faces", out=tmp_path / "faces",
                                    metadata=dfdc_pairs_csv, margin=0.7, shift=0.1, size=128,
                                    split_ratios="0,0,1"), progress=False)
    catalog = tmp_path / "faces" / "catalog.csv"
    rc = main(["evaluate", "--checkpoint", name, "--dataset", f"catalog:{catalog}:test",
               "--attacks", "fgsm",
               "--eps", "1/255", "--no-sanity", "--out", str(tmp_path / "eval"), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["run"] == name and results["n"] >= 10 and 0 <= results["clean"]["auc"] <= 1
