"""Dataset folder layouts -> one record per video (path, label, ids, method, split), one parser each.

    >>> scan = scan_layout("ffpp", "/data/FaceForensics++", compression="c23", splits="/data/ffpp_splits")
    >>> first = scan.records[0]
    >>> first.video_id, first.label, first.split    # ('youtube/c23/000', 0, 'train')

Layouts (``LAYOUTS``):

* ``ffpp``: ``original_sequences/{youtube,actors}/{raw,c23,c40}/videos/*.mp4`` (real) and
  ``manipulated_sequences/<method>/<comp>/videos/<target>_<source>.mp4`` (fake). ``splits`` is a folder
  with the official ``train.json``/``val.json``/``test.json`` (lists of [target, source] id pairs);
  videos in no list (actors, DeepFakeDetection, or no ``splits``) get split ``unassigned``.
* ``celebdf``: ``Celeb-real/``, ``YouTube-real/`` (real), ``Celeb-synthesis/`` (fake);
  ``List_of_testing_videos.txt`` marks the test split, the rest is train (unassigned without the list).
* ``dfdc``: ``*/metadata.json`` (label REAL/FAKE, original, split) beside the videos.
* ``folder``: ``real/**`` and ``fake/**``, videos or still images; the first folder under ``fake/``
  names the method.
* ``faces``: pre-cropped face *images* (e.g. the DFDC face crops): ``real/**`` and ``fake/**``, or any
  files listed in a metadata CSV (``metadata``, default ``ROOT/metadata.csv`` when present) with columns
  ``file`` (relative to ROOT) and ``label`` (REAL/FAKE or 0/1), optional ``video`` (the id of the source
  video) and ``original`` (for a fake: the real video it was made from, which groups a person's real
  video and its fakes). Preprocessing re-detects the face and frames it like a video crop
  (see :mod:`deepshield.data.faces`).

Layouts without an official split leave ``split`` as ``unassigned``; preprocessing then assigns
train/val/test by group (:func:`deepshield.data.splits.assign_split`).

Files a layout lists but cannot use (missing, unlisted, duplicated) come back as ``problems``, which
preprocess writes to errors.csv. A root that does not look like the layout raises ``LayoutError``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deepshield.data.catalog import group_key, video_key
from deepshield.data.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from deepshield.errors import DataError
from deepshield.registry import Registry

FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter", "DeepFakeDetection")
FFPP_COMPRESSIONS = ("raw", "c23", "c40")
CELEBDF_FOLDERS = {"Celeb-real": 0, "YouTube-real": 0, "Celeb-synthesis": 1}
DFDC_SPLITS = {"train": "train", "val": "val", "validation": "val", "test": "test"}


class LayoutError(DataError):
    """The root folder does not match the layout, or a layout option is wrong; one line naming the fix."""


@dataclass(frozen=True)
class VideoRecord:
    """One source video (or still image) and what the layout says about it."""

    path: Path
    label: int  # 0 = real, 1 = fake
    dataset: str
    video_id: str  # unique within the dataset, path-like: "Deepfakes/c23/519_515"
    method: str  # manipulation, "original" for real videos, "unknown" if the layout cannot tell
    compression: str  # "raw"/"c23"/"c40" for FF++, "" where unknown
    split: str  # train / val / test / unassigned
    source_video: str  # video_id of the real video it derives from (itself if real); "" if unknown

    @property
    def key(self) -> str:
        """The video's key, ``dataset/video_id`` (:func:`deepshield.data.catalog.video_key`)."""
        return video_key(self.dataset, self.video_id)

    @property
    def group_key(self) -> str:
        """Its group's key: the source real video (a person), else itself (:func:`~.catalog.group_key`)."""
        return group_key(self.dataset, self.video_id, self.source_video)


@dataclass(frozen=True)
class Problem:
    """A file the layout lists but cannot use; ``key`` (dataset/video_id) decides its shard."""

    key: str
    path: Path
    reason: str


@dataclass
class LayoutScan:
    """What a layout parser found: usable records and unusable files."""

    records: list[VideoRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    _keys: set[str] = field(default_factory=set, repr=False)

    def add(self, record: VideoRecord) -> None:
        """Add a record, or a problem if its video_id is already taken."""
        if record.key in self._keys:
            self.problems.append(Problem(record.key, record.path, f"duplicate video id {record.video_id!r}"))
        else:
            self._keys.add(record.key)
            self.records.append(record)


def scan_layout(
    layout: str,
    root: str | Path,
    *,
    compression: str | None = None,
    splits: str | Path | None = None,
    metadata: str | Path | None = None,
) -> LayoutScan:
    """Records of every video under ``root`` in ``layout``, sorted by video_id; see the module docstring."""
    scan_fn = LAYOUTS.lookup(layout)
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise LayoutError(f"{root}: no such folder")
    if layout != "ffpp" and (compression is not None or splits is not None):
        raise LayoutError(f"--compression and --splits apply to --layout ffpp only, not {layout}")
    if layout != "faces" and metadata is not None:
        raise LayoutError(f"--metadata applies to --layout faces only, not {layout}")
    options = {"metadata": metadata} if layout == "faces" else {}
    scan = scan_fn(root, compression=compression, splits=splits, **options)
    scan.records.sort(key=lambda r: r.key)
    scan.problems.sort(key=lambda p: (p.key, str(p.path)))
    return scan


# --- FaceForensics++ -------------------------------------------------------------------------------


def load_ffpp_splits(splits_dir: str | Path) -> dict[frozenset[str], str]:
    """The official FF++ split files -> {frozenset({target, source}): split}."""
    splits_dir = Path(splits_dir)
    pairs: dict[frozenset[str], str] = {}
    for split in ("train", "val", "test"):
        path = splits_dir / f"{split}.json"
        if not path.is_file():
            raise LayoutError(
                f"{path}: not found; --splits needs the official FF++ train.json, val.json, test.json"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise LayoutError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(data, list):
            raise LayoutError(f"{path}: expected a list of [target, source] id pairs")
        for i, pair in enumerate(data):
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
                raise LayoutError(
                    f'{path}: entry {i} is {pair!r}, expected a pair of id strings like ["000", "003"]'
                )
            ids = frozenset(pair)
            if pairs.get(ids, split) != split:
                raise LayoutError(
                    f"{path}: pair {pair} is also in {pairs[ids]}.json; each pair belongs to one split"
                )
            pairs[ids] = split
    return pairs


def scan_ffpp(root: Path, *, compression: str | None, splits: str | Path | None) -> LayoutScan:
    if not (root / "original_sequences").is_dir() and not (root / "manipulated_sequences").is_dir():
        raise LayoutError(
            f"{root}: not an FF++ folder; expected original_sequences/{{youtube,actors}}/<comp>/videos/*.mp4 "
            f"and/or manipulated_sequences/<method>/<comp>/videos/*.mp4 (method: {', '.join(FFPP_METHODS)})"
        )
    if compression is not None and compression not in FFPP_COMPRESSIONS:
        raise LayoutError(f"--compression {compression!r}: choose from {', '.join(FFPP_COMPRESSIONS)}")
    pairs = load_ffpp_splits(splits) if splits is not None else {}
    split_of_id = {i: split for ids, split in pairs.items() for i in ids}
    scan, found = LayoutScan(), set()
    for kind in ("original_sequences", "manipulated_sequences"):
        for group_dir in _subdirs(root / kind):
            for comp_dir in _subdirs(group_dir):
                found.add(comp_dir.name)
                if compression is not None and comp_dir.name != compression:
                    continue
                for path in sorted((comp_dir / "videos").glob("*.mp4")):
                    scan.add(_ffpp_record(path, kind, group_dir.name, comp_dir.name, pairs, split_of_id))
    if not scan.records:
        wanted = f" with compression {compression}" if compression else ""
        raise LayoutError(
            f"{root}: no FF++ videos{wanted} under <kind>/<group>/<comp>/videos/*.mp4 "
            f"(compressions found: {', '.join(sorted(found)) or 'none'})"
        )
    return scan


def _ffpp_record(
    path: Path,
    kind: str,
    group: str,
    comp: str,
    pairs: dict[frozenset[str], str],
    split_of_id: dict[str, str],
) -> VideoRecord:
    stem = path.stem
    video_id = f"{group}/{comp}/{stem}"
    if kind == "original_sequences":
        split = split_of_id.get(stem, "unassigned") if group == "youtube" else "unassigned"
        return VideoRecord(path, 0, "ffpp", video_id, "original", comp, split, video_id)
    if group == "DeepFakeDetection":  # <target>_<source>__<scene>__<hash>.mp4, made from actors videos
        parts = stem.split("__")
        source = f"actors/{comp}/{parts[0].split('_')[0]}__{parts[1]}" if len(parts) >= 2 else ""
        return VideoRecord(path, 1, "ffpp", video_id, group, comp, "unassigned", source)
    ids = stem.split("_")
    split = pairs.get(frozenset(ids), "unassigned") if len(ids) == 2 else "unassigned"
    source = f"youtube/{comp}/{ids[0]}" if len(ids) == 2 else ""
    return VideoRecord(path, 1, "ffpp", video_id, group, comp, split, source)


# --- Celeb-DF --------------------------------------------------------------------------------------


def scan_celebdf(root: Path, **_: object) -> LayoutScan:
    if not any((root / name).is_dir() for name in CELEBDF_FOLDERS):
        raise LayoutError(
            f"{root}: not a Celeb-DF folder; expected Celeb-real/, YouTube-real/ and "
            "Celeb-synthesis/ with .mp4 videos, and List_of_testing_videos.txt"
        )
    test_list = root / "List_of_testing_videos.txt"
    tests: set[str] | None = None
    scan = LayoutScan()
    if test_list.is_file():
        tests = set()
        for n, line in enumerate(test_list.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or parts[0] not in ("0", "1"):
                raise LayoutError(f"{test_list} line {n}: {line!r} is not '<0|1> <folder>/<video>.mp4'")
            tests.add(parts[1])
            if not (root / parts[1]).is_file():
                scan.problems.append(
                    Problem(
                        video_key("celebdf", Path(parts[1]).with_suffix("").as_posix()),
                        root / parts[1],
                        "listed in List_of_testing_videos.txt but missing",
                    )
                )
    for folder, label in CELEBDF_FOLDERS.items():
        for path in sorted((root / folder).glob("*.mp4")):
            rel = f"{folder}/{path.name}"
            split = "unassigned" if tests is None else ("test" if rel in tests else "train")
            video_id = f"{folder}/{path.stem}"
            if label == 0:
                scan.add(VideoRecord(path, 0, "celebdf", video_id, "original", "", split, video_id))
            else:  # id<target>_id<source>_<clip>: the target's real clip
                ids = path.stem.split("_")
                source = f"Celeb-real/{ids[0]}_{ids[-1]}" if len(ids) == 3 else ""
                scan.add(VideoRecord(path, 1, "celebdf", video_id, folder, "", split, source))
    return scan


# --- DFDC ----------------------------------------------------------------------------------------


def scan_dfdc(root: Path, **_: object) -> LayoutScan:
    metas = sorted(root.glob("*/metadata.json")) + (
        [root / "metadata.json"] if (root / "metadata.json").is_file() else []
    )
    if not metas:
        raise LayoutError(
            f"{root}: not a DFDC folder; expected <part>/metadata.json beside that part's .mp4 "
            "videos (e.g. dfdc_train_part_0/metadata.json)"
        )
    scan = LayoutScan()
    for meta in metas:
        try:
            entries = json.loads(meta.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise LayoutError(f"{meta}: not valid JSON ({err})") from None
        if not isinstance(entries, dict):
            raise LayoutError(f'{meta}: expected an object {{"<video>.mp4": {{"label": ...}}}}')
        for name, info in sorted(entries.items()):
            path, key = meta.parent / name, video_key("dfdc", Path(name).stem)
            label = (
                {"REAL": 0, "FAKE": 1}.get(str(info.get("label", "")).upper())
                if isinstance(info, dict)
                else None
            )
            if label is None:
                scan.problems.append(Problem(key, path, f"{meta.name}: label is not REAL or FAKE"))
            elif not path.is_file():
                scan.problems.append(Problem(key, path, f"listed in {meta} but missing"))
            else:
                original = info.get("original") or ""
                source = Path(name).stem if label == 0 else Path(original).stem
                split = DFDC_SPLITS.get(str(info.get("split", "")).lower(), "unassigned")
                method = "original" if label == 0 else "unknown"
                scan.add(VideoRecord(path, label, "dfdc", Path(name).stem, method, "", split, source))
        for path in sorted(meta.parent.glob("*.mp4")):
            if path.name not in entries:
                scan.problems.append(Problem(video_key("dfdc", path.stem), path, f"not listed in {meta}"))
    return scan


# --- plain folders -------------------------------------------------------------------------------


def scan_folder(root: Path, **_: object) -> LayoutScan:
    if not (root / "real").is_dir() and not (root / "fake").is_dir():
        raise LayoutError(
            f"{root}: expected real/ and/or fake/ subfolders holding videos or images "
            "(any depth; the first folder under fake/ names the method)"
        )
    dataset = root.name or "folder"
    scan = LayoutScan()
    for label, top in ((0, "real"), (1, "fake")):
        for path in sorted((root / top).rglob("*")):
            rel = path.relative_to(root)
            if not path.is_file() or any(p.startswith(".") for p in rel.parts):
                continue
            if path.suffix.lower() not in VIDEO_EXTENSIONS | IMAGE_EXTENSIONS:
                continue
            video_id = rel.with_suffix("").as_posix()
            method = "original" if label == 0 else (rel.parts[1] if len(rel.parts) > 2 else "unknown")
            source = video_id if label == 0 else ""
            scan.add(VideoRecord(path, label, dataset, video_id, method, "", "unassigned", source))
    return scan


# --- pre-cropped face images ----------------------------------------------------------------------

_LABELS = {"REAL": 0, "FAKE": 1, "0": 0, "1": 1}


def scan_faces(root: Path, *, metadata: str | Path | None = None, **_: object) -> LayoutScan:
    meta = Path(metadata).expanduser() if metadata is not None else root / "metadata.csv"
    if metadata is not None and not meta.is_file():
        raise LayoutError(f"--metadata {meta}: not found; give the CSV with columns "
                          "file,label[,video,original]")
    if not meta.is_file():
        scan = scan_folder(root)
        for record in scan.records:
            if record.path.suffix.lower() in VIDEO_EXTENSIONS:
                raise LayoutError(f"{record.path}: a video in a face-image folder; use --layout folder "
                                  "for videos")
        return scan
    scan, dataset = LayoutScan(), root.name or "faces"
    for line, row in _metadata_rows(meta):
        path = (root / row["file"]).resolve()
        if not path.is_file():
            raise LayoutError(f"{meta} row {line}: file {row['file']!r} does not exist under {root}; "
                              "fix the path (relative to the dataset folder) or drop the row")
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise LayoutError(f"{meta} row {line}: {row['file']!r} is not an image "
                              f"({', '.join(sorted(IMAGE_EXTENSIONS))}); --layout faces takes face images")
        label = _LABELS.get(row["label"].strip().upper())
        if label is None:
            raise LayoutError(f"{meta} row {line}: label {row['label']!r} is not REAL/FAKE or 0/1")
        video_id = Path(row.get("video") or "").stem or Path(row["file"]).with_suffix("").as_posix()
        original = Path(row.get("original") or "").stem
        source = video_id if label == 0 else original
        method = "original" if label == 0 else "unknown"
        scan.add(VideoRecord(path, label, dataset, video_id, method, "", "unassigned", source))
    if not scan.records:
        raise LayoutError(f"{meta}: no rows; list one face image per row (columns file,label)")
    return scan


def _metadata_rows(meta: Path) -> list[tuple[int, dict[str, str]]]:
    try:
        with meta.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in ("file", "label") if c not in (reader.fieldnames or [])]
            if missing:
                raise LayoutError(f"{meta} row 1: missing column {', '.join(missing)}; expected "
                                  "file,label[,video,original] (label REAL/FAKE or 0/1)")
            return [(reader.line_num, dict(row)) for row in reader
                    if any((v or "").strip() for v in row.values())]
    except (UnicodeDecodeError, csv.Error) as err:
        raise LayoutError(f"{meta}: not a readable CSV ({err})") from None


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else []


LAYOUTS: Registry[Callable[..., LayoutScan]] = Registry("layout")
for _name, _scan in (("ffpp", scan_ffpp), ("celebdf", scan_celebdf), ("dfdc", scan_dfdc),
                     ("folder", scan_folder), ("faces", scan_faces)):
    LAYOUTS.add(_name, _scan)

__all__ = [
    "LAYOUTS",
    "LayoutError",
    "LayoutScan",
    "Problem",
    "VideoRecord",
    "load_ffpp_splits",
    "scan_layout",
]
