import pytest

from deepshield.cli import main, parse_eps


def test_parse_eps_fractions():
    assert parse_eps("8/255") == pytest.approx(8 / 255)
    assert parse_eps("0.5") == 0.5


@pytest.mark.parametrize("argv,needle", [
    (["evaluate", "--checkpoint", "missing.pt"], "checkpoint missing.pt not found"),
    (["evaluate", "--checkpoint", "x.pt", "--eps=-1/255"], "is negative"),
    (["evaluate", "--checkpoint", "x.pt", "--eps", "eight"], "is not a number"),
    (["train", "--adv", "magic"], "invalid choice"),
    (["train", "--epochs", "0"], "must be >= 1"),
    (["train", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["frobnicate"], "invalid choice"),
])
def test_user_errors_are_one_line_exit_2(tmp_path, monkeypatch, capsys, argv, needle):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main(argv + (["--out", str(tmp_path / "o")] if argv[0] == "train" else [])))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_train_smoke_then_evaluate(tmp_path, capsys):
    assert main(["train", "--smoke", "--adv", "pgd", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert (tmp_path / "run" / "best.pt").exists()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--n-test", "64",
                 "--attacks", "fgsm,pgd", "--eps", "2/255,8/255", "--steps", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "pgd 8/255" in out and "clean acc" in out
    assert (tmp_path / "run" / "eval" / "results.json").exists()
    assert (tmp_path / "run" / "eval" / "report.md").exists()


def _exit_code(argv) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse's own errors exit from inside parse_args
        return int(e.code)


def _subparsers():
    from deepshield.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices


def test_every_command_has_one_config_and_its_flags_are_its_fields():
    """Flags map one-to-one onto the fields of the command's config (nested SweepSpec flattened)."""
    from deepshield.cli import COMMANDS
    from deepshield.config import config_fields

    parsers = _subparsers()
    assert set(parsers) == set(COMMANDS)
    for name, (_, cls) in COMMANDS.items():
        dests = {a.dest for a in parsers[name]._actions if a.dest != "help"}
        assert dests == config_fields(cls), name


def test_choices_come_from_the_registries():
    from deepshield.attacks import ATTACKS
    from deepshield.data.layouts import LAYOUTS
    from deepshield.data.transforms import AUGMENTS
    from deepshield.training.objectives import OBJECTIVES

    parsers = _subparsers()

    def choices(command, dest):
        return set(next(a for a in parsers[command]._actions if a.dest == dest).choices)

    assert choices("train", "adv") == set(OBJECTIVES)
    assert choices("train", "augment") == set(AUGMENTS)
    assert choices("preprocess", "layout") == set(LAYOUTS)
    help_text = next(a for a in parsers["evaluate"]._actions if a.dest == "attacks").help
    assert all(name in help_text for name in ATTACKS)


@pytest.mark.parametrize("argv,needle", [
    (["--eps", "2"], "did you mean 2/255"),
    (["--eps", "-1/255"], "is negative"),
    (["--eps", "2/255", "--norm", "linf", "--attacks", "pgd,nope"], "unknown attack 'nope'"),
    (["--attack-option", "square.p_init"], "ATTACK.SETTING=VALUE"),
])
def test_eps_and_attack_mistakes_are_named(tmp_path, capsys, argv, needle):
    assert _exit_code(["evaluate", "--checkpoint", str(tmp_path / "x.pt"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_train_refuses_eps_above_one_and_negative(capsys):
    assert _exit_code(["train", "--eps", "4"]) == 2
    assert "write 4/255" in capsys.readouterr().err
    assert _exit_code(["train", "--alpha", "-1e-3"]) == 2
    assert "is negative" in capsys.readouterr().err


def test_l2_budgets_above_one_are_accepted():
    from deepshield.cli import parse_args

    args = parse_args(["evaluate", "--checkpoint", "x.pt", "--norm", "l2", "--eps", "0.5,2"])
    assert args.eps == (0.5, 2.0)


def test_attack_options_reach_the_attack():
    from deepshield.attacks import build_eval_attack
    from deepshield.cli import parse_args
    from deepshield.config import EvalConfig, config_from_mapping

    args = parse_args(["evaluate", "--checkpoint", "x.pt", "--attacks", "square",
                       "--attack-option", "square.p_init=0.5", "--attack-option", "pgd.random_start=false"])
    cfg = config_from_mapping(EvalConfig, vars(args))
    assert build_eval_attack("square", 4 / 255, cfg.sweep).p_init == 0.5
    assert build_eval_attack("pgd", 4 / 255, cfg.sweep).random_start is False


def test_an_internal_bug_is_not_reported_as_a_user_error(monkeypatch):
    """Only DeepshieldError (and path errors) become one-line errors; other exceptions propagate."""
    import deepshield.training.trainer as trainer

    def broken(cfg):
        raise ValueError("an internal numpy-style error")

    monkeypatch.setattr(trainer, "train", broken)
    with pytest.raises(ValueError, match="internal"):
        main(["train", "--smoke"])
