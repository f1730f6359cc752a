from __future__ import annotations

from pathlib import Path

import pytest

from deepshield.data.catalog import CatalogRow, read_catalog, read_errors
from deepshield.data.layouts import VideoRecord
from deepshield.data.parts import (
    clear_crops,
    commit_rows,
    crop_name,
    is_crop_file,
    pending,
    rebuild_outputs,
    record_failure,
)
from deepshield.io import atomic_write


def _record(video_id: str) -> VideoRecord:
    return VideoRecord(Path(f"/d/{video_id}.mp4"), 0, "mydata", video_id, "original", "", "train", video_id)


def _row(video_id: str) -> CatalogRow:
    return CatalogRow(f"mydata/{video_id}/{crop_name(0, 0, 'png')}", 0, "mydata", video_id, "original", "",
                      "train", 0, 0.0, 0, 0.99, 1.0, 2.0, 30.0, 40.0, video_id)


def test_committed_videos_are_not_pending_and_outputs_rebuild_from_parts(tmp_path: Path):
    records = [_record("a"), _record("b"), _record("c")]
    assert pending(tmp_path, records) == records  # no .parts folder yet
    commit_rows(tmp_path, records[0].key, [_row("a")])
    record_failure(tmp_path, records[2], "no face")
    assert pending(tmp_path, records) == [records[1]]
    assert rebuild_outputs(tmp_path) == (1, 1)
    assert read_catalog(tmp_path / "catalog.csv") == [_row("a")]
    assert [e.reason for e in read_errors(tmp_path / "errors.csv")] == ["no face"]


def test_clear_crops_removes_crops_and_their_temp_files_only(tmp_path: Path):
    video = tmp_path / "mydata" / "real"
    (video / "nested").mkdir(parents=True)  # another video's folder may sit inside this one
    for name in (crop_name(12, 0, "png"), crop_name(12, 1, "jpg"), "notes.txt", ".hidden.tmp"):
        (video / name).write_bytes(b"x")
    temp_names: list[str] = []

    def die(tmp: Path) -> None:
        temp_names.append(tmp.name)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(video / crop_name(13, 0, "png"), die)
    (video / temp_names[0]).write_bytes(b"half")  # what a crop write killed by SIGKILL leaves behind
    assert is_crop_file(temp_names[0]) and not is_crop_file(".hidden.tmp") and not is_crop_file("notes.txt")
    clear_crops(video)
    assert sorted(p.name for p in video.iterdir()) == [".hidden.tmp", "nested", "notes.txt"]
