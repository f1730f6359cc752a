"""Cross-dataset evaluation: one checkpoint, several catalogs, in-domain vs cross-domain in one table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepshield.cli import main, parse_args
from deepshield.cli.values import config_of
from deepshield.config import EvalConfig, TrainConfig
from deepshield.data.catalog import CatalogRow, write_catalog
from deepshield.data.datasets import build_eval_dataset
from deepshield.data.synthetic import SyntheticDeepfakeDataset
from deepshield.evaluation.cross_dataset import domain_of
from deepshield.evaluation.evaluate import evaluate
from deepshield.evaluation.metrics import binary_metrics
from deepshield.evaluation.report import load_runs, write_report
from deepshield.evaluation.results import EvalResult
from deepshield.evaluation.tables import console_summary, cross_tables
from deepshield.runtime import fake_probs
from deepshield.training.checkpoint import save_checkpoint

FAST = ["--attacks", "fgsm", "--eps", "4/255", "--no-sanity", "--reencode", "none", "--no-corruptions",
        "--gallery", "0", "--quiet"]


def _catalog(folder: Path, seed: int, methods: tuple[str, ...], n_videos: int = 12, frames: int = 3,
             split: str = "test") -> Path:
    """Synthetic 32 px faces written as a catalog: ``n_videos`` videos of ``frames`` frames, reals and
    fakes alternating, fakes cycling through ``methods``; the first 2 videos in ``train``, the rest
    ``split``."""
    data = SyntheticDeepfakeDataset(4 * n_videos * frames, image_size=32, seed=seed)
    pools = {lab: iter(torch.nonzero(data.labels == lab).squeeze(1).tolist()) for lab in (0, 1)}
    rows = []
    for v in range(n_videos):
        label = v % 2
        method = "original" if label == 0 else methods[(v // 2) % len(methods)]
        for f in range(frames):
            path = f"crops/v{v:02d}/{f}.png"
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            image = data.images[next(pools[label])].permute(1, 2, 0).numpy()
            Image.fromarray((image * 255).round().astype(np.uint8)).save(folder / path)
            rows.append(CatalogRow(path, label, folder.name, f"v{v:02d}", method, "",
                                   "train" if v < 2 else split, f, f / 25, 0, 1.0, 0, 0, 32, 32, f"v{v:02d}"))
    write_catalog(folder / "catalog.csv", rows)
    return folder / "catalog.csv"


@pytest.fixture(scope="module")
def setup(tmp_path_factory, trained_cnn):
    """(home catalog the checkpoint was trained on, another catalog with two fake methods, checkpoint)."""
    tmp = tmp_path_factory.mktemp("cross")
    home = _catalog(tmp / "home", seed=31, methods=("unknown",))
    other = _catalog(tmp / "other", seed=32, methods=("Deepfakes", "FaceSwap"))
    config = TrainConfig(dataset=f"catalog:{home}", backbone="small_cnn", image_size=32).to_dict()
    ckpt = save_checkpoint(tmp / "run" / "best.pt", model=trained_cnn.state_dict(), config=config)
    return home, other, ckpt


def test_domain_is_the_training_catalog_any_split(setup, tmp_path):
    home, other, _ = setup
    trained = f"catalog:{home}"
    assert domain_of(f"catalog:{home}:test", trained) == domain_of(f"catalog:{home}", trained) == "in-domain"
    assert domain_of(f"catalog:{other}:test", trained) == "cross-domain"
    assert domain_of("synthetic", trained) == "cross-domain"
    assert domain_of("synthetic", "synthetic") == "in-domain"
    assert domain_of(f"catalog:{home}", None) == "unknown"
    assert domain_of(f"catalog:{home}", f"catalog:{tmp_path / 'gone' / 'catalog.csv'}") == "unknown"


def test_dataset_flag_takes_several_and_cross_dataset_adds_more():
    args = parse_args(["evaluate", "--checkpoint", "x.pt", "--dataset", "catalog:a.csv:test", "catalog:b.csv",
                       "--cross-dataset", "synthetic"])
    cfg = config_of(EvalConfig, args)
    assert cfg.dataset == "catalog:a.csv:test" and cfg.cross_dataset == ("catalog:b.csv", "synthetic")
    single = config_of(EvalConfig, parse_args(["evaluate", "--checkpoint", "x.pt", "--dataset", "synthetic"]))
    assert single.dataset == "synthetic" and single.cross_dataset == () and not single.cross_sweep


def test_same_dataset_twice_is_a_one_line_error(setup, tmp_path, capsys):
    home, _, ckpt = setup
    rc = main(["evaluate", "--checkpoint", str(ckpt), "--dataset", f"catalog:{home}:test",
               f"catalog:{home}:test", "--out", str(tmp_path / "e"), *FAST])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "give each once" in err and len(err.splitlines()) == 1


def test_two_catalogs_one_table_with_in_and_cross_domain(setup, tmp_path, capsys, trained_cnn):
    home, other, ckpt = setup
    out = tmp_path / "eval"
    rc = main(["evaluate", "--checkpoint", str(ckpt), "--dataset", f"catalog:{home}:test", f"catalog:{other}",
               "--out", str(out), *FAST])
    printed = capsys.readouterr().out
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["dataset"] == f"catalog:{home}:test" and res["domain"] == "in-domain" and res["robust"]
    [entry] = res["cross_dataset"]
    assert entry["dataset"] == f"catalog:{other}" and entry["domain"] == "cross-domain"
    assert entry["robust"] == [] and entry["n"] == 36 and entry["clean"]["video"]["mean"]["n"] == 12
    # The cross-domain numbers are the model's own on that catalog, computed independently here.
    data = build_eval_dataset(f"catalog:{other}", image_size=32)
    x = torch.stack([data[i][0] for i in range(len(data))])
    y = [int(data[i][1]) for i in range(len(data))]
    direct = binary_metrics(y, fake_probs(trained_cnn.eval(), x).numpy())
    assert entry["clean"]["auc"] == pytest.approx(direct["auc"]) and entry["clean"]["acc"] == pytest.approx(
        direct["acc"])
    assert set(entry["clean"]["by_method"]) == {"real", "Deepfakes", "FaceSwap"}

    report = (out / "report.md").read_text()
    section = report.split("## Cross-dataset")[1].split("\n## ")[0]
    assert f"catalog:{home}:test | in-domain" in section and f"catalog:{other} | cross-domain" in section
    assert "clean only" in section and "| Deepfakes |" in section and "| FaceSwap |" in section
    assert f"first dataset (run: catalog:{home}:test)" in section and "scored clean" in section
    assert "Cross-dataset: in-domain vs cross-domain" in (out / "report.html").read_text()
    assert "cross-domain" in printed and "in-domain" in printed  # console summary lists both datasets

    # deepshield report re-renders the same table from results.json alone.
    runs = load_runs([out])
    assert [c.dataset for c in next(iter(runs.values())).cross] == [f"catalog:{other}"]
    assert main(["report", str(out), "--out", str(tmp_path / "re")]) == 0
    again = (tmp_path / "re" / "report.md").read_text().split("## Cross-dataset")[1].split("\n## ")[0]
    assert again == section


def test_single_dataset_results_are_unchanged_and_have_no_cross_section(setup, tmp_path):
    home, _, ckpt = setup
    out = tmp_path / "one"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--dataset", f"catalog:{home}:test",
                 "--out", str(out), *FAST]) == 0
    res = json.loads((out / "results.json").read_text())
    assert "cross_dataset" not in res and res["domain"] == "in-domain"
    assert "Cross-dataset" not in (out / "report.md").read_text()
    assert cross_tables({"one": EvalResult.from_json(res)}) == []
    legacy = {k: v for k, v in res.items() if k != "domain"}  # a results.json from before this feature
    loaded = EvalResult.from_json(legacy)
    assert loaded.cross == [] and loaded.domain == "" and "cross_dataset" not in loaded.to_json()
    assert loaded.to_json() == legacy  # the rest reads back as written


def test_cross_sweep_attacks_the_other_dataset_and_round_trips(setup, tmp_path):
    home, other, ckpt = setup
    cfg = config_of(EvalConfig, parse_args(["evaluate", "--checkpoint", str(ckpt), "--dataset",
                                            f"catalog:{other}", f"catalog:{home}:test", "--cross-sweep",
                                            "--out", str(tmp_path / "sw"), *FAST]))
    result = evaluate(cfg)
    [entry] = result.cross
    assert result.domain == "cross-domain" and entry.domain == "in-domain" and entry.swept
    assert [r.attack for r in entry.sweep.robust] == ["fgsm"] and result.sweep.robust
    again = EvalResult.from_json(json.loads(json.dumps(result.to_json())))
    assert again.cross[0].sweep.robust[0].metrics.acc == pytest.approx(entry.sweep.robust[0].metrics.acc)
    [table, methods] = cross_tables({"r": result})
    rows = {row[1]: row for row in table.rows}
    assert rows[f"catalog:{home}:test"][-1] != "clean only" and rows[f"catalog:{other}"][-2] != "—"
    assert {row[2] for row in methods.rows} == {"Deepfakes", "FaceSwap"}
    assert "attacked too" in (tmp_path / "sw" / "report.md").read_text()
    assert "catalog:" in console_summary("r", result)
    write_report({"r": again}, tmp_path / "rep")  # renders from the parsed result as well
    assert "ΔAUC" in (tmp_path / "rep" / "report.html").read_text()
