"""``predict DIR --out results.jsonl``: worker processes, input order, resume after a kill, a torn line."""

import json

import pytest

from deepshield.cli import main
from deepshield.config import PredictConfig
from deepshield.errors import DataError
from deepshield.predict import Predictor
from deepshield.stream import append_line, done_paths, repair, stream_results

VIDEOS = "ffpp/original_sequences/youtube/c23/videos"


@pytest.fixture(scope="module")
def folder(dev_data, tmp_path_factory):
    """Three real FF++ clips, a junk file and an empty one, in one folder."""
    d = tmp_path_factory.mktemp("queue")
    for video in sorted((dev_data / VIDEOS).glob("*.mp4")):
        (d / video.name).symlink_to(video)
    (d / "zz_broken.mp4").write_bytes(b"not a video")
    (d / "zz_empty.mp4").write_bytes(b"")
    return d


def test_worker_processes_give_the_same_results_in_order(folder, checkpoint):
    files = sorted(folder.iterdir())
    predictor = Predictor(PredictConfig(inputs=(str(folder),), checkpoint=str(checkpoint), frames=3))
    alone = [r.to_dict() for r in stream_results(predictor, files, workers=0)]
    pooled = [r.to_dict() for r in stream_results(predictor, files, workers=2)]
    assert [r["path"] for r in pooled] == [str(f) for f in files]
    assert pooled == alone
    assert [r["status"] for r in pooled] == ["ok"] * (len(files) - 2) + ["error", "error"]
    assert all(r["error"] for r in pooled[-2:])  # each unreadable file says why


def test_a_killed_run_resumes_where_it_stopped(folder, checkpoint, tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    files = sorted(folder.iterdir())
    append_line(out, {"path": str(files[0]), "status": "ok", "p_fake": 0.25})
    with out.open("a") as fh:
        fh.write('{"path": "torn')  # killed mid-write
    rc = main(["predict", str(folder), "--checkpoint", str(checkpoint), "--frames", "2", "--out", str(out),
               "--workers", "0"])
    captured = capsys.readouterr()
    assert rc == 2  # the junk file cannot be read; everything else was scored
    assert "already holds 1 result(s)" in captured.err and "zz_broken.mp4" in captured.out
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["path"] for r in lines] == [str(f) for f in files]
    assert lines[0]["p_fake"] == 0.25  # kept, not redone
    rc = main(["predict", str(folder), "--checkpoint", str(checkpoint), "--out", str(out)])
    assert rc == 0 and len(out.read_text().splitlines()) == len(files)  # nothing left to do


def test_results_file_checks(tmp_path):
    out = tmp_path / "r.jsonl"
    assert done_paths(out) == set()
    out.write_text('{"path": "a"}\nnot json\n{"path": "b"}\n')
    with pytest.raises(DataError, match="line 2 is not a deepshield predict result"):
        done_paths(out)
    out.write_text('{"path": "a"}\n{"pa')
    repair(out)
    assert out.read_text() == '{"path": "a"}\n' and done_paths(out) == {"a"}
