"""Face-image datasets (``--layout faces``): metadata, group-disjoint splits, crops framed like video
crops (no black borders) on real DFDC faces, and bad images that go to errors.csv."""

import csv
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from deepshield.cli import main
from deepshield.data.catalog import read_catalog, read_errors
from deepshield.data.layouts import LayoutError, scan_layout
from deepshield.data.preprocess import PreprocessConfig, run_preprocess
from deepshield.data.splits import assign_split, parse_split_ratios

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def dfdc_catalog(dev_dfdc, dfdc_pairs_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("dfdc_crops")
    summary = run_preprocess(PreprocessConfig(root=dev_dfdc, layout="faces", out=out, metadata=dfdc_pairs_csv,
                                              margin=0.7, shift=0.1, size=64, format="jpg"), progress=False)
    return out, summary


def test_metadata_groups_a_fake_with_its_real_video(dev_dfdc, dfdc_pairs_csv):
    scan = scan_layout("faces", dev_dfdc, metadata=dfdc_pairs_csv)
    assert len(scan.records) == 12 and not scan.problems
    by_id = {r.video_id: r for r in scan.records}
    for r in scan.records:
        assert r.dataset == "dfdc_faces" and r.path.is_file()
        if r.label == 1:
            assert by_id[r.source_video].label == 0  # the fake's group is its real video
            assert r.group_key == by_id[r.source_video].group_key


def test_splits_are_deterministic_and_never_split_a_group(dev_dfdc, dfdc_pairs_csv):
    records = scan_layout("faces", dev_dfdc, metadata=dfdc_pairs_csv).records
    first = [assign_split(r, (0.5, 0.25, 0.25)).split for r in records]
    assert first == [assign_split(r, (0.5, 0.25, 0.25)).split for r in records]
    split_of_group: dict[str, set[str]] = {}
    for r, split in zip(records, first, strict=True):
        split_of_group.setdefault(r.group_key, set()).add(split)
    assert all(len(s) == 1 for s in split_of_group.values())
    assert {assign_split(r, (1, 0, 0)).split for r in records} == {"train"}
    assert parse_split_ratios("8,1,1") == pytest.approx((0.8, 0.1, 0.1))
    with pytest.raises(LayoutError, match="three numbers"):
        parse_split_ratios("0.8,0.2")


def test_dfdc_crops_are_framed_without_black_borders(dfdc_catalog):
    out, summary = dfdc_catalog
    rows = read_catalog(out / "catalog.csv", check_files=True)
    assert len(rows) + summary.failed == 12 and len(rows) >= 10
    assert summary.splits and sum(real + fake for _, real, fake in summary.splits) == 12
    groups: dict[str, set[str]] = {}
    for row in rows:
        groups.setdefault(row.source_video, set()).add(row.split)
        crop = np.asarray(Image.open(out / row.path).convert("RGB"))
        assert crop.shape == (64, 64, 3)
        edges = [crop[0], crop[-1], crop[:, 0], crop[:, -1]]
        assert min(float(e.max()) for e in edges) > 30  # no black padding on any side
        assert float((crop.max(axis=2) < 8).mean()) < 0.02
    assert all(len(s) == 1 for s in groups.values())  # a real and its fake share a split


def _huge_png(path):
    """A PNG header claiming 9000 x 9000 pixels (no pixel data: the size check must come first)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 9000, 9000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def test_bad_images_are_listed_in_errors_csv_with_a_reason(tmp_path):
    root = tmp_path / "faces"
    (root / "real").mkdir(parents=True)
    (root / "fake").mkdir()
    (root / "real" / "text.jpg").write_text("not an image")
    (root / "real" / "empty.png").write_bytes(b"")
    Image.new("L", (96, 96), 128).save(root / "real" / "grey.png")
    Image.new("RGB", (20, 20), (200, 150, 120)).save(root / "fake" / "tiny.png")
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(noise).resize((96, 96), Image.BICUBIC).save(root / "fake" / "noface.png")
    _huge_png(root / "fake" / "huge.png")
    cfg = PreprocessConfig(root=root, layout="faces", out=tmp_path / "out")
    summary = run_preprocess(cfg, progress=False)
    assert summary.failed == 6 and summary.faces == 0
    reasons = {e.path.rsplit("/", 1)[-1]: e.reason for e in read_errors(tmp_path / "out" / "errors.csv")}
    assert "not an image" in reasons["text.jpg"]
    assert "empty" in reasons["empty.png"]
    assert "grey-scale" in reasons["grey.png"]
    assert "under 32 px" in reasons["tiny.png"]
    assert "megapixels" in reasons["huge.png"]
    assert "no face" in reasons["noface.png"]
    assert read_catalog(tmp_path / "out" / "catalog.csv") == []


def _metadata(tmp_path, header, *rows):
    path = tmp_path / "meta.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


@pytest.mark.parametrize(("header", "row", "message"), [
    (["file", "kind"], ["real/x.jpg", "REAL"], "row 1: missing column label"),
    (["file", "label"], ["real/a.jpg", "MAYBE"], "row 2: label 'MAYBE' is not REAL/FAKE"),
    (["file", "label"], ["real/missing.jpg", "REAL"], "row 2: file 'real/missing.jpg' does not exist"),
])
def test_bad_metadata_is_a_one_line_error_naming_file_and_row(tmp_path, capsys, header, row, message):
    root = tmp_path / "faces"
    (root / "real").mkdir(parents=True)
    Image.new("RGB", (64, 64)).save(root / "real" / "a.jpg")
    meta = _metadata(tmp_path, header, row)
    out = str(tmp_path / "o")
    rc = main(["preprocess", str(root), "--layout", "faces", "--metadata", str(meta), "--out", out])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err
    assert str(meta) in err and message in err
