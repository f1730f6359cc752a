from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.data import astronaut

import deepshield.data.extract as extract
from deepshield.data.catalog import CatalogError, CatalogRow, merge_catalogs, read_catalog, read_errors
from deepshield.data.faces import box_iou
from deepshield.data.preprocess import PreprocessConfig, PreprocessError, run_preprocess, validate_config
from deepshield.errors import ConfigError, DeepshieldError
from deepshield.io import is_temp_name

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _config(root: Path, out: Path, **changes) -> PreprocessConfig:
    return PreprocessConfig(root=root, layout="folder", out=out, frames_per_video=4, **changes)


def _crops_on_disk(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.suffix in (".png", ".jpg")}


def _without_path(rows: list[CatalogRow]) -> list[CatalogRow]:
    return sorted((replace(r, path="") for r in rows), key=lambda r: (r.video_id, r.frame_index))


@pytest.fixture(scope="module")
def reference(small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted single-process run over the small dataset."""
    out = tmp_path_factory.mktemp("ref") / "faces"
    summary = run_preprocess(_config(small_dataset, out), progress=False)
    assert (summary.done, summary.failed, summary.faces) == (5, 0, 20)
    return out


def test_config_errors_are_one_line_value_errors(tmp_path: Path):
    cases = [
        ({"fps": 1.0}, "not both"),
        ({"margin": 0.0}, "--margin 0.0"),
        ({"shift": 2.0}, "--shift 2.0"),
        ({"split_ratios": "0.8,0.2"}, "--split-ratios"),
        ({"format": "gif"}, "--format 'gif'"),
        ({"shard": "0/4"}, "1 <= K <= N"),
        ({"shard": "two"}, "expected K/N"),
        ({"faces": "every"}, "--faces 'every'"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message) as err:  # PreprocessError or LayoutError
            validate_config(_config(tmp_path, tmp_path / "out", **change))
        assert isinstance(err.value, ValueError) and "\n" not in str(err.value)
        assert isinstance(err.value, DeepshieldError)  # the CLI prints it and exits 2, no traceback
    with pytest.raises(PreprocessError, match="inside ROOT/real or ROOT/fake") as err:
        validate_config(_config(tmp_path, tmp_path / "real" / "faces"))
    assert isinstance(err.value, ConfigError)
    assert PreprocessConfig(tmp_path, "ffpp", tmp_path / "o").sampling == {"fps": None, "num_frames": 32}


def test_bad_files_are_recorded_and_the_run_completes(small_dataset: Path, tmp_path: Path, make_video):
    root = tmp_path / "clips"
    shutil.copytree(small_dataset, root)
    (root / "real" / "empty.mp4").write_bytes(b"")
    (root / "real" / "notes.mp4").write_text("not a video\n" * 50)
    (root / "fake" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 20)
    good = root / "real" / "a.mp4"
    (root / "fake" / "cut.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    rng = np.random.default_rng(0)
    make_video(root / "fake" / "noface.mp4", [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)] * 4)
    Image.fromarray(astronaut()).resize((256, 256)).save(root / "real" / "photo.png")
    Image.new("RGB", (64, 64), (40, 90, 140)).save(root / "real" / "blank.jpg")

    summary = run_preprocess(_config(root, tmp_path / "faces"), progress=False)
    assert (summary.done, summary.failed, summary.faces) == (6, 6, 21)
    errors = {Path(e.path).name: e.reason for e in read_errors(tmp_path / "faces" / "errors.csv")}
    assert set(errors) == {"empty.mp4", "notes.mp4", "broken.mp4", "cut.mp4", "noface.mp4", "blank.jpg"}
    assert "empty file" in errors["empty.mp4"] and "not a video" in errors["notes.mp4"]
    assert "damaged" in errors["broken.mp4"] and "damaged" in errors["cut.mp4"]
    assert "no face" in errors["noface.mp4"] and "no face" in errors["blank.jpg"]
    rows = read_catalog(tmp_path / "faces" / "catalog.csv", check_files=True)
    assert {r.video_id for r in rows} == {"real/a", "real/b", "real/c", "fake/swap/d", "fake/e", "real/photo"}
    assert {(r.video_id, r.label, r.method) for r in rows if r.label == 1} == {
        ("fake/swap/d", 1, "swap"),
        ("fake/e", 1, "unknown"),
    }
    assert _crops_on_disk(tmp_path / "faces") == {r.path for r in rows}
    config = json.loads((tmp_path / "faces" / "preprocess.json").read_text())
    assert config["frames_per_video"] == 4 and config["layout"] == "folder"


def test_dfdc_listed_but_missing_file(small_dataset: Path, tmp_path: Path):
    part = tmp_path / "dfdc" / "dfdc_train_part_0"
    part.mkdir(parents=True)
    shutil.copy(small_dataset / "real" / "a.mp4", part / "aaa.mp4")
    (part / "metadata.json").write_text(
        json.dumps(
            {
                "aaa.mp4": {"label": "REAL", "split": "train"},
                "bbb.mp4": {"label": "FAKE", "split": "train", "original": "aaa.mp4"},
            }
        )
    )
    cfg = PreprocessConfig(tmp_path / "dfdc", "dfdc", tmp_path / "faces", frames_per_video=2)
    summary = run_preprocess(cfg, progress=False)
    assert (summary.done, summary.unusable) == (1, 1)
    [error] = read_errors(tmp_path / "faces" / "errors.csv")
    assert error.path == str(part / "bbb.mp4") and "missing" in error.reason
    rows = read_catalog(tmp_path / "faces" / "catalog.csv", check_files=True)
    assert {(r.dataset, r.video_id, r.split, r.source_video) for r in rows} == {
        ("dfdc", "aaa", "train", "aaa")
    }


def test_interrupted_run_resumes_to_the_same_catalog(small_dataset, reference, tmp_path, monkeypatch):
    real_save, saved = extract._save_image, []

    def save_then_die(path, image, cfg):
        if len(saved) == 9:  # killed while writing the 10th crop (third video): a temp file is left
            leftover = path.with_name(f".{path.name}.999.tmp")  # deepshield.io.atomic_write's temp name
            assert is_temp_name(leftover.name)
            leftover.write_bytes(b"\x89PNG half")
            raise KeyboardInterrupt
        real_save(path, image, cfg)
        saved.append(path)

    monkeypatch.setattr(extract, "_save_image", save_then_die)
    out = tmp_path / "faces"
    with pytest.raises(KeyboardInterrupt):
        run_preprocess(_config(small_dataset, out), progress=False)
    partial = read_catalog(out / "catalog.csv", check_files=True)  # rebuilt on the way out, 2 videos
    assert len(partial) == 8 and len(_crops_on_disk(out)) == 9  # one orphan crop of the third video
    assert len(list(out.rglob("*.tmp"))) == 1
    monkeypatch.setattr(extract, "_save_image", real_save)

    summary = run_preprocess(_config(small_dataset, out), progress=False)
    assert (summary.skipped, summary.done) == (2, 3)
    assert (out / "catalog.csv").read_text() == (reference / "catalog.csv").read_text()
    assert _crops_on_disk(out) == _crops_on_disk(reference)
    assert not list(out.rglob("*.tmp"))


@pytest.mark.slow
def test_killed_process_resumes_to_the_same_catalog(small_dataset, reference, tmp_path):
    out = tmp_path / "faces"
    script = (
        "import time, deepshield.data.preprocess as p\n"
        "real = p.process_video\n"
        "def slow(*a, **k):\n"
        "    r = real(*a, **k); time.sleep(2); return r\n"
        "p.process_video = slow\n"
        f"p.run_preprocess(p.PreprocessConfig({str(small_dataset)!r}, 'folder', {str(out)!r}, "
        "frames_per_video=4), progress=False)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    )
    deadline = time.monotonic() + 180
    while not list((out / ".parts").glob("[0-9a-f]*.csv")) and time.monotonic() < deadline:
        assert proc.poll() is None, "preprocess exited before its first video was committed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list((out / ".parts").glob("[0-9a-f]*.csv")))
    assert 1 <= done_before < 5

    summary = run_preprocess(_config(small_dataset, out), progress=False)
    assert summary.skipped == done_before and summary.done == 5 - done_before
    assert (out / "catalog.csv").read_text() == (reference / "catalog.csv").read_text()
    assert _crops_on_disk(out) == _crops_on_disk(reference)


def test_changed_settings_are_refused(reference, small_dataset):
    with pytest.raises(PreprocessError, match="made with size=224, not 112"):
        run_preprocess(_config(small_dataset, reference, size=112), progress=False)
    with pytest.raises(PreprocessError, match="made with keyframes=False, not True"):
        run_preprocess(_config(small_dataset, reference, keyframes=True), progress=False)


def test_keyframes_crop_the_keyframes(tmp_path: Path, make_face_frames, make_video):
    # 24 frames, keyframes 0 and 12: of the 4 sampled frames (3, 9, 15, 21), 3 moves to 0, and 9, 15
    # and 21, all nearest to 12, take 12, 13, 14.
    frames, _ = make_face_frames(24, canvas=(240, 320), photo=160, step=3)
    make_video(tmp_path / "clips" / "real" / "walk.mp4", frames, codec="libx264", gop=12)
    exact = run_preprocess(_config(tmp_path / "clips", tmp_path / "exact"), progress=False)
    cfg = _config(tmp_path / "clips", tmp_path / "kf", keyframes=True)
    assert run_preprocess(cfg, progress=False).faces == exact.faces == 4
    rows = read_catalog(tmp_path / "kf" / "catalog.csv", check_files=True)
    assert [r.frame_index for r in rows] == [0, 12, 13, 14]
    exact_rows = read_catalog(tmp_path / "exact" / "catalog.csv")
    assert [r.frame_index for r in exact_rows] == [3, 9, 15, 21]
    assert json.loads((tmp_path / "kf" / "preprocess.json").read_text())["keyframes"] is True


@pytest.mark.slow
def test_two_workers_and_merged_shards_match_one_process(small_dataset, reference, tmp_path):
    expected = read_catalog(reference / "catalog.csv")
    summary = run_preprocess(_config(small_dataset, tmp_path / "parallel", workers=2), progress=False)
    assert summary.done == 5
    assert (tmp_path / "parallel" / "catalog.csv").read_text() == (reference / "catalog.csv").read_text()

    parts = [tmp_path / "shard1", tmp_path / "shard2"]
    counts = [
        run_preprocess(_config(small_dataset, p, shard=f"{k}/2"), progress=False).videos
        for k, p in enumerate(parts, start=1)
    ]
    assert sum(counts) == 5
    merge_catalogs(tmp_path / "merged", parts)
    merged = read_catalog(tmp_path / "merged" / "catalog.csv", check_files=True)
    assert _without_path(merged) == _without_path(expected)
    with pytest.raises(CatalogError, match="is in both"):
        merge_catalogs(tmp_path / "again", [parts[0], tmp_path / "parallel"])


def test_all_faces_tracked_and_jpeg(tmp_path: Path, make_face_frames, make_video):
    frames, _ = make_face_frames(5, canvas=(240, 480), photo=160, step=5, copies=2)
    make_video(tmp_path / "clips" / "fake" / "pair.mp4", frames, codec="libx264")
    cfg = _config(tmp_path / "clips", tmp_path / "faces", faces="all", format="jpg", quality=90, size=64)
    assert run_preprocess(cfg, progress=False).faces == 8
    rows = read_catalog(tmp_path / "faces" / "catalog.csv", check_files=True)
    for index in (0, 1):
        xs = [r.x0 for r in rows if r.face_index == index]
        assert len(xs) == 4 and np.ptp(xs) < 40  # each index stays on one of the two faces
    with Image.open(tmp_path / "faces" / rows[0].path) as crop:
        assert crop.format == "JPEG" and crop.size == (64, 64)


@pytest.mark.slow
def test_real_ffpp_videos_end_to_end(dev_ffpp: Path, tmp_path: Path):
    cfg = PreprocessConfig(dev_ffpp, "ffpp", tmp_path / "faces", frames_per_video=4, max_side=320)
    summary = run_preprocess(cfg, progress=False)
    assert (summary.done, summary.failed, summary.frames) == (7, 0, 28)
    rows = read_catalog(tmp_path / "faces" / "catalog.csv", check_files=True)
    videos = {r.video_id: (r.label, r.method) for r in rows}
    assert sorted(label for label, _ in videos.values()) == [0, 0, 0, 1, 1, 1, 1]
    assert {method for label, method in videos.values() if label} == {
        "Deepfakes",
        "Face2Face",
        "FaceSwap",
        "NeuralTextures",
    }
    assert len({(r.video_id, r.frame_index) for r in rows}) >= 0.95 * summary.frames
    shifts = []
    for video in videos:
        boxes = [np.array([r.x0, r.y0, r.x1, r.y1]) for r in rows if r.video_id == video]
        for a, b in zip(boxes, boxes[1:], strict=False):
            side = max(a[2] - a[0], a[3] - a[1])
            shifts.append(np.linalg.norm((a[:2] + a[2:]) / 2 - (b[:2] + b[2:]) / 2) / side)
            assert box_iou(a, b) > 0.4  # frames are ~3 s apart: people move, boxes overlap
    assert max(shifts) < 0.4 and float(np.median(shifts)) < 0.15
