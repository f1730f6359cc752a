"""``deepshield attack``: an adversarial video file judged by the real pipeline after H.264 encoding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepshield.cli import main
from deepshield.config import VideoAttackConfig
from deepshield.errors import ConfigError

FAKE = "ffpp/manipulated_sequences/Deepfakes/c23/videos/519_515.mp4"


@pytest.fixture(scope="module")
def short_fake(dev_data, tmp_path_factory):
    """The first 24 frames of an FF++ dev fake (25 fps), as an H.264 mp4: a clip the test can afford."""
    from deepshield.threats.reencode import read_video, write_video

    frames, fps = read_video(dev_data / FAKE)
    path = tmp_path_factory.mktemp("clip") / "fake.mp4"
    write_video(path, frames[:24], fps, crf=18)
    return path


@pytest.mark.usefixtures("one_torch_thread")
def test_attack_writes_a_video_the_detector_judges_after_encoding(short_fake, tmp_path, capsys):
    out = tmp_path / "adv.mp4"
    rc = main(["attack", str(short_fake), "--out", str(out), "--frames", "2", "--steps", "6", "--eot", "1",
               "--eps", "8/255", "--json", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    res = json.loads(capsys.readouterr().out)
    from deepshield.threats.reencode import read_video

    frames, _ = read_video(out)
    original, _ = read_video(short_fake)
    assert len(frames) == len(original) == res["frames_total"] == 24  # every frame kept, none dropped
    assert res["target"] == "REAL" and res["label_before"] == "FAKE" and res["faces_attacked"] == 2
    # The crafted frames move the crafting model's score towards the target; the file is judged afresh.
    assert res["p_fake_crafted"] < res["p_fake_before"]
    assert 0 <= res["p_fake_after"] <= 1 and res["success"] == (res["label_after"] == "REAL")
    # Bounded in frame pixels: ε plus what H.264 itself changes (PSNR stays high).
    diff = np.abs(frames[5].astype(int) - original[5].astype(int))
    assert res["psnr"] > 30 and diff.mean() < 4


@pytest.mark.parametrize(("change", "message"), [
    ({"eps": 0.0}, "must be in (0, 1]"),
    ({"eps": 2.0}, "must be in (0, 1]"),
    ({"out": "same.mp4"}, "is the input video"),
    ({"crf": 60}, "0..51"),
    ({"target": "maybe"}, "choose auto, real or fake"),
])
def test_bad_settings_are_one_line_errors(change, message):
    kwargs = {"video": "same.mp4", "out": "adv.mp4", **change}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        VideoAttackConfig(**kwargs)


def test_unreadable_and_faceless_inputs_exit_2_and_3(tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    assert main(["attack", str(bad), "--out", str(tmp_path / "o.mp4"), "--quiet"]) == 2
    assert "cannot read" in capsys.readouterr().err
    from deepshield.threats.reencode import write_video

    blank = tmp_path / "blank.mp4"
    write_video(blank, [np.full((64, 64, 3), 128, np.uint8)] * 4, 25.0)
    assert main(["attack", str(blank), "--out", str(tmp_path / "o.mp4"), "--frames", "2", "--quiet"]) == 3
    err = capsys.readouterr().err
    assert "no face found" in err and len(err.strip().splitlines()) == 1
