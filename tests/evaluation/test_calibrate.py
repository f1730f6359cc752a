"""``deepshield calibrate``: a tiny checkpoint calibrated on a two-dataset catalog, written as a copy."""

import numpy as np
import pytest
import torch
from PIL import Image

from deepshield.cli import main
from deepshield.contracts.threshold import Threshold
from deepshield.data.catalog import CatalogRow, write_catalog
from deepshield.data.synthetic import SyntheticDeepfakeDataset
from deepshield.models.loading import load_checkpoint


@pytest.fixture(scope="module")
def two_dataset_catalog(tmp_path_factory):
    """Datasets dsa and dsb, 3 real and 3 fake videos each, 2 synthetic 32 px crops per video (test)."""
    root = tmp_path_factory.mktemp("catalog")
    faces = SyntheticDeepfakeDataset(64, image_size=32, seed=3)
    by_label = {label: iter(np.flatnonzero(faces.labels.numpy() == label)) for label in (0, 1)}
    rows = []
    for dataset in ("dsa", "dsb"):
        for label in (0, 1):
            for v in range(3):
                vid = f"{'fake' if label else 'real'}{v}"
                for f in range(2):
                    rel = f"{dataset}/{vid}/{f:04d}_0.png"
                    (root / rel).parent.mkdir(parents=True, exist_ok=True)
                    image = faces.images[next(by_label[label])].permute(1, 2, 0).numpy()
                    Image.fromarray((image * 255).round().astype(np.uint8)).save(root / rel)
                    rows.append(CatalogRow(rel, label, dataset, vid, "fake" if label else "original", "raw",
                                           "test", f, 0.1 * f, 0, 0.99, 1.0, 2.0, 20.0, 22.0, vid))
    write_catalog(root / "catalog.csv", rows)
    return root / "catalog.csv"


def test_calibrate_writes_a_copy_that_records_the_threshold(checkpoint, two_dataset_catalog, tmp_path,
                                                            capsys):
    out = tmp_path / "calibrated.pt"
    argv = ["calibrate", "--checkpoint", str(checkpoint), "--dataset", f"catalog:{two_dataset_catalog}:test",
            "--rule", "fpr5", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    t = Threshold.from_json(load_checkpoint(out)["config"]["threshold"])
    assert (t.rule, t.data, t.n_real, t.n_fake) == ("fpr5", "the test videos of dsa, dsb", 6, 6)
    assert printed.splitlines()[0] == f"threshold {t.describe()}"
    rows = {line.split()[0]: line.split()[1:] for line in printed.splitlines()[2:5]}
    # 5% of 3 reals per dataset: none may be flagged; the model tells these synthetic fakes apart
    assert set(rows) == {"dsa", "dsb", "all"} and rows["all"] == ["6", "6", "0.000", "1.000"]
    source, copy = load_checkpoint(checkpoint), load_checkpoint(out)
    assert "threshold" not in source["config"]  # the input is untouched
    assert all(torch.equal(source["model"][k], copy["model"][k]) for k in source["model"])


def test_calibrate_mistakes_are_one_line(checkpoint, tmp_path, capsys):
    assert main(["calibrate", "--checkpoint", str(checkpoint), "--dataset", "synthetic",
                 "--out", str(tmp_path / "x.onnx")]) == 2
    assert "calibrate writes a checkpoint (.pt)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["calibrate", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "x.pt")])  # no --dataset
    assert "--dataset" in capsys.readouterr().err
