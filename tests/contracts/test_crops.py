"""CropSettings: the one definition of face detection and crop settings."""

from dataclasses import fields

import pytest

from deepshield.config import PreprocessConfig
from deepshield.contracts.crops import DEFAULT_FRAMES_PER_VIDEO, CropSettings
from deepshield.errors import ConfigError


def test_preprocess_defaults_are_the_crop_defaults(tmp_path):
    cfg = PreprocessConfig(root=tmp_path, layout="folder", out=tmp_path / "out")
    crop = cfg.crop_settings
    assert crop == CropSettings(layout="folder")
    for f in fields(CropSettings):
        if f.name != "layout":
            assert getattr(cfg, f.name) == getattr(crop, f.name), f.name


def test_from_json_takes_more_or_fewer_keys():
    full = {"detector": "mtcnn", "margin": 0.7, "shift": 0.1, "size": 128, "workers": 4, "format": "jpg",
            "fps": None, "frames_per_video": 16, "layout": "faces"}
    s = CropSettings.from_json(full)
    assert (s.margin, s.shift, s.size, s.frames_per_video, s.layout) == (0.7, 0.1, 128, 16, "faces")
    old = CropSettings.from_json({"margin": 1.5, "shift": None, "min_face_size": None}, size=96)
    assert (old.margin, old.shift, old.size, old.min_face_size) == (1.5, 0.0, 96, 40)
    assert CropSettings.from_json(None) == CropSettings()
    assert CropSettings.from_json(s.to_json()) == s


def test_override_sampling_and_validation():
    s = CropSettings().override(margin=1.1, size=None, min_score=0.8)
    assert (s.margin, s.size, s.min_score) == (1.1, 224, 0.8)
    assert s.sampling == {"fps": None, "num_frames": DEFAULT_FRAMES_PER_VIDEO}
    assert CropSettings(fps=2.0).sampling == {"fps": 2.0, "num_frames": None}
    with pytest.raises(ConfigError, match="min score 1.5"):
        CropSettings(min_score=1.5)
    with pytest.raises(ConfigError, match="frames per video 0"):
        CropSettings(frames_per_video=0)
