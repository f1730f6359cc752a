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
