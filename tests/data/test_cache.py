"""Memory-mapped crop cache: keys, lazy filling, resume after a crash, torn rows, completion."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from deepshield.data.cache import ImageCache, cache_key

S = 8


def _img(i: int) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 256, size=(3, S, S), dtype=np.uint8)


def _ids(n: int) -> list[str]:
    return [f"/crops/{i}.png\t0\tffpp" for i in range(n)]


def test_key_changes_with_rows_size_and_salt():
    base = cache_key(_ids(3), S)
    assert cache_key(_ids(3), S) == base
    assert cache_key(_ids(4), S) != base
    assert cache_key(_ids(3)[::-1], S) != base
    assert cache_key(_ids(3), S + 1) != base
    assert cache_key(_ids(3), S, salt="other") != base
    changed = _ids(3)
    changed[1] = changed[1].replace("\t0\t", "\t1\t")  # a relabelled row
    assert cache_key(changed, S) != base


def test_rows_fill_lazily_and_a_reopened_cache_resumes(tmp_path):
    cache = ImageCache.open(tmp_path, _ids(4), S)
    assert cache.filled() == 0 and cache.get(0) is None
    calls = []
    row = cache.get_or_load(1, lambda: calls.append(1) or _img(1))
    assert np.array_equal(row, _img(1)) and calls == [1]
    assert np.array_equal(cache.get_or_load(1, lambda: pytest.fail("decoded twice")), _img(1))
    assert not cache.finalize()
    del cache  # "crash": no finalize, no marker
    again = ImageCache.open(tmp_path, _ids(4), S)
    assert again.root.name == cache_key(_ids(4), S) and again.filled() == 1
    assert np.array_equal(again.get(1), _img(1)) and again.get(2) is None
    assert not (again.root / "COMPLETE").exists()


def test_flag_without_matching_pixels_is_not_trusted(tmp_path):
    cache = ImageCache.open(tmp_path, _ids(2), S)
    cache.put(0, _img(0))
    images = np.load(cache.root / "images.npy", mmap_mode="r+")
    images[0, 0, 0, 0] ^= 0xFF  # torn write: flag set, pixels differ
    images.flush()
    fresh = ImageCache.open(tmp_path, _ids(2), S)
    assert fresh.get(0) is None
    assert np.array_equal(fresh.get_or_load(0, lambda: _img(0)), _img(0))


def test_complete_marker_only_when_all_rows_verify(tmp_path):
    cache = ImageCache.open(tmp_path, _ids(3), S)
    for i in range(3):
        cache.put(i, _img(i))
    images = np.load(cache.root / "images.npy", mmap_mode="r+")
    images[2] = 0
    images.flush()
    assert not cache.finalize() and cache.filled() == 2  # the bad row is unflagged for a refill
    cache.put(2, _img(2))
    assert cache.finalize() and (cache.root / "COMPLETE").exists()
    reopened = ImageCache.open(tmp_path, _ids(3), S)
    assert reopened.complete and all(np.array_equal(reopened.get(i), _img(i)) for i in range(3))
    assert np.load(reopened.root / "images.npy", mmap_mode="r").shape == (3, 3, S, S)


def test_pickles_without_its_maps_and_is_never_in_ram(tmp_path):
    cache = ImageCache.open(tmp_path, _ids(2), S)
    cache.put(0, _img(0))
    images = cache._arrays()[0]
    assert isinstance(images, np.memmap)
    clone = pickle.loads(pickle.dumps(cache))
    assert clone._maps is None and np.array_equal(clone.get(0), _img(0))


def test_half_made_folder_with_the_key_is_set_aside(tmp_path):
    root = tmp_path / cache_key(_ids(2), S)
    root.mkdir()
    (root / "images.npy").write_bytes(b"junk")
    cache = ImageCache.open(tmp_path, _ids(2), S)
    assert cache.get(0) is None and cache.filled() == 0
    assert len(list(tmp_path.glob("*.stale-*"))) == 1
