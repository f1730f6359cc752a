"""``deepshield evaluate`` and ``deepshield report`` end to end: files, self-contained HTML, loud failures."""

import json
import math
import re
import shutil

import numpy as np
import pytest
import torch

from deepshield.cli import main
from deepshield.config import SweepSpec, TrainConfig
from deepshield.contracts.rows import CorruptionRow, Metrics, SweepRow
from deepshield.evaluation.evaluate import save_gallery
from deepshield.evaluation.report import as_read, find_results, load_runs, write_json, write_report
from deepshield.evaluation.results import EvalResult, Samples, SweepResult
from deepshield.evaluation.robust import sweep
from deepshield.training.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def evaluated(trained_cnn, tmp_path_factory):
    """A checkpoint of the trained SmallCNN, evaluated through the CLI; returns (run dir, stdout)."""
    run = tmp_path_factory.mktemp("runs") / "standard"
    save_checkpoint(run / "best.pt", model=trained_cnn.state_dict(),
                    config=TrainConfig(image_size=32).to_dict())
    return run


def _evaluate(run, capsys):
    rc = main(["evaluate", "--checkpoint", str(run / "best.pt"), "--attacks", "fgsm,pgd",
               "--eps", "2/255,8/255", "--steps", "5", "--n-test", "64", "--square-queries", "15",
               "--sanity-n", "32", "--gallery", "4", "--quiet"])
    return rc, capsys.readouterr()


def test_evaluate_writes_results_and_reports(evaluated, capsys):
    rc, out = _evaluate(evaluated, capsys)
    assert rc == 0, out.err
    eval_dir = evaluated / "eval"
    for name in ("results.json", "report.md", "report.html", "robust_accuracy.png", "roc.png", "gallery.png"):
        assert (eval_dir / name).is_file(), name
    res = json.loads((eval_dir / "results.json").read_text())
    assert res["run"] == "standard" and res["dataset"] == "synthetic" and res["n"] == 64
    assert {r["key"] for r in res["robust"]} == {"fgsm@2/255", "fgsm@8/255", "pgd@2/255", "pgd@8/255"}
    assert len(res["samples"]["scores"]["pgd@8/255"]) == 64 and res["gallery"]["file"] == "gallery.png"
    assert len(res["checks"]) >= 6 and all(c["passed"] for c in res["checks"]), res["checks"]
    assert "standard on synthetic, 64 images: clean acc" in out.out
    assert re.search(r"^  pgd 8/255 +acc \d\.\d{3}  AUC", out.out, re.M)
    # Per direction: accuracy on fakes (evasion), on reals (framing), TPR at 1% FPR, for every row.
    assert re.search(r"^  pgd 8/255 .*  fakes \d\.\d{3}  reals \d\.\d{3}  TPR@1%FPR (\d\.\d{3}|—)$",
                     out.out, re.M)
    assert all("tpr_at_1fpr" in r and "threshold_1fpr" in r for r in [res["clean"], *res["robust"]])
    assert "PASS  pgd: accuracy does not rise" in out.out
    assert "report:" in out.out
    html = (eval_dir / "report.html").read_text()
    srcs = re.findall(r'src="([^"]*)"', html)
    assert len(srcs) >= 3 and all(s.startswith("data:image/png;base64,") for s in srcs)  # self-contained
    assert "All" in html and "sanity checks passed" in html and "FAILED" not in html
    md = (eval_dir / "report.md").read_text()
    assert "![robust accuracy vs eps](robust_accuracy.png)" in md and "WARNING" not in md
    assert "*standard by direction* — fakes / reals / TPR@1%FPR" in md
    # The default evaluation re-encodes (jpeg:75, h264:23) and scores natural corruptions: their tables.
    assert "*standard: After re-encoding*" in md and "| jpeg:75 | pgd | 8/255 |" in md
    assert "*standard: Natural corruptions*" in md and "| blur2 |" in md and "Transfer" not in md
    assert "<h4>After re-encoding</h4>" in html and "<h4>Natural corruptions</h4>" in html
    assert "reals" in html and "TPR@1%FPR" in html


def test_report_compares_runs_and_flags_failures(evaluated, tmp_path, capsys):
    if not (evaluated / "eval" / "results.json").exists():
        _evaluate(evaluated, capsys)
    other = tmp_path / "masked"
    shutil.copytree(evaluated / "eval", other / "eval")
    res = json.loads((other / "eval" / "results.json").read_text())
    res["run"] = "masked"
    res["checks"].append({"id": "huge_eps", "name": "pgd at huge eps drives accuracy to ~0", "passed": False,
                          "detail": "accuracy 0.900"})
    (other / "eval" / "results.json").write_text(json.dumps(res))
    out_dir = tmp_path / "report"
    rc = main(["report", str(evaluated), str(other), "--out", str(out_dir)])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "FAIL  masked: pgd at huge eps" in printed and "SANITY CHECK(S) FAILED" in printed
    html = (out_dir / "report.html").read_text()
    assert "standard" in html and "masked" in html and "1 sanity check(s) FAILED" in html
    assert html.count("data:image/png;base64,") >= 4  # accuracy, ROC and both galleries
    md = (out_dir / "report.md").read_text()
    assert "**WARNING: 1 sanity check(s) FAILED.**" in md and "gallery_masked.png" in md
    assert (out_dir / "gallery_standard.png").is_file()


def test_threat_tables_render_only_what_a_run_has():
    from deepshield.evaluation.html_report import render_html
    from deepshield.evaluation.tables import console_summary, detail_markdown

    def m(acc: float) -> Metrics:
        return Metrics(n=8, acc=acc, auc=0.9, ap=0.9, eer=0.1, fake_acc=0.25, real_acc=0.75, tpr_at_1fpr=0.5)

    sweep = SweepResult(clean=m(0.875), robust=[SweepRow("pgd", 4 / 255, "linf", "pgd@4/255", m(0.5))],
                        worst_case=[], spec=SweepSpec(), n=8, seconds=1.0,
                        samples=Samples([], None, None, {}))
    res = EvalResult(sweep=sweep)
    plain = detail_markdown("r", res)
    assert "| pgd | 0.250 / 0.750 / 0.500 |" in plain and "(clean: 0.250 / 0.750 / 0.500)" in plain
    assert not any(t in plain for t in ("After re-encoding", "Transfer", "Natural corruptions"))
    sweep.transfer = [SweepRow("pgd", 4 / 255, "linf", "transfer:pgd@4/255", m(0.625),
                               transfer_from="surrogate", success=0.3)]
    sweep.corruptions = [CorruptionRow("jpeg30", m(0.75))]
    md = detail_markdown("r", res)
    assert "| surrogate | pgd | 4/255 | 0.625 | 0.900 | 0.250 | 0.750 | 0.500 | 0.300 |" in md
    assert "| none (clean) | 0.875 |" in md and "| jpeg30 | 0.750 |" in md and "After re-encoding" not in md
    console = console_summary("r", res)
    assert "surrogate pgd 4/255  acc 0.625" in console and "jpeg30        acc 0.750" in console
    page = render_html({"r": res}, {}, "t", "now")
    assert "<h4>Transfer</h4>" in page and "<td class='l'>surrogate</td>" in page
    assert "<h4>After re-encoding</h4>" not in page


def test_report_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no results.json" in capsys.readouterr().err
    bad = tmp_path / "bad" / "results.json"
    bad.parent.mkdir()
    bad.write_text("{}")
    with pytest.raises(ValueError, match="not a 'deepshield evaluate' results.json"):
        load_runs([bad])


def test_find_results_layouts(tmp_path):
    for sub in ("eval_celebdf", "eval_dfdc"):
        (tmp_path / "run" / sub).mkdir(parents=True)
        (tmp_path / "run" / sub / "results.json").write_text("{}")
    assert [p.parent.name for p in find_results(tmp_path / "run")] == ["eval_celebdf", "eval_dfdc"]
    (tmp_path / "run" / "eval").mkdir()
    (tmp_path / "run" / "eval" / "results.json").write_text("{}")
    assert find_results(tmp_path / "run") == [tmp_path / "run" / "eval" / "results.json"]


def test_write_json_is_strict_json(tmp_path):
    path = write_json({"a": float("nan"), "b": np.float32(0.5), "c": np.arange(3),
                       "d": [float("inf"), np.int64(2)]}, tmp_path / "x.json")
    assert json.loads(path.read_text()) == {"a": None, "b": 0.5, "c": [0, 1, 2], "d": [None, 2]}


def test_report_with_methods_and_videos(trained_cnn, video_frames, tmp_path):
    spec = SweepSpec(attacks=("fgsm", "pgd"), eps=(4 / 255,), steps=3, gallery=2)
    swept, images = sweep(trained_cnn, video_frames, spec, torch.device("cpu"))
    save_gallery(swept, images, tmp_path / "gallery_x.png")
    result = EvalResult(sweep=swept, dataset="catalog:faces/catalog.csv:test", checkpoint="runs/x/best.pt",
                        out=tmp_path)
    write_report({"x": result}, tmp_path)
    assert (tmp_path / "per_method.png").is_file() and (tmp_path / "gallery_x.png").is_file()
    md = (tmp_path / "report.md").read_text()
    assert "| x | Deepfakes |" in md and "| x | video (mean) |" in md and "| x | video (top50) |" in md
    html = (tmp_path / "report.html").read_text()
    assert "Per manipulation method" in html and "Frame vs video level" in html
    assert not math.isnan(swept.clean.by_method["FaceSwap"].auc)


def test_a_report_renders_what_results_json_reads_back(evaluated, capsys):
    """``write_report`` renders a fresh result as ``deepshield report`` reads its results.json: NaN metrics
    (one class only) become None in both, so the two reports are the same."""
    if not (evaluated / "eval" / "results.json").exists():
        _evaluate(evaluated, capsys)
    [res] = load_runs([evaluated]).values()
    assert as_read(res) == res
    nan = float("nan")
    one_class = Metrics(n=4, acc=1.0, auc=nan, ap=nan, eer=nan, real_acc=nan, fake_acc=1.0, tpr_at_1fpr=nan,
                        threshold_1fpr=nan)
    res.sweep.clean = one_class
    read = as_read(res).sweep.clean
    assert read.auc is None and read.fake_acc == 1.0 and read.n == 4
