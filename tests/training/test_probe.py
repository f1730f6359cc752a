"""Precision and layout by measurement: the fp32 check, the pick, the per-machine cache, the run record."""

from __future__ import annotations

import json
from functools import partial

import pytest
import torch
from torch import nn

from deepshield.config import TrainConfig
from deepshield.training import precision as prec
from deepshield.training import probe as probing
from deepshield.training.precision import build_precision, compile_model, probe_candidates, should_probe

CPU = torch.device("cpu")
ALL = ["fp32/channels_last", "fp32/contiguous", "bf16/channels_last", "bf16/contiguous"]


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))


class Offset(nn.Module):
    """Logits ~512 apart from a difference of about 1: bf16 (8 bits of mantissa) rounds it away."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0] = 1.0
            self.conv.bias.fill_(512.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean((2, 3))


@pytest.fixture()
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))  # no thread probe: the key is fixed
    return tmp_path / "xdg" / "deepshield" / "precision.json"


def run_probe(model: nn.Module, candidates=ALL, size: int = 16) -> probing.ProbeResult:
    key = probing.probe_key("tiny", size, 4, CPU)
    return probing.probe(model, candidates, key, CPU, size, 4, steps=1, warmup=0)


def test_probe_times_every_candidate_against_fp32_and_leaves_the_model_alone():
    model = tiny_net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = run_probe(model)
    assert set(result.candidates) == set(ALL) and result.batch == 4
    for name, m in result.candidates.items():
        assert m.seconds > 0 and m.finite and m.safe, name
    # Same network in both layouts (dropout off in the check): fp32 agrees with itself.
    same = result.candidates["fp32/contiguous"]
    assert same.loss_diff < 1e-5 and same.grad_cos > 0.999
    assert result.candidates["bf16/channels_last"].grad_cos < 1  # bf16 really ran
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN stats untouched
    assert not any(p.grad is not None for p in model.parameters())


def test_bf16_that_rounds_the_logits_away_is_refused():
    result = run_probe(Offset(), ["fp32/contiguous", "bf16/contiguous"], size=8)
    bad = result.candidates["bf16/contiguous"]
    assert bad.finite and not bad.safe and bad.loss_diff > probing.LOSS_TOL
    both = ["fp32/contiguous", "bf16/contiguous"]
    assert probing.pick(result, both, "bf16/contiguous") == "fp32/contiguous"
    assert "refused" in probing.summary(result, "fp32/contiguous")


def _result(**seconds: float) -> probing.ProbeResult:
    r = probing.ProbeResult({"k": 1}, batch=8)
    for name, s in seconds.items():
        r.candidates[name.replace("_", "/", 1)] = probing.Measured(s, s, 0.0, 1.0, True, True)
    return r


def test_pick_keeps_the_preferred_one_unless_clearly_beaten():
    r = _result(bf16_channels_last=1.0, fp32_channels_last=0.95, fp32_contiguous=2.0)
    names = list(r.candidates)
    assert probing.pick(r, names, "bf16/channels_last") == "bf16/channels_last"  # 5 %: noise
    r.candidates["fp32/channels_last"].seconds = 0.5
    assert probing.pick(r, names, "bf16/channels_last") == "fp32/channels_last"
    assert probing.pick(r, ["fp32/contiguous"], "bf16/channels_last") == "fp32/contiguous"  # allowed only
    r.candidates["fp32/contiguous"].safe = False
    assert probing.pick(r, ["fp32/contiguous"], "fp32/contiguous") is None


def test_candidates_follow_amp():
    assert probe_candidates(CPU, False) == ["fp32/channels_last", "fp32/contiguous"]
    assert probe_candidates(CPU, True) == ["bf16/channels_last", "bf16/contiguous"]
    auto = probe_candidates(CPU, None)
    assert auto[:2] == ["fp32/channels_last", "fp32/contiguous"]
    assert len(auto) == (4 if prec.cpu_has_native_bf16() else 2)


def test_when_the_probe_is_skipped():
    big = nn.Linear(1000, 1001)
    cfg = TrainConfig()
    assert should_probe(cfg, big, CPU, 1000) is None
    assert "smoke" in should_probe(TrainConfig(smoke=True), big, CPU, 1000)
    assert "--no-probe" in should_probe(TrainConfig(probe=False), big, CPU, 1000)
    assert "small model" in should_probe(cfg, tiny_net(), CPU, 1000)
    assert "short run" in should_probe(cfg, big, CPU, 10)
    assert "DDP" in should_probe(cfg, None, CPU, 1000)
    assert "meta" in should_probe(cfg, big, torch.device("meta"), 1000)


def test_build_precision_measures_once_then_reads_the_cache(cache_home, monkeypatch):
    monkeypatch.setattr(prec, "MIN_PARAMS", 0)
    cfg = TrainConfig(backbone="tiny", image_size=16, batch_size=4, amp=False)
    first = build_precision(cfg, CPU, tiny_net(), total_steps=1000)
    assert first.how == "measured" and first.name == "fp32" and cache_home.is_file()
    assert first.layout in probing.LAYOUTS and "chosen by measurement" in first.message
    record = first.to_dict()
    assert record["probe"]["candidates"].keys() == {"fp32/channels_last", "fp32/contiguous"}
    assert json.loads(cache_home.read_text())  # the cache holds the entry

    def no_probe(*a, **k):
        raise AssertionError("probed again")

    monkeypatch.setattr(probing, "probe", no_probe)
    again = build_precision(cfg, CPU, tiny_net(), total_steps=1000)
    assert again.how == "cached" and (again.name, again.layout) == (first.name, first.layout)
    assert "cached" in again.message
    with pytest.raises(AssertionError, match="probed again"):  # another image size is another key
        build_precision(TrainConfig(**{**cfg.to_dict(), "image_size": 24}), CPU, tiny_net(), 1000)


def test_forced_amp_keeps_its_precision_and_a_torn_cache_is_probed_again(cache_home, monkeypatch):
    monkeypatch.setattr(prec, "MIN_PARAMS", 0)
    cache_home.parent.mkdir(parents=True)
    cache_home.write_text("{not json")
    p = build_precision(TrainConfig(backbone="tiny", image_size=16, batch_size=4, amp=True), CPU, tiny_net(),
                        total_steps=1000)
    assert p.name == "bf16" and p.how == "measured" and p.scaler is None
    with p.autocast():
        assert nn.Conv2d(3, 2, 1)(torch.rand(1, 3, 4, 4)).dtype == torch.bfloat16


def test_rule_without_a_model_and_apply_layout():
    p = build_precision(TrainConfig(amp=False), CPU)
    assert p.how == "forced" and p.layout == "channels_last" and "by rule" in p.message
    assert p.to_dict() == {"precision": "fp32", "layout": "channels_last", "how": "forced",
                           "threads": p.threads}
    p.layout = "contiguous"
    conv = nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
    assert p.apply_layout(conv).weight.is_contiguous()
    net = tiny_net()
    assert compile_model(net, False) is net  # (compiling is left to the benchmark: importing dynamo is slow)


def test_trainer_records_the_measured_choice(tmp_path, cache_home, monkeypatch):
    from deepshield.training import trainer

    monkeypatch.setattr(prec, "MIN_PARAMS", 0)
    monkeypatch.setattr(prec, "MIN_STEPS", 0)
    monkeypatch.setattr(probing, "probe", partial(probing.probe, steps=1, warmup=0))
    cfg = TrainConfig(backbone="small_cnn", image_size=16, n_train=32, n_val=16, batch_size=8, epochs=1,
                      progress=False, out=str(tmp_path / "run"))
    threads = torch.get_num_threads()
    try:
        trainer.train(cfg)
    finally:
        torch.set_num_threads(threads)  # the thread probe may have picked 1
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["precision"]
    assert saved["how"] == "measured" and saved["probe"]["key"]["model"] == "small_cnn"
    assert f"{saved['precision']}/{saved['layout']}" in saved["probe"]["candidates"]
    # the record travels inside checkpoints, which load with weights_only=True (no foreign classes)
    ckpt = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert ckpt["config"]["precision"]["probe"]["key"]["torch"] == str(torch.__version__)


@pytest.mark.parametrize(("times", "expected"), [({2: 1.0, 1: 0.3}, 1), ({2: 1.0, 1: 0.95}, 2)])
def test_threads_drop_to_one_only_when_clearly_faster(monkeypatch, times, expected):
    monkeypatch.setattr(probing, "probe_threads", lambda *a, **k: times)
    before = torch.get_num_threads()
    try:
        chosen, got = prec.choose_threads(tiny_net(), TrainConfig(), CPU, "fp32/channels_last", 2)
        assert chosen == expected == torch.get_num_threads() and got == times
    finally:
        torch.set_num_threads(before)


def test_probe_threads_times_each_count_and_restores_the_first():
    before = torch.get_num_threads()
    times = probing.probe_threads(tiny_net(), "fp32/channels_last", [before, 1], CPU, 16, 4, steps=1,
                                  warmup=0)
    assert set(times) == {before, 1} and all(t > 0 for t in times.values())
    assert torch.get_num_threads() == before


def test_a_resumed_run_reuses_its_recorded_choice(tmp_path):
    record = {"precision": "bf16", "layout": "contiguous", "how": "measured", "threads": 1,
              "probe": {"batch": 16}}
    (tmp_path / "config.json").write_text(json.dumps({"adv": "none", "precision": record}))
    assert prec.recorded_precision(tmp_path) == record and prec.recorded_precision(tmp_path / "no") is None
    before = torch.get_num_threads()
    try:
        p = build_precision(TrainConfig(), CPU, tiny_net(), 10**6, recorded=record)
        assert (p.name, p.layout, p.threads, torch.get_num_threads()) == ("bf16", "contiguous", 1, 1)
        assert p.to_dict() == record and "as recorded" in p.message
    finally:
        torch.set_num_threads(before)
