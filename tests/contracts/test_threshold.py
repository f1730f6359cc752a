"""Threshold: calibration rules on hand-checkable scores, the record's round trip, and where a verdict's
threshold comes from."""

import numpy as np
import pytest

from deepshield.contracts.threshold import (
    DEFAULT_THRESHOLD,
    THRESHOLD_RULES,
    Threshold,
    calibrate,
    rates_at,
    resolve_threshold,
)
from deepshield.errors import ConfigError, DataError

REALS = [0.1, 0.2, 0.3, 0.4]
FAKES = [0.35, 0.6, 0.7, 0.8]


def _data(reals, fakes, dataset="a"):
    return reals + fakes, [0] * len(reals) + [1] * len(fakes), [dataset] * (len(reals) + len(fakes))


def test_eer_is_the_midpoint_where_reals_flagged_equal_fakes_missed():
    t = calibrate(*_data(REALS, FAKES), "eer", what="validation videos")
    # at 0.375 one real of four (0.4) is flagged and one fake of four (0.35) missed: 25% each
    assert t.value == pytest.approx(0.375)
    assert rates_at(*_data(REALS, FAKES)[:2], t.value) == (0.25, 0.75)
    assert (t.rule, t.n_real, t.n_fake, t.data) == ("eer", 4, 4, "the validation videos of a")
    assert t.describe() == "0.375 (EER of the validation videos of a)"


def test_eer_of_separated_classes_sits_between_them():
    assert calibrate(*_data([0.1, 0.2], [0.8, 0.9]), "eer").value == pytest.approx(0.5)


def test_fpr_rules_hold_on_the_reals_of_every_dataset():
    a_reals = [round(0.01 * i, 2) for i in range(1, 21)]      # 0.01 .. 0.20: 20 reals
    s, y, d = _data(a_reals, [0.5, 0.9], "a")
    # 5% of 20 = 1 real may be flagged (0.20): the threshold sits between 0.19 and 0.20
    assert calibrate(s, y, d, "fpr5").value == pytest.approx(0.195)
    # 1%: none may be flagged: between the highest real 0.20 and the next score, the fake 0.5
    assert calibrate(s, y, d, "fpr1").value == pytest.approx(0.35)
    s2, y2, d2 = _data([0.5, 0.6], [0.9], "b")            # dataset b's reals score higher
    t = calibrate(s + s2, y + y2, d + d2, "fpr5")
    assert t.value == pytest.approx(0.75) and t.data == "the videos of a, b"
    for name in ("a", "b"):
        keep = np.array(d + d2) == name
        fpr, _ = rates_at(np.array(s + s2)[keep], np.array(y + y2)[keep], t.value)
        assert fpr <= 0.05


def test_reals_scoring_exactly_one_are_not_flagged():
    t = calibrate(*_data([0.2, 1.0], [1.0]), "fpr1")
    assert t.value > 1.0 and rates_at([0.2, 1.0, 1.0], [0, 0, 1], t.value) == (0.0, 0.0)
    assert Threshold.from_json(t.to_json()) == t


def test_one_class_is_a_config_error_naming_what_is_missing():
    with pytest.raises(ConfigError, match="no fake"):
        calibrate(*_data(REALS, []), "eer")
    with pytest.raises(ConfigError, match="no real"):
        calibrate(*_data([], FAKES), "fpr5")
    with pytest.raises(ConfigError, match="unknown threshold rule 'f5'"):
        calibrate(*_data(REALS, FAKES), "f5")
    with pytest.raises(ConfigError, match="not finite"):
        calibrate([0.1, float("nan")], [0, 1], ["a", "a"], "eer")


def test_the_record_round_trips_and_a_malformed_one_is_named():
    t = Threshold(0.372, "fpr5", "the validation videos of dfdc, ffpp", 10, 12)
    assert Threshold.from_json(t.to_json()) == t
    assert t.source == "calibrated: 5% FPR of the validation videos of dfdc, ffpp"
    with pytest.raises(DataError, match="malformed"):
        Threshold.from_json({"value": 0.3})
    with pytest.raises(DataError, match="outside"):
        Threshold.from_json({**t.to_json(), "value": 1.5})
    assert set(THRESHOLD_RULES) == {"eer", "fpr5", "fpr1"}


def test_override_then_calibrated_then_default():
    t = Threshold(0.3, "eer", "the videos of a", 2, 2)
    assert resolve_threshold(0.7, t.to_json()) == (0.7, "--threshold")
    assert resolve_threshold(None, t.to_json()) == (0.3, "calibrated: EER of the videos of a")
    value, source = resolve_threshold(None, None)
    assert value == DEFAULT_THRESHOLD == 0.5 and source.startswith("default 0.5")
