from __future__ import annotations

from pathlib import Path

import pytest

from deepshield.data.catalog import group_key, video_key
from deepshield.data.layouts import LayoutError, VideoRecord
from deepshield.data.splits import assign_split, in_shard, parse_shard, parse_split_ratios
from deepshield.errors import ConfigError, DataError


def _record(video_id: str, label: int, source: str, split: str = "unassigned") -> VideoRecord:
    method = "original" if label == 0 else "swap"
    return VideoRecord(Path(f"/d/{video_id}.mp4"), label, "mydata", video_id, method, "", split, source)


def test_shards_partition_by_id_not_order():
    keys = [f"ffpp/youtube/c23/{i:03d}" for i in range(300)]
    shards = [parse_shard(f"{k}/3") for k in (1, 2, 3)]
    members = [{key for key in keys if in_shard(key, s)} for s in shards]
    assert set().union(*members) == set(keys) and sum(map(len, members)) == len(keys)
    assert all(80 < len(m) < 120 for m in members)
    assert members[0] == {key for key in reversed(keys) if in_shard(key, shards[0])}
    assert parse_shard(None) is None and in_shard("x", None)
    for bad in ("0/4", "5/4", "two", "1/0"):
        with pytest.raises(LayoutError, match="--shard"):
            parse_shard(bad)


def test_a_fake_shares_the_split_of_its_source_video():
    real = _record("real/p1", 0, "real/p1")
    fakes = [_record(f"fake/p1_{i}", 1, "real/p1") for i in range(20)]
    assert {r.group_key for r in fakes} == {real.group_key} == {group_key("mydata", "real/p1")}
    assert real.key == video_key("mydata", "real/p1") == "mydata/real/p1"
    for ratios in ((0.5, 0.25, 0.25), (0.1, 0.1, 0.8)):
        assert len({assign_split(r, ratios).split for r in [real, *fakes]}) == 1
    orphan = _record("fake/x", 1, "")
    assert orphan.group_key == orphan.key  # no known source: its own group
    assert assign_split(_record("real/q", 0, "real/q", split="test")).split == "test"  # official kept


def test_bad_split_ratios_are_user_errors():
    with pytest.raises(LayoutError, match="three numbers") as err:
        parse_split_ratios("0.8,-0.1,0.3")
    assert isinstance(err.value, DataError) and not isinstance(err.value, ConfigError)
    assert parse_split_ratios(None) == (0.8, 0.1, 0.1)
