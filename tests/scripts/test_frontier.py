"""scripts/frontier.py and frontier_report.py: controlled runs, the Pareto front, the pick, the report."""

import json
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import frontier  # noqa: E402
import frontier_report as report  # noqa: E402


def _cfg(flags):
    """The TrainConfig ``deepshield train --config BASE FLAGS`` runs with (as the CLI builds it)."""
    from deepshield.cli import build_parser
    from deepshield.cli.values import config_of
    from deepshield.config import TrainConfig, load_recipe

    args = build_parser(load_recipe(ROOT / frontier.BASE)).parse_args(["train", *flags])
    return asdict(config_of(TrainConfig, args))


def test_every_run_is_controlled_one_change_from_the_base():
    base = _cfg([])
    seen = []
    for run in frontier.RUNS:
        cfg = _cfg(list(run.flags))
        changed = {k for k in cfg if cfg[k] != base[k]}
        if run.controlled:  # eps comes with its step (α = ε/2); tricks is a pair
            assert len(changed) <= 2, (run.name, changed)
        assert cfg not in seen, f"{run.name} repeats another run"
        seen.append(cfg)
    controlled = [r for r in frontier.RUNS if r.controlled]
    assert len(controlled) >= 8 and any(r.flags == ("--adv", "none") for r in controlled)


def _row(name, auc, w1, w2, fakes=0.2, reals=0.2, adv="pgd", checks=True):
    return {"name": name, "clean_auc": auc, "worst_1": w1, "worst_2": w2, "adv": adv, "checks_pass": checks,
            "worst_fakes_1": fakes, "worst_reals_1": reals, "worst_fakes_2": fakes, "worst_reals_2": reals}


def test_pareto_front_keeps_the_undominated_runs():
    rows = [_row("a", 0.9, 0.0, 0.0), _row("b", 0.8, 0.3, 0.2), _row("c", 0.7, 0.2, 0.1),
            _row("d", 0.6, 0.5, 0.4)]
    assert report.pareto(rows, "worst_1") == {"a", "b", "d"}
    rows.append(_row("masked", 0.95, 0.9, 0.9, checks=False))  # suspect numbers beat no one
    assert report.pareto(rows, "worst_1") == {"a", "b", "d"}


def test_pick_needs_clean_auc_checks_and_both_directions():
    rows = [_row("one-sided", 0.85, 0.4, 0.4, reals=0.0), _row("low-auc", 0.7, 0.6, 0.6),
            _row("suspect", 0.9, 0.5, 0.5, checks=False), _row("ok", 0.82, 0.2, 0.1),
            _row("control", 0.95, 0.3, 0.3, adv="none")]
    assert report.pick(rows)["name"] == "ok"
    assert report.pick(rows[:3]) is None
    relaxed = report.pick(rows[:3], strict=False)  # checks still required
    assert relaxed["name"] == "low-auc" and report.missed(relaxed) == ["clean AUC ≥ 0.8"]


def test_splice_inserts_before_targets_then_replaces_in_place():
    text = "# Results\n\nstuff\n\n## Targets\n\n| t |\n"
    once = report.splice(text, f"{report.START}\nA\n{report.END}")
    assert once.index("A") < once.index("## Targets") and once.startswith("# Results")
    twice = report.splice(once, f"{report.START}\nB\n{report.END}")
    assert "A" not in twice and twice.count(report.START) == 1 and twice.endswith("| t |\n")
    assert report.kept_block(twice) == f"{report.START}\nB\n{report.END}"


def _fake_run(out: Path, name: str, adv: str, auc: float, pgd: float) -> None:
    """A finished run as the frontier leaves it: config, history and its clean and robust results.json."""
    from deepshield.config import SweepSpec
    from deepshield.contracts.rows import Check, Metrics, SweepRow
    from deepshield.evaluation.results import EvalResult, Samples, SweepResult

    def m(acc: float, auc: float) -> Metrics:
        return Metrics(n=4, acc=acc, auc=auc, fake_acc=acc, real_acc=acc)

    rows = {attack: [SweepRow(attack, float(e) / 255, "linf", f"{attack}@{e}/255", m(pgd, auc - 0.3))
                     for e in ("0.5", "1", "2")] for attack in ("pgd", "worst-case")}
    samples = Samples([0, 1, 0, 1], None, None, {"clean": [0.2, 0.9, 0.4, 0.6]})
    spec = SweepSpec(attacks=("fgsm", "pgd"), eps=(0.5 / 255, 1 / 255, 2 / 255))
    clean = EvalResult(SweepResult(m(0.7, auc), [], [], spec, 4, 1.0, samples))
    robust = EvalResult(SweepResult(m(0.7, auc), rows["pgd"], rows["worst-case"], spec, 4, 1.0, samples),
                        checks=[Check("huge_eps", "huge eps", True)])
    d = out / name
    for sub, res in (("eval_clean", clean), ("eval_robust", robust)):
        (d / sub).mkdir(parents=True)
        (d / sub / "results.json").write_text(json.dumps(res.to_json()))
    (d / "config.json").write_text(json.dumps({"adv": adv, "eps": 1 / 255, "image_size": 64}))
    (d / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_acc": 0.4, "val_auc": auc}) + "\n")


def test_report_writes_the_table_the_plot_and_the_results_section(tmp_path):
    out = tmp_path / "runs"
    _fake_run(out, "control", "none", 0.9, 0.0)
    _fake_run(out, "pgd-1", "pgd", 0.82, 0.25)
    (tmp_path / "RESULTS.md").write_text("# Results\n\n## Targets\n\nx\n")
    runs = [r for r in frontier.RUNS if r.name in ("control", "pgd-1")]
    summary = report.write_report(out, runs, tmp_path, findings=["- a finding"])
    assert "pick: pgd-1" in summary
    text = (tmp_path / "RESULTS.md").read_text()
    assert "## Robustness–accuracy frontier" in text and "| pgd-1 ★ |" in text and "- a finding" in text
    assert text.index("frontier") < text.index("## Targets")
    assert (tmp_path / report.PLOT).stat().st_size > 10_000
    rows = json.loads((out / "frontier.json").read_text())
    assert [r["name"] for r in rows] == ["control", "pgd-1"]
    assert rows[1]["margin"] == pytest.approx(1.386, abs=1e-3)


def test_a_rerun_keeps_finished_evaluations_and_redoes_stale_ones(tmp_path):
    """Resume: an evaluation newer than its checkpoint is kept; a retrained checkpoint makes it stale."""
    import os

    ckpt, out = tmp_path / "best.pt", tmp_path / "eval_robust"
    ckpt.write_bytes(b"x")
    assert not frontier.fresh(out, ckpt)  # never evaluated (or killed before results.json was written)
    out.mkdir()
    (out / "results.json").write_text("{}")
    os.utime(ckpt, (1, 1))
    assert frontier.fresh(out, ckpt)
    os.utime(ckpt, None)  # trained again after the evaluation
    os.utime(out / "results.json", (1, 1))
    assert not frontier.fresh(out, ckpt)


def test_train_commands_resume_from_the_run_folder():
    for run in frontier.RUNS:
        cmd = frontier.train_cmd(run)
        assert "--resume" in cmd and cmd[cmd.index("--out") + 1] == str(frontier.OUT / run.name)
