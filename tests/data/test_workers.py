from __future__ import annotations

import pytest

from deepshield.data.workers import WorkerStartError, run_in_workers
from deepshield.errors import DeepshieldError


@pytest.mark.slow
def test_a_crashing_worker_costs_only_its_own_item():
    # Builtins as work and initializer, so the spawned workers import nothing heavy.
    items = ["1 + 1", "2 * 2", "__import__('os')._exit(1)", "4 * 2", "5 * 2"]
    results = dict(run_in_workers(items, eval, 2, int, ()))
    assert results == {"1 + 1": 2, "2 * 2": 4, "__import__('os')._exit(1)": None, "4 * 2": 8, "5 * 2": 10}
    with pytest.raises(WorkerStartError, match="die on start-up") as err:  # not blamed on the items
        list(run_in_workers(items, eval, 2, int, ("not a number",)))
    assert isinstance(err.value, DeepshieldError)  # names the fix (--workers 1): the CLI prints it


def test_no_items_start_no_workers():
    assert list(run_in_workers([], eval, 2, int, ())) == []
