"""Threat models in ``deepshield evaluate``: re-encoding, transfer, corruptions, defenses and EOT."""

from __future__ import annotations

import json

import pytest
import torch

from deepshield.cli import main
from deepshield.config import EvalConfig, SweepSpec, TrainConfig
from deepshield.errors import ConfigError
from deepshield.evaluation.adaptive import AUTO_EOT, threat_setup
from deepshield.evaluation.threat_rows import build_channels
from deepshield.models import build_model
from deepshield.training.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def runs(trained_cnn, tmp_path_factory):
    """The trained SmallCNN and an untrained surrogate of another input size, as checkpoints."""
    root = tmp_path_factory.mktemp("threat_runs")
    save_checkpoint(root / "target" / "best.pt", model=trained_cnn.state_dict(),
                    config=TrainConfig(image_size=32).to_dict())
    torch.manual_seed(1)
    save_checkpoint(root / "surrogate" / "best.pt", model=build_model("small_cnn").state_dict(),
                    config=TrainConfig(image_size=48).to_dict())
    return root


def _evaluate(root, *extra):
    out = root / "eval_threats"
    rc = main(["evaluate", "--checkpoint", str(root / "target" / "best.pt"), "--attacks", "fgsm,pgd",
               "--eps", "8/255", "--steps", "5", "--n-test", "48", "--no-sanity", "--gallery", "0",
               "--out", str(out), "--quiet", *extra])
    return rc, json.loads((out / "results.json").read_text()) if rc == 0 else None


def test_reencoding_transfer_and_corruption_rows(runs, capsys):
    rc, res = _evaluate(runs, "--reencode", "jpeg:75,h264:23", "--surrogate",
                        str(runs / "surrogate" / "best.pt"))
    assert rc == 0, capsys.readouterr().err
    channels = {(r["attack"], r["channel"]) for r in res["reencoded"]}
    assert channels == {(a, c) for a in ("clean", "fgsm", "pgd") for c in ("jpeg:75", "h264:23")}
    pgd = {r["channel"]: r for r in res["reencoded"] if r["attack"] == "pgd"}
    for row in pgd.values():
        assert 0 <= row["success"] <= 1
        # Before the channel, success is the PGD row's: the attacked (correct) faces it fooled.
        fooled = 1 - res["robust"][1]["acc"] / res["clean"]["acc"]
        assert row["success_before"] == pytest.approx(fooled, abs=0.05)
        assert len(res["samples"]["scores"][row["key"]]) == 48
    transfer = {r["attack"]: r for r in res["transfer"]}
    assert set(transfer) == {"fgsm", "pgd"} and transfer["pgd"]["transfer_from"].endswith("surrogate/best.pt")
    # An untrained surrogate transfers worse than the white-box attack on the target itself.
    assert transfer["pgd"]["acc"] >= res["robust"][1]["acc"]
    names = {r["name"] for r in res["corruptions"]}
    assert {"jpeg30", "blur1", "noise0.05", "down0.5"} <= names
    assert "tpr_at_1fpr" in res["robust"][0] and "fake_acc" in res["robust"][0]  # per-direction metrics
    md = (runs / "eval_threats" / "report.md").read_text()
    assert "jpeg:75" in md and "Natural corruptions" in md


def test_randomized_defense_gets_eot_and_without_it_is_flagged(runs, capsys):
    rc, res = _evaluate(runs, "--defense", "noise:0.05", "--reencode", "none", "--no-corruptions")
    assert rc == 0, capsys.readouterr().err
    assert res["threat"] == {"randomized": True, "eot": AUTO_EOT, "defense": "noise:0.05"}
    checks = {c["id"]: c for c in res["checks"]}
    assert checks["eot"]["passed"] and checks["adaptive"]["passed"]
    rc, res = _evaluate(runs, "--defense", "noise:0.05", "--eot", "1", "--non-adaptive",
                        "--reencode", "none", "--no-corruptions")
    checks = {c["id"]: c for c in res["checks"]}
    assert not checks["eot"]["passed"] and not checks["adaptive"]["passed"]
    assert "NOT a robustness claim" in checks["adaptive"]["detail"]


def test_deterministic_model_gets_no_eot(trained_cnn):
    cfg = EvalConfig(checkpoint="x", sweep=SweepSpec())
    setup = threat_setup(trained_cnn, cfg, torch.rand(8, 3, 32, 32))
    assert (setup.randomized, setup.eot, setup.checks) == (False, 1, [])
    assert setup.attacked is trained_cnn


def test_bad_channel_spec_is_named():
    with pytest.raises(ConfigError, match="jpeg:QUALITY"):
        build_channels(("png:3",))
    assert set(build_channels(("jpeg:75", "h264:23"))) == {"jpeg:75", "h264:23"}
