"""Progress output suits where it goes: a bar on a terminal, one line per stage in a log file."""

from __future__ import annotations

import io

from deepshield.progress import interactive, progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_one_line_per_stage_and_no_carriage_returns():
    log = io.StringIO()
    seen = list(progress(range(500), desc="epoch 1/3", stream=log))
    assert seen == list(range(500))
    bar = progress(total=4, desc="preprocess", stream=log, initial=1)
    bar.update(3)
    bar.set_postfix(loss="0.12")
    bar.close()
    bar.close()  # closing twice writes nothing more
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 2
    assert lines[0].startswith("epoch 1/3: 500 its in ") and lines[1].startswith("preprocess: 4 its in ")
    assert lines[1].endswith("loss 0.12")


def test_on_a_terminal_a_live_bar_and_disabled_is_silent():
    tty = _Tty()
    assert interactive(tty) and not interactive(io.StringIO())
    list(progress(range(50), desc="eval", stream=tty, mininterval=0))
    assert "\r" in tty.getvalue()
    quiet = io.StringIO()
    list(progress(range(5), desc="eval", stream=quiet, enabled=False))
    assert quiet.getvalue() == ""


def test_a_long_stage_logs_a_line_each_interval(monkeypatch):
    import deepshield.progress as p

    clock = iter(range(0, 1000, 30))
    monkeypatch.setattr(p.time, "perf_counter", lambda: float(next(clock)))
    log = io.StringIO()
    list(progress(range(5), desc="videos", stream=log))
    lines = log.getvalue().splitlines()
    assert any("/5 its after" in ln and "s left" in ln for ln in lines)  # with an estimate of the rest
    assert lines[-1].startswith("videos: 5 its in ")


def test_training_log_redirected_to_a_file_has_no_bar_updates(tmp_path, capsys):
    from deepshield.cli import main

    assert main(["train", "--smoke", "--out", str(tmp_path / "run")]) == 0
    captured = capsys.readouterr()
    assert "\r" not in captured.err
    # One metrics line per epoch (stdout); no per-batch lines in the log; the validation stage is one line.
    assert "epoch 1:" in captured.out and "epoch 1/1" not in captured.err
