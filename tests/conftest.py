"""Shared fixtures: offline mode, few threads, a SmallCNN trained briefly on synthetic data."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

# Under `pytest -n N` each worker gets its share of the cores: oversubscribed intra-op threads spin
# against each other and made the suite 2x slower than running it in one process.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // _WORKERS)))

DEV_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dev"


@pytest.fixture(scope="session")
def dev_data() -> Path:
    """../shared/data/dev (real FF++ videos); tests that need it skip with a reason when it is absent."""
    if not (DEV_DATA / "ffpp").is_dir():
        pytest.skip(f"real dev data not found at {DEV_DATA}/ffpp (CI provides ../shared/data/dev)")
    return DEV_DATA


@pytest.fixture()
def one_torch_thread():
    """MTCNN's many small ops run slower with 2 intra-op threads on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def dev_dfdc() -> Path:
    """../shared/data/dev/dfdc_faces (24,000 real DFDC face crops); skips when absent."""
    if not (DEV_DATA / "dfdc_faces" / "metadata.csv").is_file():
        pytest.skip(f"DFDC dev faces not found at {DEV_DATA}/dfdc_faces (CI provides ../shared/data/dev)")
    return DEV_DATA / "dfdc_faces"


@pytest.fixture(scope="session")
def dfdc_pairs_csv(dev_dfdc, tmp_path_factory) -> Path:
    """A metadata CSV (outside the data folder) listing 6 DFDC groups: each real crop and its fake."""
    import csv

    with (dev_dfdc / "metadata.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    reals = {r["video"]: r for r in rows if r["label"] == "REAL"}
    fakes = [r for r in rows if r["label"] == "FAKE" and r["original"] in reals][:6]
    path = tmp_path_factory.mktemp("dfdc_meta") / "pairs.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for fake in fakes:
            writer.writerows([reals[fake["original"]], fake])
    return path


@pytest.fixture(scope="session")
def synthetic_small():
    from deepshield.data.synthetic import SyntheticDeepfakeDataset

    return SyntheticDeepfakeDataset(256, image_size=32, seed=123)


@pytest.fixture(scope="session")
def trained_cnn():
    """A SmallCNN trained for a few seconds on 32 px synthetic images (≈100% clean accuracy)."""
    from torch.utils.data import DataLoader

    from deepshield.data.synthetic import SyntheticDeepfakeDataset
    from deepshield.models import build_model

    torch.manual_seed(0)
    ds = SyntheticDeepfakeDataset(1024, image_size=32, seed=0)
    model = build_model("small_cnn")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(4):
        for x, y in DataLoader(ds, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def checkpoint(trained_cnn, tmp_path_factory):
    """``trained_cnn`` saved as a run's best.pt (32 px, no crop settings recorded); a test module may define
    its own ``checkpoint`` (e.g. with crop settings)."""
    from deepshield.config import TrainConfig
    from deepshield.training.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("run") / "best.pt"
    save_checkpoint(path, model=trained_cnn.state_dict(), config=TrainConfig(image_size=32).to_dict())
    return path
