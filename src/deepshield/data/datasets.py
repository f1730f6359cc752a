"""Datasets by spec string: ``synthetic``, ``catalog:PATH[:split]`` or ``mix:MIXTURE.yaml`` (several
catalogs by weight, :mod:`deepshield.data.mixture`); a registry maps the scheme.

``catalog:PATH`` reads a ``deepshield preprocess`` catalog.csv (see :mod:`deepshield.data.catalog`):

- training (:func:`build_datasets`) uses the ``train`` split for training and ``val`` for validation.
  When the catalog lacks either, every non-``test`` row is split by video with a seeded holdout
  (:func:`holdout_videos`): a real video and the fakes made from it stay on the same side, so neither
  the frames of one video nor one identity are in both. ``catalog:PATH:SPLIT`` trains on SPLIT with
  such a holdout for validation.
- evaluation (:func:`build_eval_dataset`) uses the given split (every row when none is given), no
  augmentation, all frames (or an evenly spaced ``frames_per_video``).

Items of :class:`FaceCatalogDataset` are ``(image float [3, S, S] in [0, 1], label int, video_id str)``
with video ids ``"<dataset>/<video_id>"`` (:func:`deepshield.data.catalog.video_key`, unique across
datasets).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from deepshield.config import TrainConfig
from deepshield.contracts.crops import CropSettings
from deepshield.data.cache import ImageCache
from deepshield.data.catalog import SPLITS, CatalogRow, read_catalog
from deepshield.data.folds import VAL_FRACTION, holdout_videos
from deepshield.data.synthetic import SyntheticDeepfakeDataset
from deepshield.data.transforms import (
    Transform,
    build_augment,
    build_eval_transform,
    seeded,
    single_thread,
)
from deepshield.errors import ConfigError, DataError, MissingFileError
from deepshield.registry import Registry

DatasetPair = tuple[Dataset, Dataset]
RESIZE = "pil-bilinear"  # part of the cache key: a change of resizing must not reuse old caches


def read_crop(path: str | Path, image_size: int) -> np.ndarray:
    """A crop file as uint8 [3, S, S] RGB, resized (bilinear, antialiased) when it is not S x S."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        if img.size != (image_size, image_size):
            img = img.resize((image_size, image_size), Image.BILINEAR)
        return np.ascontiguousarray(np.asarray(img).transpose(2, 0, 1))


def _as_set(value: str | Collection[str] | None) -> set[str] | None:
    return None if value is None else {value} if isinstance(value, str) else set(value)


class FaceCatalogDataset(Dataset):
    """Face crops of a catalog.csv, a fresh seeded sample of frames per video each epoch.

    Filters (a value or a collection; None = all): ``split``, ``datasets``, ``methods``,
    ``compressions``, ``videos`` (``"<dataset>/<video_id>"`` keys). ``frames_per_video``: frames
    drawn per video and epoch (None = all), ``sampling`` ``"random"`` (a new draw per
    :meth:`set_epoch`) or ``"uniform"`` (evenly spaced, fixed). ``balance``: draw extra frames of the
    minority class (videos chosen round-robin) until both classes have as many items as the larger.
    ``transform`` maps uint8 [3, S, S] to float (default: no augmentation); it runs under a seed from
    (``seed``, epoch, position), so a run is repeatable. ``cache_dir``: keep decoded crops in a
    memory-mapped :class:`~deepshield.data.cache.ImageCache` there (None = decode every time).
    """

    def __init__(
        self,
        catalog: str | Path,
        *,
        split: str | Collection[str] | None = None,
        datasets: str | Collection[str] | None = None,
        methods: str | Collection[str] | None = None,
        compressions: str | Collection[str] | None = None,
        videos: Collection[str] | None = None,
        image_size: int = 224,
        frames_per_video: int | None = None,
        sampling: str = "random",
        balance: bool = False,
        transform: Transform | None = None,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        rows: Sequence[CatalogRow] | None = None,
    ) -> None:
        if sampling not in ("random", "uniform"):
            raise ValueError(f"sampling must be 'random' or 'uniform', got {sampling!r}")
        if frames_per_video is not None and frames_per_video < 1:
            raise ConfigError(f"frames_per_video must be >= 1 (or None for all), got {frames_per_video}")
        self.catalog = Path(catalog)
        wanted = {"split": _as_set(split), "dataset": _as_set(datasets), "method": _as_set(methods),
                  "compression": _as_set(compressions)}
        keep_videos = _as_set(videos)
        self.rows = [r for r in (rows if rows is not None else read_catalog(self.catalog))
                     if all(v is None or getattr(r, k) in v for k, v in wanted.items())
                     and (keep_videos is None or r.video_key in keep_videos)]
        if not self.rows:
            shown = ", ".join(f"{k}={sorted(v)}" for k, v in wanted.items() if v is not None) or "no filter"
            raise DataError(f"{self.catalog}: no rows match ({shown}); check the split/dataset/method names "
                             f"(splits are {'/'.join(SPLITS)})")
        self.image_size, self.frames_per_video, self.sampling = image_size, frames_per_video, sampling
        self.balance, self.seed = balance, seed
        self.transform = transform or build_eval_transform()
        self.augmented = transform is not None
        self.paths = [self.catalog.parent / r.path for r in self.rows]
        self.labels = np.array([r.label for r in self.rows], dtype=np.int64)
        self.row_videos = [r.video_key for r in self.rows]
        by_video: dict[str, list[int]] = defaultdict(list)
        for i, key in enumerate(self.row_videos):
            by_video[key].append(i)
        self.videos = {k: sorted(ix, key=lambda i: (self.rows[i].frame_index, self.rows[i].face_index))
                       for k, ix in sorted(by_video.items())}
        self.video_labels = {k: int(self.labels[ix[0]]) for k, ix in self.videos.items()}
        # As the catalog does: "original" for a real video, "unknown" for a fake of unknown method.
        self.video_methods = {k: self.rows[ix[0]].method or ("original", "unknown")[self.video_labels[k]]
                              for k, ix in self.videos.items()}
        self.cache = None
        if cache_dir is not None:
            root = self.catalog.parent.resolve()  # one resolve, not one per row
            identities = [f"{root / r.path}\t{','.join(r.to_csv())}" for r in self.rows]
            self.cache = ImageCache.open(cache_dir, identities, image_size, salt=RESIZE)
        self.epoch = 0
        self.index = self._sample(0)

    # ------------------------------------------------------------------------------------ sampling

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's frames (call before building the epoch's DataLoader); finalize the cache."""
        self.epoch = epoch
        self.index = self._sample(epoch)
        if self.cache is not None:
            self.cache.finalize()

    def _pick(self, rows: list[int], rng: np.random.Generator) -> list[int]:
        k = self.frames_per_video
        if k is None or len(rows) <= k:
            return list(rows)
        if self.sampling == "uniform":
            return [rows[int(round(j))] for j in np.linspace(0, len(rows) - 1, k)]
        return [rows[j] for j in np.sort(rng.choice(len(rows), size=k, replace=False))]

    def _sample(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch])
        index = [i for rows in self.videos.values() for i in self._pick(rows, rng)]
        if self.balance:
            index += self._extra_for_balance(index, rng)
        return np.asarray(index, dtype=np.int64)

    def _extra_for_balance(self, index: list[int], rng: np.random.Generator) -> list[int]:
        counts = np.bincount(self.labels[index], minlength=2)
        extra: list[int] = []
        for label in (0, 1):
            need = int(counts.max() - counts[label])
            vids = [k for k, v in self.video_labels.items() if v == label]
            if need <= 0 or not vids:
                continue
            order = rng.permutation(len(vids))
            for j in range(need):
                rows = self.videos[vids[order[j % len(vids)]]]
                extra.append(rows[int(rng.integers(len(rows)))])
        return extra

    # ------------------------------------------------------------------------------------- items

    def __len__(self) -> int:
        return len(self.index)

    def load_uint8(self, row: int) -> torch.Tensor:
        """Row ``row`` of the catalog as uint8 [3, S, S] (from the cache when it holds it)."""
        def decode() -> np.ndarray:
            try:
                return read_crop(self.paths[row], self.image_size)
            except FileNotFoundError:
                raise MissingFileError(f"{self.catalog}: crop {self.rows[row].path} not found next to the "
                                        "catalog; rerun deepshield preprocess or fix the catalog") from None

        image = decode() if self.cache is None else self.cache.get_or_load(row, decode)
        return torch.from_numpy(image)

    def finish(self, image: torch.Tensor, i: int) -> torch.Tensor:
        """uint8 [3, S, S] -> the float item at position ``i``: the transform, seeded by (seed, epoch, i)."""
        if self.augmented:
            item_seed = int(np.random.SeedSequence([self.seed, self.epoch, i]).generate_state(1)[0])
            return seeded(self.transform, image, item_seed)
        with single_thread():
            return self.transform(image)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, str]:
        row = int(self.index[i])
        return self.finish(self.load_uint8(row), i), int(self.labels[row]), self.row_videos[row]


def subset_videos(rows: Sequence[CatalogRow], n: int, seed: int = 0) -> list[CatalogRow]:
    """The rows of at most ``n`` videos, drawn seeded and evenly across labels (whole videos)."""
    keys = sorted({r.video_key for r in rows})
    if len(keys) <= n:
        return list(rows)
    label = {r.video_key: r.label for r in rows}
    rng = np.random.default_rng(seed)
    by_label = [[k for k in keys if label[k] == c] for c in (0, 1)]
    share = [round(n * len(ks) / len(keys)) for ks in by_label]
    keep = {k for ks, m in zip(by_label, share, strict=True) for k in rng.permutation(ks)[:m]}
    return [r for r in rows if r.video_key in keep]


def catalog_preprocess_settings(spec: str) -> CropSettings | None:
    """The crop settings of a ``catalog:PATH`` dataset, from ``preprocess.json`` beside its catalog.

    These travel with a trained model (``config["preprocess"]``) so ``deepshield predict`` crops faces
    as the training crops were cut. None for synthetic data or a catalog without ``preprocess.json``.
    """
    import json

    scheme, arg = parse_spec(spec)
    if scheme == "mix":
        from deepshield.data.mixture import mixture_crop_settings

        return mixture_crop_settings(arg or "", catalog_preprocess_settings)
    if scheme != "catalog":
        return None
    path, _ = parse_catalog_arg(arg)
    settings = path.parent / "preprocess.json"
    if not settings.is_file():
        return None
    try:
        crop = CropSettings.from_json(json.loads(settings.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{settings}: not valid JSON ({err}); rerun deepshield preprocess") from None
    if crop.layout == "faces":  # one image per face: a video's frame count is not the catalog's
        crop = replace(crop, fps=None, frames_per_video=None)
    return crop


def parse_catalog_arg(arg: str | None) -> tuple[Path, str | None]:
    """``"faces/catalog.csv:test"`` -> (Path("faces/catalog.csv"), "test"); no split -> None."""
    if not arg:
        raise ConfigError("catalog dataset needs a path: --dataset catalog:faces/catalog.csv[:split]")
    path, _, split = arg.rpartition(":")
    if path and split in SPLITS:
        return Path(path), split
    return Path(arg), None


def _catalog(arg: str | None, cfg: TrainConfig) -> DatasetPair:
    path, split = parse_catalog_arg(arg)
    rows = read_catalog(path)
    size, seed = cfg.image_size, cfg.seed
    fpv = cfg.frames_per_video
    cache_dir = None
    if cfg.cache:
        cache_dir = cfg.cache_dir or Path(cfg.out) / "cache"
    has = {r.split for r in rows}
    if split is None and {"train", "val"} <= has:
        train_rows, val_rows = [r for r in rows if r.split == "train"], [r for r in rows if r.split == "val"]
    else:
        pool = [r for r in rows if (r.split == split if split else r.split != "test")]
        if not pool:
            raise DataError(f"{path}: no rows for training (split {split or 'not test'}); "
                             f"the catalog has splits {sorted(has)}")
        val_keys = holdout_videos(pool, VAL_FRACTION, seed)
        train_rows = [r for r in pool if r.video_key not in val_keys]
        val_rows = [r for r in pool if r.video_key in val_keys]
        if not train_rows:
            raise DataError(f"{path}: {len(val_keys)} video(s) cannot be split into train and val; "
                             "add videos or give the catalog train/val splits")
    pseudo = cfg.pseudo_fakes
    ratio = cfg.pseudo_fake_ratio
    if not any(r.label == 1 for r in train_rows) and not pseudo:
        raise ConfigError(f"{path}: no fakes (label 1) to train on; to train from real videos only, add "
                          "--pseudo-fakes sbi (self-blended fakes made from the real crops)")
    reals_only = bool(pseudo) and ratio >= 1
    if reals_only:  # the catalog's fakes are ignored: never loaded, never in validation
        train_rows = [r for r in train_rows if r.label == 0]
        val_rows = [r for r in val_rows if r.label == 0]
    if cfg.max_train:
        train_rows = subset_videos(train_rows, cfg.max_train, seed)
    if cfg.max_val:
        val_rows = subset_videos(val_rows, cfg.max_val, seed)
    common = dict(image_size=size, frames_per_video=fpv, seed=seed, cache_dir=cache_dir)
    balance = cfg.balance and not pseudo
    train = FaceCatalogDataset(path, rows=train_rows, sampling="random", balance=balance,
                               transform=build_augment(cfg.augment, size), **common)
    val = FaceCatalogDataset(path, rows=val_rows, sampling="uniform", **{**common, "seed": seed + 1})
    if pseudo:
        from deepshield.data.pseudo_fakes import with_pseudo_fakes

        sidecar = Path(cache_dir or cfg.out) / "landmarks.npz"
        train, val = with_pseudo_fakes(train, val, method=pseudo, ratio=ratio, sidecar=sidecar, seed=seed,
                                       blend_val=reals_only, show_progress=cfg.progress)
    return train, val


def _synthetic(arg: str | None, cfg: TrainConfig) -> DatasetPair:
    size, seed = cfg.image_size, cfg.seed
    return (SyntheticDeepfakeDataset(cfg.n_train, image_size=size, seed=seed),
            SyntheticDeepfakeDataset(cfg.n_val, image_size=size, seed=seed + 10_000))





def parse_spec(spec: str) -> tuple[str, str | None]:
    """``"catalog:faces/catalog.csv:test"`` -> ("catalog", "faces/catalog.csv:test")."""
    scheme, _, arg = spec.partition(":")
    DATASETS.lookup(scheme)
    return scheme, arg or None


def build_datasets(cfg: TrainConfig) -> DatasetPair:
    """(train, validation) datasets for a training config."""
    scheme, arg = parse_spec(cfg.dataset)
    return DATASETS[scheme].train(arg, cfg)


def _catalog_eval(arg: str | None, image_size: int, frames_per_video: int | None = None,
                  seed: int = 0, max_videos: int | None = None, **_: Any) -> Dataset:
    path, split = parse_catalog_arg(arg)
    rows = read_catalog(path)
    picked = [r for r in rows if split is None or r.split == split]
    if not picked:
        have = sorted({r.split for r in rows})
        raise DataError(f"{path}: no rows in split {split!r}; the catalog has splits {have}")
    if max_videos:
        picked = subset_videos(picked, max_videos, seed)
    return FaceCatalogDataset(path, rows=picked, image_size=image_size, frames_per_video=frames_per_video,
                              sampling="uniform", seed=seed)


def build_eval_dataset(spec: str, image_size: int, n: int = 1000, seed: int = 0,
                       frames_per_video: int | None = None, max_videos: int | None = None) -> Dataset:
    """The dataset an evaluation runs on: synthetic test images (a seed unseen in training) or a catalog
    split (no augmentation; all frames, or ``frames_per_video`` evenly spaced ones; at most
    ``max_videos`` videos, a seeded subset balanced across labels)."""
    scheme, arg = parse_spec(spec)
    return DATASETS[scheme].test(arg, image_size, n=n, frames_per_video=frames_per_video, seed=seed,
                                 max_videos=max_videos)


def _synthetic_eval(arg: str | None, image_size: int, *, n: int, seed: int, **_: Any) -> Dataset:
    return SyntheticDeepfakeDataset(n, image_size=image_size, seed=seed + 20_000)  # a seed unseen in training


@dataclass(frozen=True)
class DatasetKind:
    """One ``--dataset SCHEME[:ARG]`` family: its (train, val) pair for training and its test set."""

    train: Callable[[str | None, TrainConfig], DatasetPair]
    test: Callable[..., Dataset]


DATASETS: Registry[DatasetKind] = Registry(
    "dataset", hint="e.g. --dataset synthetic, catalog:faces/catalog.csv or mix:recipes/mixtures/NAME.yaml")
DATASETS.add("synthetic", DatasetKind(_synthetic, _synthetic_eval))
DATASETS.add("catalog", DatasetKind(_catalog, _catalog_eval))


def _mix(arg: str | None, cfg: TrainConfig) -> DatasetPair:
    from deepshield.data.mixture import build_mixture

    return build_mixture(arg, cfg, _catalog)


def _mix_eval(arg: str | None, image_size: int, **kwargs: Any) -> Dataset:
    from deepshield.data.mixture import mixture_test

    return mixture_test(arg, lambda spec: _catalog_eval(spec, image_size, **kwargs))


DATASETS.add("mix", DatasetKind(_mix, _mix_eval))
