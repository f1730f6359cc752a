import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from deepshield.models import loading
from deepshield.training import checkpoint as ck


def test_roundtrip_weights_only_with_rng(tmp_path):
    path = tmp_path / "a.pt"
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    state = ck.rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    ck.save_checkpoint(path, model={"w": torch.ones(2)}, epoch=3, rng=state, config={"a": 1})
    loaded = loading.load_checkpoint(path)  # uses torch.load(weights_only=True)
    ck.set_rng_state(loaded["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    assert loaded["epoch"] == 3 and loaded["format"] == loading.FORMAT


def test_killed_mid_save_keeps_last_good(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ck.save_checkpoint(path, epoch=1)
    good = path.read_bytes()

    def dying_save(obj, f):
        Path(f).write_bytes(b"partial bytes of a checkpoint")
        raise KeyboardInterrupt  # the process is stopped in the middle of writing

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(path, epoch=2)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind
    monkeypatch.undo()
    assert loading.load_checkpoint(path)["epoch"] == 1


def test_killed_process_mid_save(tmp_path):
    """A real SIGKILL while a large checkpoint is being written leaves the previous one loadable."""
    import subprocess
    import sys
    import time

    path = tmp_path / "last.pt"
    ck.save_checkpoint(path, epoch=1)
    code = (f"import torch; from deepshield.training.checkpoint import save_checkpoint\n"
            f"save_checkpoint({str(path)!r}, epoch=2, big=torch.zeros(200_000_000, dtype=torch.uint8))")
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    assert loading.load_checkpoint(path)["epoch"] in (1, 2)  # the old one, or the new one if it finished
    for p in tmp_path.iterdir():
        if p.name.endswith(".tmp"):
            os.remove(p)
