"""Identity groups and group-disjoint folds: FF++ swaps join their target and source people."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepshield.data.catalog import CatalogRow, read_catalog, write_catalog
from deepshield.data.folds import assign_folds, holdout_videos, identity_groups, people, write_folds
from deepshield.errors import DataError


def row(video_id: str, label: int, method: str, source: str = "", path: str = "", dataset: str = "ffpp",
        split: str = "train") -> CatalogRow:
    source = source or (video_id if label == 0 else "")
    return CatalogRow(path or f"{dataset}/{video_id}/0.jpg", label, dataset, video_id, method, "c23", split,
                      0, 0.0, 0, 0.99, 0.0, 0.0, 10.0, 10.0, source)


def ffpp_rows(ids: list[tuple[str, str]]) -> list[CatalogRow]:
    """Reals of every id and, per pair (a, b), the fakes a_b and b_a of two methods."""
    rows = []
    for a, b in ids:
        rows += [row(f"youtube/c23/{a}", 0, "original"), row(f"youtube/c23/{b}", 0, "original")]
        for method in ("Deepfakes", "FaceSwap"):
            rows += [row(f"{method}/c23/{a}_{b}", 1, method, f"youtube/c23/{a}"),
                     row(f"{method}/c23/{b}_{a}", 1, method, f"youtube/c23/{b}")]
    return rows


def test_people_of_an_ffpp_swap_and_a_dfd_fake():
    swap = row("FaceSwap/c23/033_097", 1, "FaceSwap")
    assert people(swap) == ["ffpp/youtube/c23/033", "ffpp/youtube/c23/097"]
    assert people(row("DeepFakeDetection/c23/01_11__talking__X", 1, "DeepFakeDetection")) == \
        ["ffpp/actor/01", "ffpp/actor/11"]
    assert people(row("youtube/c23/033", 0, "original")) == []
    assert people(row("abc", 1, "unknown", dataset="dfdc_faces")) == []


def test_identity_groups_join_both_people_of_a_swap():
    rows = ffpp_rows([("033", "097"), ("134", "192")])
    groups = identity_groups(rows)
    # The source_video link alone puts 097_033 with 097 only; identity puts the four with 033 and 097.
    first = {k for k, g in groups.items() if g == groups["ffpp/youtube/c23/033"]}
    assert first == {"ffpp/youtube/c23/033", "ffpp/youtube/c23/097", "ffpp/Deepfakes/c23/033_097",
                     "ffpp/Deepfakes/c23/097_033", "ffpp/FaceSwap/c23/033_097", "ffpp/FaceSwap/c23/097_033"}
    assert len(set(groups.values())) == 2


def test_folds_never_split_a_person_and_are_even():
    rows = ffpp_rows([(f"{i:03d}", f"{i + 500:03d}") for i in range(9)])
    folds = assign_folds(rows, k=3, seed=0)
    groups = identity_groups(rows)
    for g in set(groups.values()):
        assert len({folds[k] for k, gg in groups.items() if gg == g}) == 1
    sizes = [sum(1 for f in folds.values() if f == i) for i in range(3)]
    assert sizes == [18, 18, 18]
    assert assign_folds(rows, k=3, seed=0) == folds  # seeded
    with pytest.raises(DataError, match="cannot fill 4 folds"):
        assign_folds(ffpp_rows([("001", "002"), ("003", "004"), ("005", "006")]), k=4)


def test_holdout_keeps_a_swaps_source_person_out_of_training():
    rows = ffpp_rows([(f"{i:03d}", f"{i + 500:03d}") for i in range(5)])
    groups = identity_groups(rows)
    for seed in range(5):
        val = holdout_videos(rows, 0.2, seed)
        rest = {groups[r.video_key] for r in rows if r.video_key not in val}
        assert {groups[k] for k in val}.isdisjoint(rest)


def test_write_folds_points_at_the_crops_and_holds_each_video_out_once(tmp_path: Path):
    data = tmp_path / "crops"
    rows = ffpp_rows([(f"{i:03d}", f"{i + 500:03d}") for i in range(6)])
    for r in rows:
        (data / r.path).parent.mkdir(parents=True, exist_ok=True)
        (data / r.path).write_bytes(b"jpg")
    write_catalog(data / "catalog.csv", rows)
    (data / "preprocess.json").write_text(json.dumps({"margin": 0.7, "root": "x"}))
    paths = write_folds([data / "catalog.csv"], k=3, out=tmp_path / "folds")
    assert [p.parent.name for p in paths] == ["fold0", "fold1", "fold2", "all"]
    tested = []
    for p in paths[:3]:
        fold = read_catalog(p, check_files=True)  # the relative paths resolve from the fold folder
        assert {r.split for r in fold} == {"train", "val", "test"}
        tested += [r.video_key for r in fold if r.split == "test"]
        assert (p.parent / "preprocess.json").is_file()
    assert sorted(tested) == sorted(r.video_key for r in rows)  # every video held out exactly once
    assert {r.split for r in read_catalog(paths[3])} == {"train", "val"}
    info = json.loads((tmp_path / "folds" / "folds.json").read_text())
    assert info["k"] == 3 and sum(info["videos"][f"fold{i}"]["test"] for i in range(3)) == len(rows)


def test_write_folds_refuses_the_same_video_twice(tmp_path: Path):
    rows = ffpp_rows([("001", "002"), ("003", "004"), ("005", "006")])
    for name in ("a", "b"):
        write_catalog(tmp_path / name / "catalog.csv", rows)
    with pytest.raises(DataError, match="is in both"):
        write_folds([tmp_path / "a" / "catalog.csv", tmp_path / "b" / "catalog.csv"], 3, tmp_path / "out")
