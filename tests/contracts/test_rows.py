"""The typed rows of results.json: each kind writes its own fields in the results.json order, reads back
what it wrote, and names what is missing."""

import json
import math

import numpy as np
import pytest

from deepshield.contracts.rows import BINARY, Check, CorruptionRow, Gallery, GalleryItem, Metrics, SweepRow
from deepshield.errors import DataError


def metrics(acc: float = 0.5, **extra) -> Metrics:
    return Metrics(n=8, acc=acc, auc=0.75, ap=0.7, eer=0.25, real_acc=0.5, fake_acc=0.5, tpr_at_1fpr=0.25,
                   threshold_1fpr=0.9, **extra)


def test_metrics_round_trip_with_videos_and_methods():
    per_method = metrics(video={"mean": metrics(0.25)})
    m = metrics(video={"mean": metrics(0.625), "top50": metrics(0.75)}, by_method={"real": per_method})
    d = m.to_json()
    assert list(d) == [*BINARY, "video", "by_method"]
    assert d["by_method"]["real"]["video"]["acc"] == 0.25  # per method: the video mean, flat
    assert Metrics.from_json(d) == m and Metrics.from_json(json.loads(json.dumps(d))).to_json() == d
    assert m.get("fake_acc") == 0.5
    with pytest.raises(KeyError, match="choose from"):
        m.get("video")


def test_each_kind_of_row_writes_its_fields_in_order():
    m = metrics()
    attack = SweepRow("pgd", 4 / 255, "linf", "pgd@4/255", m, seconds=1.5, attacked=7)
    worst = SweepRow("worst-case", 4 / 255, "linf", "worst-case@4/255", m, attacks=("fgsm", "pgd"))
    reenc = SweepRow("pgd", 4 / 255, "linf", "pgd@4/255|jpeg:75", m, channel="jpeg:75", success_before=1.0,
                     success=0.5)
    transfer = SweepRow("pgd", 4 / 255, "linf", "transfer:pgd@4/255", m, transfer_from="s.pt", success=0.25)
    head = ["attack", "eps", "eps_255", "norm", "key"]
    assert list(attack.to_json()) == [*head, *BINARY, "seconds", "attacked"]
    assert list(worst.to_json()) == [*head, *BINARY, "attacks"]
    assert worst.to_json()["attacks"] == ["fgsm", "pgd"]
    assert list(reenc.to_json()) == [*head, "channel", *BINARY, "success_before", "success"]
    assert list(transfer.to_json()) == [*head, "transfer_from", *BINARY, "success"]
    assert attack.eps_255 == 4.0 and attack.to_json()["eps_255"] == 4.0
    for row in (attack, worst, reenc, transfer):
        assert SweepRow.from_json(json.loads(json.dumps(row.to_json()))) == row
    corrupt = CorruptionRow("jpeg30", m)
    assert list(corrupt.to_json()) == ["name", *BINARY]
    assert CorruptionRow.from_json(corrupt.to_json()) == corrupt


def test_nan_and_missing_values_read_back_as_the_report_reads_them():
    """Metrics stored as null (NaN) or not stored (older files) read as None; a success rate stored as
    null reads as NaN, so the row writes it again."""
    old = {"attack": "pgd", "eps": 4 / 255, "key": "pgd@4/255", "n": 4, "acc": 0.5, "auc": None,
           "transfer_from": "s.pt", "success": None}
    row = SweepRow.from_json(old, norm="l2")
    assert row.norm == "l2" and row.metrics.auc is None and row.metrics.tpr_at_1fpr is None
    assert math.isnan(row.success) and "success" in row.to_json() and row.success_before is None
    assert row.channel is None and row.seconds is None and "seconds" not in row.to_json()


def test_missing_identity_is_a_data_error_naming_the_row():
    with pytest.raises(DataError, match="results.json robust\\[0\\] has no 'key'"):
        SweepRow.from_json({"attack": "pgd", "eps": 0.1, "n": 3, "acc": 1.0}, "results.json robust[0]")
    with pytest.raises(DataError, match="has no 'n'"):
        Metrics.from_json({"acc": 1.0})


def test_check_keeps_its_fields_and_coerces_numpy_values():
    c = Check("huge_eps", "pgd at huge eps", np.float64(0.01) <= 0.05, "accuracy 0.010",
              value=np.float32(0.01))
    assert c.passed is True and type(c.value) is float
    assert list(c.to_json()) == ["id", "name", "passed", "detail", "value"]
    assert Check.from_json(c.to_json()) == c
    plain = Check("adaptive", "defense attacked adaptively", False, "--non-adaptive")
    assert "value" not in plain.to_json() and Check.from_json(plain.to_json()) == plain
    assert Check.from_json({"name": "x", "passed": True}) == Check("", "x", True)  # hand-written entries


def test_gallery_records_its_file_once_rendered():
    g = Gallery("pgd", 8 / 255, "linf", (GalleryItem(3, 1, 0.9, 0.2), GalleryItem(5, 0, 0.1, 0.7)))
    assert "file" not in g.to_json() and g.with_file("gallery.png").file == "gallery.png" and g.file is None
    d = g.with_file("gallery.png").to_json()
    assert list(d) == ["attack", "eps", "norm", "items", "file"] and d["items"][0] == {
        "index": 3, "label": 1, "p_clean": 0.9, "p_adv": 0.2}
    assert Gallery.from_json(d) == g.with_file("gallery.png")
