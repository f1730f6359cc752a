"""A memory-mapped cache of decoded crops: uint8 [N, 3, S, S] on disk, filled row by row as rows are read.

    >>> cache = ImageCache.open("runs/x/cache", identities, image_size=224)   # one string per row
    >>> img = cache.get_or_load(i, lambda: decode(path_i))                    # uint8 [3, S, S]

Layout: ``<cache_dir>/<key>/`` with ``images.npy`` (the pixels), ``filled.npy`` (uint8 flag per row),
``crc.npy`` (CRC-32 of each filled row), ``meta.json`` and, once every row is filled and verified, a
``COMPLETE`` marker. The key hashes the format version, the image size and every row's identity
string (the dataset passes each row's resolved path and all its catalog fields), so a changed
catalog, subset or size gets a new cache and never reads a stale one.

Safety: the folder is created under a temporary name and renamed into place, so it is never seen
half-made. A row is trusted only when its flag is set *and* its CRC matches (the flag is written
after the pixels and CRC), so a run killed mid-epoch leaves a cache that later runs resume, and a
torn row is decoded again. Only when all rows are filled are they verified once more, flushed to
disk and the ``COMPLETE`` marker written (atomically); from then on reads skip the checks.
Nothing is held in RAM beyond the pages the OS caches; DataLoader workers reopen the maps lazily
and may fill rows concurrently (they write identical bytes).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from deepshield.io import write_text_atomic

FORMAT_VERSION = 1


def cache_key(identities: Sequence[str], image_size: int, salt: str = "") -> str:
    """Hex digest naming the cache of these rows at this size (changes when any row changes)."""
    h = hashlib.sha256(f"deepshield-cache v{FORMAT_VERSION} size={image_size} {salt}\n".encode())
    for s in identities:
        h.update(s.encode("utf-8", "surrogatepass"))
        h.update(b"\n")
    return h.hexdigest()[:24]


class ImageCache:
    """Rows of uint8 [3, S, S] images in a memory-mapped file; see the module docstring."""

    def __init__(self, root: Path, n: int, image_size: int) -> None:
        self.root, self.n, self.image_size = Path(root), n, image_size
        self._maps: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._complete = (self.root / "COMPLETE").exists()

    @classmethod
    def open(cls, cache_dir: str | os.PathLike, identities: Sequence[str], image_size: int,
             salt: str = "") -> ImageCache:
        """The cache of these rows under ``cache_dir`` (created, empty, if absent)."""
        key = cache_key(identities, image_size, salt)
        root = Path(cache_dir) / key
        n = len(identities)
        if root.exists() and not _valid(root, n, image_size, key):
            # Same key but wrong files: set it aside rather than delete (another run may have it open).
            try:
                root.rename(root.with_name(f"{key}.stale-{uuid.uuid4().hex[:8]}"))
            except FileNotFoundError:  # another process set it aside first
                pass
        if not root.exists():
            _create(root, n, image_size, key)
        return cls(root, n, image_size)

    # Memory maps are per process: never pickled into DataLoader workers, reopened on first use.
    def __getstate__(self) -> dict:
        return {**self.__dict__, "_maps": None}

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._maps is None:
            mode = "r" if self._complete else "r+"
            self._maps = tuple(np.load(self.root / f, mmap_mode=mode)
                               for f in ("images.npy", "filled.npy", "crc.npy"))  # type: ignore[assignment]
        return self._maps  # type: ignore[return-value]

    @property
    def complete(self) -> bool:
        return self._complete

    def filled(self) -> int:
        """Number of rows filled so far."""
        return self.n if self._complete else int(np.count_nonzero(self._arrays()[1]))

    def get(self, i: int) -> np.ndarray | None:
        """Row ``i`` as a fresh uint8 [3, S, S] array, or None when it is not (validly) filled."""
        images, filled, crc = self._arrays()
        if self._complete:
            return np.array(images[i])
        if not filled[i]:
            return None
        row = np.array(images[i])
        return row if zlib.crc32(row) == int(crc[i]) else None

    def put(self, i: int, image: np.ndarray) -> None:
        """Store row ``i`` (uint8 [3, S, S]); pixels and CRC first, the flag last."""
        if self._complete:
            return
        images, filled, crc = self._arrays()
        image = np.ascontiguousarray(image, dtype=np.uint8)
        if image.shape != images.shape[1:]:
            raise ValueError(f"cache row must be {images.shape[1:]}, got {image.shape}")
        images[i] = image
        crc[i] = zlib.crc32(image)
        filled[i] = 1

    def get_or_load(self, i: int, load: Callable[[], np.ndarray]) -> np.ndarray:
        """Row ``i`` from the cache, or ``load()`` it and store it."""
        row = self.get(i)
        if row is None:
            row = np.ascontiguousarray(load(), dtype=np.uint8)
            self.put(i, row)
        return row

    def finalize(self) -> bool:
        """If every row is filled: verify all CRCs, flush to disk, write COMPLETE. Returns ``complete``.

        Cheap while rows are missing (one pass over the flags); call it between epochs.
        """
        if self._complete:
            return True
        images, filled, crc = self._arrays()
        if not filled.all():
            return False
        bad = [i for i in range(self.n) if zlib.crc32(np.ascontiguousarray(images[i])) != int(crc[i])]
        if bad:
            filled[bad] = 0
            filled.flush()
            return False
        images.flush()
        crc.flush()
        filled.flush()
        write_text_atomic(self.root / "COMPLETE", "ok\n", fsync=True)
        self._complete = True
        self._maps = None  # reopen read-only
        return True


def _create(root: Path, n: int, image_size: int, key: str) -> None:
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.with_name(f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        # open_memmap writes only the header and the last byte: the files are sparse until filled.
        for name, dtype, shape in (("images.npy", np.uint8, (n, 3, image_size, image_size)),
                                   ("filled.npy", np.uint8, (n,)), ("crc.npy", np.uint32, (n,))):
            arr = np.lib.format.open_memmap(tmp / name, mode="w+", dtype=dtype, shape=shape)
            del arr
        meta = {"version": FORMAT_VERSION, "key": key, "n": n, "image_size": image_size}
        (tmp / "meta.json").write_text(json.dumps(meta))
        os.rename(tmp, root)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not root.exists():  # not a lost race with another process creating the same cache
            raise


def _valid(root: Path, n: int, image_size: int, key: str) -> bool:
    try:
        meta = json.loads((root / "meta.json").read_text())
        images = np.load(root / "images.npy", mmap_mode="r")
        flags = np.load(root / "filled.npy", mmap_mode="r")
        crc = np.load(root / "crc.npy", mmap_mode="r")
    except (OSError, ValueError):
        return False
    return (meta == {"version": FORMAT_VERSION, "key": key, "n": n, "image_size": image_size}
            and images.shape == (n, 3, image_size, image_size) and flags.shape == (n,) and crc.shape == (n,))

