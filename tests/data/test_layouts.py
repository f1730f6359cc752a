from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepshield.data.layouts import LayoutError, load_ffpp_splits, scan_layout
from deepshield.errors import ConfigError


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def _splits(folder: Path, train, val, test) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, pairs in (("train", train), ("val", val), ("test", test)):
        (folder / f"{name}.json").write_text(json.dumps(pairs))
    return folder


def test_ffpp_dev_videos(dev_ffpp: Path):
    scan = scan_layout("ffpp", dev_ffpp)
    assert scan.problems == []
    by_id = {r.video_id: r for r in scan.records}
    assert sorted(r.label for r in scan.records) == [0, 0, 0, 1, 1, 1, 1]
    assert {r.method for r in scan.records if r.label} == {
        "Deepfakes",
        "Face2Face",
        "FaceSwap",
        "NeuralTextures",
    }
    fake = by_id["Deepfakes/c23/519_515"]
    assert (fake.dataset, fake.compression, fake.source_video, fake.split) == (
        "ffpp",
        "c23",
        "youtube/c23/519",
        "unassigned",
    )
    assert by_id["youtube/c23/004"].method == "original"
    expected = dev_ffpp / "original_sequences/youtube/c23/videos/004.mp4"
    assert by_id["youtube/c23/004"].path.resolve() == expected.resolve()


def test_ffpp_official_splits_and_compression(tmp_path: Path):
    root = tmp_path / "ffpp"
    _touch(
        root,
        *[
            f"original_sequences/youtube/{c}/videos/{i}.mp4"
            for c in ("c23", "c40")
            for i in ("000", "003", "010", "020", "999")
        ],
        "original_sequences/actors/c23/videos/01__walking.mp4",
        "manipulated_sequences/Deepfakes/c23/videos/000_003.mp4",
        "manipulated_sequences/Deepfakes/c23/videos/003_000.mp4",
        "manipulated_sequences/FaceSwap/c23/videos/010_020.mp4",
        "manipulated_sequences/FaceShifter/c23/videos/999_998.mp4",
        "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__walking__ABC123.mp4",
    )
    splits = _splits(tmp_path / "splits", [["000", "003"]], [["010", "020"]], [])
    scan = scan_layout("ffpp", root, compression="c23", splits=splits)
    split = {r.video_id: r.split for r in scan.records}
    assert split == {
        "youtube/c23/000": "train",
        "youtube/c23/003": "train",
        "youtube/c23/010": "val",
        "youtube/c23/020": "val",
        "youtube/c23/999": "unassigned",
        "actors/c23/01__walking": "unassigned",
        "Deepfakes/c23/000_003": "train",
        "Deepfakes/c23/003_000": "train",
        "FaceSwap/c23/010_020": "val",
        "FaceShifter/c23/999_998": "unassigned",
        "DeepFakeDetection/c23/01_02__walking__ABC123": "unassigned",
    }
    dfd = next(r for r in scan.records if r.method == "DeepFakeDetection")
    assert dfd.source_video == "actors/c23/01__walking" and dfd.label == 1
    assert len(scan_layout("ffpp", root).records) == 16  # no filter: c23 and c40
    assert {r.compression for r in scan_layout("ffpp", root, compression="c40").records} == {"c40"}
    with pytest.raises(LayoutError, match=r"no FF\+\+ videos with compression raw.*found: c23, c40"):
        scan_layout("ffpp", root, compression="raw")
    with pytest.raises(LayoutError, match="choose from raw, c23, c40"):
        scan_layout("ffpp", root, compression="c32")


def test_ffpp_split_files_are_checked(tmp_path: Path):
    with pytest.raises(LayoutError, match="train.json: not found"):
        load_ffpp_splits(tmp_path / "missing")
    folder = _splits(tmp_path / "b", [["000", "003"]], [], [])
    (folder / "val.json").unlink()
    with pytest.raises(LayoutError, match="val.json: not found"):
        load_ffpp_splits(folder)
    with pytest.raises(LayoutError, match="entry 1 is"):
        load_ffpp_splits(_splits(tmp_path / "c", [["000", "003"], ["001"]], [], []))
    with pytest.raises(LayoutError, match="also in train.json"):
        load_ffpp_splits(_splits(tmp_path / "d", [["000", "003"]], [], [["003", "000"]]))


def test_wrong_layout_names_folder_and_structure(tmp_path: Path):
    _touch(tmp_path, "real/a.mp4")
    with pytest.raises(LayoutError) as err:
        scan_layout("ffpp", tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message and "original_sequences" in message and "\n" not in message
    with pytest.raises(LayoutError, match="Celeb-real"):
        scan_layout("celebdf", tmp_path)
    with pytest.raises(LayoutError, match="metadata.json"):
        scan_layout("dfdc", tmp_path)
    with pytest.raises(LayoutError, match="no such folder"):
        scan_layout("folder", tmp_path / "nope")
    with pytest.raises(ConfigError, match="unknown layout"):  # the registries' one error
        scan_layout("kinetics", tmp_path)
    with pytest.raises(LayoutError, match="ffpp only"):
        scan_layout("folder", tmp_path, compression="c23")


def test_celebdf(tmp_path: Path):
    _touch(
        tmp_path,
        "Celeb-real/id0_0000.mp4",
        "Celeb-real/id1_0001.mp4",
        "YouTube-real/00170.mp4",
        "Celeb-synthesis/id0_id16_0000.mp4",
        "Celeb-synthesis/id1_id3_0001.mp4",
    )
    (tmp_path / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00170.mp4\n0 Celeb-synthesis/id1_id3_0001.mp4\n1 Celeb-real/id9_0009.mp4\n"
    )
    scan = scan_layout("celebdf", tmp_path)
    got = {r.video_id: (r.label, r.split, r.source_video) for r in scan.records}
    assert got == {
        "Celeb-real/id0_0000": (0, "train", "Celeb-real/id0_0000"),
        "Celeb-real/id1_0001": (0, "train", "Celeb-real/id1_0001"),
        "YouTube-real/00170": (0, "test", "YouTube-real/00170"),
        "Celeb-synthesis/id0_id16_0000": (1, "train", "Celeb-real/id0_0000"),
        "Celeb-synthesis/id1_id3_0001": (1, "test", "Celeb-real/id1_0001"),
    }
    assert [(p.path.name, "missing" in p.reason) for p in scan.problems] == [("id9_0009.mp4", True)]
    (tmp_path / "List_of_testing_videos.txt").write_text("YouTube-real/00170.mp4\n")
    with pytest.raises(LayoutError, match="line 1"):
        scan_layout("celebdf", tmp_path)


def test_dfdc_missing_and_unlisted_files(tmp_path: Path):
    part = tmp_path / "dfdc_train_part_0"
    _touch(part, "aaa.mp4", "bbb.mp4", "stray.mp4")
    (part / "metadata.json").write_text(
        json.dumps(
            {
                "aaa.mp4": {"label": "FAKE", "split": "train", "original": "bbb.mp4"},
                "bbb.mp4": {"label": "REAL", "split": "train"},
                "ccc.mp4": {"label": "FAKE", "split": "train", "original": "bbb.mp4"},
            }
        )
    )
    scan = scan_layout("dfdc", tmp_path)
    assert [(r.video_id, r.label, r.split, r.source_video) for r in scan.records] == [
        ("aaa", 1, "train", "bbb"),
        ("bbb", 0, "train", "bbb"),
    ]
    reasons = {p.path.name: p.reason for p in scan.problems}
    assert set(reasons) == {"ccc.mp4", "stray.mp4"}
    assert "missing" in reasons["ccc.mp4"] and "not listed" in reasons["stray.mp4"]


def test_folder_layout(tmp_path: Path):
    root = tmp_path / "mydata"
    _touch(
        root,
        "real/a.mp4",
        "real/sub/b.JPG",
        "fake/faceswap/c.mp4",
        "fake/d.png",
        "fake/notes.txt",
        "real/.hidden.mp4",
        "real/dup.mp4",
        "real/dup.png",
    )
    scan = scan_layout("folder", root)
    got = {r.video_id: (r.label, r.method, r.dataset) for r in scan.records}
    assert got == {
        "real/a": (0, "original", "mydata"),
        "real/sub/b": (0, "original", "mydata"),
        "fake/faceswap/c": (1, "faceswap", "mydata"),
        "fake/d": (1, "unknown", "mydata"),
        "real/dup": (0, "original", "mydata"),
    }
    assert [p.reason for p in scan.problems] == ["duplicate video id 'real/dup'"]
