"""The bundled default detector: small, self-describing, used by predict and evaluate without a path."""

import json

import pytest

from deepshield.cli import main
from deepshield.data.preprocess import PreprocessConfig, run_preprocess
from deepshield.models.zoo import BUNDLED, WEIGHTS_DIR, resolve_checkpoint
from deepshield.training.checkpoint import load_checkpoint

REAL_VIDEO = "ffpp/original_sequences/youtube/c23/videos/004.mp4"


def test_bundled_model_is_small_and_carries_its_crop_settings():
    path = resolve_checkpoint("default")
    assert path == BUNDLED["default"] and path.stat().st_size <= 25e6
    ckpt = load_checkpoint(path)
    assert set(ckpt) >= {"model", "config", "metrics", "source"} and "optimizer" not in ckpt
    pre = ckpt["config"]["preprocess"]
    assert pre["detector"] == "mtcnn" and 0 < pre["margin"] <= 4 and pre["layout"] == "faces"
    card = (WEIGHTS_DIR / "MODEL_CARD.md").read_text()
    assert ckpt["config"]["backbone"] in card and "DFDC" in card
    assert resolve_checkpoint("runs/x/best.pt").as_posix() == "runs/x/best.pt"


def test_predict_without_a_checkpoint_gives_a_verdict_on_a_real_video(dev_data, capsys):
    rc = main(["predict", str(dev_data / REAL_VIDEO), "--frames", "3", "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    data = json.loads(out.out)
    result = data["results"][0]
    assert data["checkpoint"] == "default" and result["label"] in ("REAL", "FAKE")
    assert result["faces_found"] == 3 and 0 <= result["p_fake"] <= 1
    pre = load_checkpoint(resolve_checkpoint("default"))["config"]["preprocess"]
    assert data["face_settings"]["margin"] == pre["margin"] and data["face_settings"]["shift"] == pre["shift"]
    assert "warning" not in out.err


@pytest.mark.usefixtures("one_torch_thread")
def test_evaluate_accepts_the_default_checkpoint(dev_dfdc, dfdc_pairs_csv, tmp_path, capsys):
    run_preprocess(PreprocessConfig(root=dev_dfdc, layout="faces", out=tmp_path / "faces",
                                    metadata=dfdc_pairs_csv, margin=0.7, shift=0.1, size=128,
                                    split_ratios="0,0,1"), progress=False)
    catalog = tmp_path / "faces" / "catalog.csv"
    rc = main(["evaluate", "--checkpoint", "default", "--dataset", f"catalog:{catalog}:test",
               "--attacks", "fgsm",
               "--eps", "1/255", "--no-sanity", "--out", str(tmp_path / "eval"), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["run"] == "default" and results["n"] >= 10 and 0 <= results["clean"]["auc"] <= 1
