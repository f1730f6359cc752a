"""Crop settings travel with the model: a catalog made with a non-default margin and shift, a model
trained on it, and ``deepshield predict`` cropping real DFDC faces the same way (no hand-built dict)."""

import json

import numpy as np
import pytest
from PIL import Image

from deepshield.config import PredictConfig, TrainConfig
from deepshield.data.catalog import read_catalog
from deepshield.data.faces import CropGeometry
from deepshield.data.preprocess import PreprocessConfig, run_preprocess
from deepshield.models.loading import load_checkpoint
from deepshield.predict import Predictor
from deepshield.training import trainer


@pytest.fixture(scope="module")
def run(dev_dfdc, dfdc_pairs_csv, tmp_path_factory):
    import torch

    tmp = tmp_path_factory.mktemp("crop_run")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_preprocess(PreprocessConfig(root=dev_dfdc, layout="faces", out=tmp / "faces",
                                        metadata=dfdc_pairs_csv, margin=0.5, shift=0.05, size=48,
                                        split_ratios="1,0,0"), progress=False)
    finally:
        torch.set_num_threads(threads)
    cfg = TrainConfig(dataset=f"catalog:{tmp / 'faces' / 'catalog.csv'}", backbone="small_cnn", image_size=32,
                      epochs=1, batch_size=8, progress=False, out=str(tmp / "run"))
    return tmp, trainer.train(cfg)


def test_checkpoint_and_config_record_the_catalog_crop_settings(run):
    tmp, result = run
    saved_json = json.loads((tmp / "run" / "config.json").read_text())
    for saved in (load_checkpoint(result.best_path)["config"], saved_json):
        pre = saved["preprocess"]
        assert (pre["margin"], pre["shift"], pre["size"], pre["detector"]) == (0.5, 0.05, 48, "mtcnn")
        assert pre["layout"] == "faces" and pre["frames_per_video"] is None


def _predict_crops(checkpoint, images, **flags) -> list[np.ndarray]:
    predictor = Predictor(PredictConfig(inputs=(), checkpoint=str(checkpoint), **flags))
    crops: list[np.ndarray] = []
    predictor._score = lambda c: (crops.extend(c), np.full(len(c), 0.5))[1]  # keep what the model would see
    for image in images:
        assert predictor.predict(image).status == "ok"
    return crops


def test_predict_crops_with_the_training_settings(run, dev_dfdc):
    tmp, result = run
    predictor = Predictor(PredictConfig(inputs=(), checkpoint=str(result.best_path)))
    assert predictor.geometry == CropGeometry(48, 0.5, 0.05) and predictor.warnings == []
    rows = read_catalog(tmp / "faces" / "catalog.csv")[:4]
    images = [dev_dfdc / ("real" if r.label == 0 else "fake") / f"{r.video_id}.jpg" for r in rows]
    stored = []
    for row in rows:
        with Image.open(tmp / "faces" / row.path) as img:
            stored.append(np.asarray(img.convert("RGB").resize((32, 32), Image.BILINEAR), dtype=float))
    same = _predict_crops(result.best_path, images)
    other = _predict_crops(result.best_path, images, margin=1.3)
    assert all(np.abs(a - b).mean() < 1 for a, b in zip(same, stored, strict=True))
    assert max(np.abs(a - b).mean() for a, b in zip(other, stored, strict=True)) > 10  # the test can tell


def test_a_flag_that_overrides_the_training_crop_warns(run):
    _, result = run
    predictor = Predictor(PredictConfig(inputs=(), checkpoint=str(result.best_path), margin=1.3))
    assert predictor.geometry.margin == 1.3
    assert any("--margin 1.3 overrides the 0.5" in w for w in predictor.warnings)
