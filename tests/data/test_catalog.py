from __future__ import annotations

import os
from pathlib import Path

import pytest

from deepshield.data.catalog import (
    COLUMNS,
    CatalogError,
    CatalogRow,
    ErrorRow,
    group_key,
    merge_catalogs,
    read_catalog,
    read_errors,
    video_key,
    write_catalog,
    write_errors,
)
from deepshield.errors import DataError


def _row(video: str = "real/a", frame: int = 0, **changes) -> CatalogRow:
    values = dict(
        path=f"folder/{video}/{frame:06d}_0.png",
        label=0,
        dataset="folder",
        video_id=video,
        method="original",
        compression="",
        split="unassigned",
        frame_index=frame,
        timestamp_s=frame / 25,
        face_index=0,
        score=0.99912,
        x0=10.0,
        y0=12.5,
        x1=60.25,
        y1=70.0,
        source_video=video,
    )
    values.update(changes)
    return CatalogRow(**values)


def _part(folder: Path, rows: list[CatalogRow], errors: list[ErrorRow] = ()) -> Path:
    for row in rows:
        (folder / row.path).parent.mkdir(parents=True, exist_ok=True)
        (folder / row.path).write_bytes(b"png")
    write_catalog(folder / "catalog.csv", rows)
    write_errors(folder / "errors.csv", errors)
    return folder


def test_roundtrip_sorted(tmp_path: Path):
    rows = [_row("real/b", 3), _row("real/a", 25), _row("real/a", 0)]
    write_catalog(tmp_path / "catalog.csv", rows)
    text = (tmp_path / "catalog.csv").read_text()
    assert text.splitlines()[0] == ",".join(COLUMNS)
    assert read_catalog(tmp_path / "catalog.csv") == [
        _row("real/a", 0),
        _row("real/a", 25),
        _row("real/b", 3),
    ]
    assert "0.99912" in text and "1.0000" in text  # score and timestamp_s precision


def _bad_catalog(tmp_path: Path, column: str, value: str) -> Path:
    write_catalog(tmp_path / "catalog.csv", [_row("real/a", i) for i in range(3)])
    lines = (tmp_path / "catalog.csv").read_text().splitlines()
    cells = lines[2].split(",")
    cells[COLUMNS.index(column)] = value
    lines[2] = ",".join(cells)
    (tmp_path / "catalog.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "catalog.csv"


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("label", "maybe", "line 3, column label: 'maybe' is not 0/1"),
        ("split", "holdout", "line 3, column split: 'holdout' is not one of train/val/test/unassigned"),
        ("frame_index", "1.5", "line 3, column frame_index: '1.5' is not a whole number"),
        ("score", "1.7", "line 3, column score: '1.7' is not in [0, 1]"),
        ("x1", "5", "line 3, column x1: box x1 5 is not right of x0"),
        ("timestamp_s", "nan", "line 3, column timestamp_s: 'nan' is not a finite number"),
        ("path", "/abs/x.png", "line 3, column path: '/abs/x.png' is absolute"),
        ("video_id", "", "line 3, column video_id: is empty"),
    ],
)
def test_validation_names_file_line_and_column(tmp_path: Path, column: str, value: str, message: str):
    path = _bad_catalog(tmp_path, column, value)
    with pytest.raises(CatalogError) as err:
        read_catalog(path)
    assert str(err.value).startswith(f"{path} {message}")


def test_header_cells_duplicates_and_files(tmp_path: Path):
    path = tmp_path / "catalog.csv"
    path.write_text("path,label\nx.png,0\n")
    with pytest.raises(CatalogError, match=r"line 1: header missing dataset, video_id"):
        read_catalog(path)
    write_catalog(path, [_row("real/a", 0)])
    path.write_text(path.read_text() + "one,two\n")
    with pytest.raises(CatalogError, match="line 3: 2 cells, expected 16"):
        read_catalog(path)
    write_catalog(path, [_row("real/a", 0), _row("real/a", 0, face_index=1)])
    with pytest.raises(CatalogError, match="line 3, column path: .* is already on line 2"):
        read_catalog(path)
    write_catalog(path, [_row("real/a", 0)])
    with pytest.raises(CatalogError, match="does not exist next to the catalog"):
        read_catalog(path, check_files=True)
    with pytest.raises(CatalogError, match="not found"):
        read_catalog(tmp_path / "nope.csv")


def test_write_catalog_keeps_the_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    target = tmp_path / "catalog.csv"
    target.write_text("old")
    real_write_text = Path.write_text

    def broken(self: Path, text: str, *args, **kwargs) -> int:
        real_write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", broken)
    with pytest.raises(OSError, match="disk full"):
        write_catalog(target, [_row("real/a", 0)])
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["catalog.csv"]  # no temp file left behind


def test_one_video_key_for_rows_and_groups():
    row = _row("real/a", 3)
    assert row.video_key == video_key("folder", "real/a") == "folder/real/a"
    assert row.group_key == group_key("folder", "real/a", "real/a") == "folder/real/a"
    fake = _row("fake/b", 0, label=1, source_video="real/a")
    assert fake.group_key == row.group_key and fake.video_key == "folder/fake/b"
    assert _row("fake/c", 0, source_video="").group_key == "folder/fake/c"  # unknown source: itself


def test_merge_rewrites_paths_and_joins_errors(tmp_path: Path):
    one = _part(
        tmp_path / "shards" / "one",
        [_row("real/a", 0), _row("real/a", 25)],
        [ErrorRow("/data/x.mp4", "empty file (0 bytes)")],
    )
    two = _part(
        tmp_path / "shards" / "two",
        [_row("real/b", 0)],
        [ErrorRow("/data/x.mp4", "empty file (0 bytes)"), ErrorRow("/data/y.mp4", "no face")],
    )
    out = tmp_path / "merged"
    assert merge_catalogs(out, [one, two]) == (3, 2)
    rows = read_catalog(out / "catalog.csv", check_files=True)
    assert [r.path for r in rows] == [
        "../shards/one/folder/real/a/000000_0.png",
        "../shards/one/folder/real/a/000025_0.png",
        "../shards/two/folder/real/b/000000_0.png",
    ]
    assert read_errors(out / "errors.csv") == [
        ErrorRow("/data/x.mp4", "empty file (0 bytes)"),
        ErrorRow("/data/y.mp4", "no face"),
    ]


def test_merge_refuses_a_video_in_two_parts(tmp_path: Path):
    one = _part(tmp_path / "one", [_row("real/a", 0)])
    two = _part(tmp_path / "two", [_row("real/a", 25)])
    with pytest.raises(
        CatalogError, match=r"video folder/real/a is in both .*one/catalog.csv and .*two/catalog.csv"
    ) as err:
        merge_catalogs(tmp_path / "out", [one, two])
    assert isinstance(err.value, DataError)  # a user-facing error: one line, exit 2
    with pytest.raises(CatalogError, match="must hold a preprocess catalog.csv"):
        merge_catalogs(tmp_path / "out", [one, tmp_path / "missing"])
    assert not (tmp_path / "out" / "catalog.csv").exists()
