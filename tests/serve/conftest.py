"""Shared by the serve tests: a tiny checkpoint, a real face image, a stub predictor, a running server."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from deepshield.config import PredictConfig, TrainConfig

FAKE_VIDEO = "ffpp/manipulated_sequences/Deepfakes/c23/videos/519_515.mp4"   # p(fake) 0.99 (model card)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """An untrained SmallCNN at 32 px: loads and scores in milliseconds (the verdict does not matter)."""
    from deepshield.models import build_model
    from deepshield.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("serve_ckpt") / "best.pt"
    model = build_model("small_cnn", num_classes=2, image_size=32, pretrained=None)
    save_checkpoint(path, model=model.state_dict(), config=TrainConfig(image_size=32).to_dict())
    return path


@pytest.fixture(scope="session")
def tiny_predictor(tiny_checkpoint):
    from deepshield.predict import Predictor

    return Predictor(PredictConfig(inputs=(), checkpoint=str(tiny_checkpoint), frames=2))


@pytest.fixture(scope="session")
def face_png(tmp_path_factory) -> Path:
    """scikit-image's astronaut (one clear face), 256 px, as PNG."""
    from skimage import data

    path = tmp_path_factory.mktemp("serve_media") / "astronaut.png"
    Image.fromarray(data.astronaut()).resize((256, 256), Image.BILINEAR).save(path)
    return path


@pytest.fixture(scope="session")
def small_face_png(face_png) -> Path:
    """The astronaut at 128 px: the face is still found, in a fraction of the time."""
    path = face_png.with_name("astronaut_128.png")
    Image.open(face_png).resize((128, 128), Image.BILINEAR).save(path)
    return path


class StubPredictor:
    """Stands in for ``Predictor`` where only the server's logic is under test: ``predict`` runs
    ``steps`` detector batches of ``step_s`` seconds each and records how many ran at once."""

    def __init__(self, steps: int = 1, step_s: float = 0.0) -> None:
        self.steps, self.step_s = steps, step_s
        self.detector = SimpleNamespace(detect=self._detect)
        self.train_cfg = TrainConfig(image_size=32)
        self.cfg = PredictConfig(inputs=())
        self.threshold, self.threshold_source = 0.5, "default 0.5: the model has no calibrated threshold"
        self.settings = SimpleNamespace(frames=steps)
        self.warnings: list[str] = []
        self.running = 0
        self.max_running = 0
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()

    def _detect(self, images):
        time.sleep(self.step_s)
        return [[] for _ in images]

    def predict(self, path, keep_crops: bool = False, explain: bool = False):
        from deepshield.predict import FaceScore, MediaResult

        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            self.gate.wait(30)
            for _ in range(self.steps):
                self.detector.detect([np.zeros((8, 8, 3), np.uint8)])
            result = MediaResult(str(path), frames_sampled=self.steps, p_fake=0.75, label="FAKE")
            result.faces = [FaceScore(0, 0.0, 0, (0.0, 0.0, 8.0, 8.0), 0.99, 0.75)]
            return result
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture()
def stub_cls() -> type[StubPredictor]:
    """The ``StubPredictor`` class (tests import nothing from conftest)."""
    return StubPredictor


@pytest.fixture(scope="session")
def fake_video(dev_data) -> Path:
    """An FF++ c23 Deepfakes video (the bundled model's p(fake) on it: 0.99)."""
    return dev_data / FAKE_VIDEO
