import json
import subprocess
import sys

import pytest
import torch

from deepshield.config import TrainConfig
from deepshield.contracts.threshold import Threshold
from deepshield.models.loading import load_checkpoint
from deepshield.training import trainer

TINY = dict(dataset="synthetic", backbone="small_cnn", image_size=32, n_train=256, n_val=64, batch_size=32,
            steps=2, val_attack_steps=2, progress=False)


def test_run_outputs_and_tensorboard(tmp_path, capsys):
    cfg = TrainConfig(**TINY, epochs=2, adv="pgd", out=str(tmp_path / "run"), tensorboard=True,
                      threshold_rule="fpr5")
    result = trainer.train(cfg)
    lines = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    keys = {"train_loss", "train_acc", "val_acc", "val_auc", "val_pgd_acc", "lr", "eps", "images_per_s"}
    assert keys <= set(lines[0])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["adv"] == "pgd"
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    ckpt = load_checkpoint(result.last_path)
    assert ckpt["epoch"] == 1 and ckpt["config"]["adv"] == "pgd" and ckpt["version"]
    assert {"model", "optimizer", "scheduler", "rng", "metrics", "best"} <= set(ckpt)
    assert load_checkpoint(result.best_path)["best_metric"] == "val_robust_score"
    # the operating threshold, calibrated on the validation images of each checkpoint's epoch
    for path in (result.best_path, result.last_path):
        t = Threshold.from_json(load_checkpoint(path)["config"]["threshold"])
        assert (t.rule, t.data, t.n_real + t.n_fake) == ("fpr5", "the validation images of synthetic", 64)
    assert "operating threshold of best.pt" in capsys.readouterr().out


def test_eps_warmup():
    cfg = TrainConfig(eps=8 / 255, adv_warmup_epochs=4)
    assert [round(trainer.eps_at(cfg, e) * 255, 6) for e in range(5)] == [2, 4, 6, 8, 8]


def test_kill_and_resume_is_bitwise_identical(tmp_path, monkeypatch):
    cfg = TrainConfig(**TINY, epochs=4, adv="pgd", out=str(tmp_path / "straight"))
    straight = trainer.train(cfg)

    interrupted = TrainConfig(**{**cfg.to_dict(), "out": str(tmp_path / "resumed")})
    real_save = trainer.save_checkpoint

    def save_then_die(path, **state):
        real_save(path, **state)
        if path.name == "last.pt" and state["epoch"] == 1:
            raise KeyboardInterrupt  # killed right after the second epoch's checkpoint

    monkeypatch.setattr(trainer, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(interrupted)
    monkeypatch.undo()
    resumed = trainer.train(TrainConfig(**{**interrupted.to_dict(), "resume": True}))

    a, b = load_checkpoint(straight.last_path)["model"], load_checkpoint(resumed.last_path)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)

    def curve(p):
        lines = (p / "metrics.jsonl").read_text().splitlines()
        return [(m["epoch"], m["train_loss"]) for m in map(json.loads, lines)]

    assert curve(tmp_path / "straight") == curve(tmp_path / "resumed")


@pytest.mark.slow
def test_ddp_two_process_gloo_matches_single_process(tmp_path):
    args = ["train", "--dataset", "synthetic", "--n-train", "768", "--n-val", "256", "--image-size", "32",
            "--epochs", "3", "--batch-size", "64", "--lr", "3e-3", "--quiet"]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node", "2", "-m", "deepshield", *args, "--out", str(tmp_path / "ddp")],
                         capture_output=True, text=True, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "ddp").glob("*.pt")) == ["best.pt", "last.pt"]
    assert load_checkpoint(tmp_path / "ddp" / "best.pt")["config"]["threshold"]["n_real"] > 0  # by rank 0
    assert ddp.stdout.count("best checkpoint:") == 1  # rank 0 only
    single = trainer.train(TrainConfig(dataset="synthetic", n_train=768, n_val=256, image_size=32, epochs=3,
                                       batch_size=64, lr=3e-3, progress=False, out=str(tmp_path / "single")))
    ddp_metrics = load_checkpoint(tmp_path / "ddp" / "last.pt")["metrics"]
    assert abs(ddp_metrics["val_acc"] - single.metrics["val_acc"]) <= 0.05
    assert abs(ddp_metrics["train_loss"] - single.metrics["train_loss"]) <= 0.1


def test_catastrophic_overfitting_is_flagged():
    ok = [{"val_acc": 0.9, "val_pgd_acc": a} for a in (0.3, 0.45, 0.5)]
    assert trainer.overfitting_warning(ok) is None
    collapsed = ok + [{"val_acc": 0.95, "val_pgd_acc": 0.02}]
    assert "catastrophic overfitting" in trainer.overfitting_warning(collapsed)


def test_patience_stops_when_the_best_metric_has_not_improved_for_n_epochs():
    from deepshield.training.trainer import patience_stop

    hist = [{"val_auc": v} for v in (0.6, 0.7, 0.69, 0.68)]
    assert patience_stop(hist[:3], "val_auc", 2) is None
    message = patience_stop(hist, "val_auc", 2)
    assert message and "0.7000 (epoch 2)" in message
    assert patience_stop(hist, "val_auc", None) is None
    assert patience_stop(hist, "val_auc", 3) is None


def test_a_run_stopped_early_does_nothing_when_resumed(tmp_path, monkeypatch):
    """Early stopping is read from metrics.jsonl, so a resumed run that stopped trains no more epochs."""
    import json

    from deepshield.config import TrainConfig
    from deepshield.training import trainer

    cfg = TrainConfig(epochs=3, n_train=64, n_val=32, image_size=16, batch_size=32, patience=1, probe=False,
                      progress=False, out=str(tmp_path))
    values = iter([0.9, 0.5, 0.4, 0.3])
    real_validate = trainer.validate

    def scripted(*args, **kw):
        return {**real_validate(*args, **kw), "val_auc": next(values)}

    monkeypatch.setattr(trainer, "validate", scripted)
    trainer.train(cfg)
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]  # epoch 2 did not beat epoch 1: stop
    trainer.train(TrainConfig(**{**cfg.to_dict(), "resume": True}))
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]
