"""``deepshield export``: a checkpoint -> an ONNX or TorchScript file that scores faces without deepshield.

The exported graph is the whole model of the checkpoint plus a softmax: input ``pixels``, float32
``[N, 3, S, S]`` RGB in [0, 1] (ImageNet normalization is inside, as in every deepshield model), output
``probs``, float32 ``[N, 2]`` probabilities of (real, fake); the batch axis is dynamic, the image size
``S`` is the model's. Probabilities rather than logits so a consumer needs no softmax and reads
``probs[:, 1]`` as p(fake), which is what ``deepshield predict`` reports. The file records, as string
metadata (ONNX ``metadata_props``; TorchScript extra file ``deepshield.json``), the image size, class
names, the training config and its ``preprocess`` crop settings (so ``predict --runtime onnx`` crops
faces the way the training crops were made), the calibrated operating ``threshold`` (JSON, null when the
checkpoint has none; see ``deepshield.contracts.threshold``), and the deepshield version.

    >>> result = export_model(ExportConfig(checkpoint="default", format="onnx", out="default.onnx"))
    >>> model = load_exported("default.onnx")
    >>> model(pixels)[:, 1]                         # p(fake) per face; pixels float32 [N, 3, 128, 128]

Every export is checked before it is moved into place (atomically): the file is loaded back with its
runtime and must give the PyTorch model's probabilities to within ``PARITY_TOL`` on a seeded batch.
ONNX goes through ``torch.onnx.export(dynamo=True)`` (the torch.export-based exporter); TorchScript
through ``torch.jit.trace``, which PyTorch deprecates but LibTorch (C++) consumers still load.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deepshield.config import ExportConfig
from deepshield.errors import ConfigError, DataError, MissingFileError
from deepshield.io import atomic_write
from deepshield.registry import Registry
from deepshield.runtime import cpu_threads

if TYPE_CHECKING:  # torch is imported where an export is written or a TorchScript file read: loading an
    import torch  # ONNX file for predict needs none of it
    from torch import nn

EXPORT_FORMAT_TAG = "deepshield-export-v1"
CLASS_NAMES = ("real", "fake")
INPUT_NAME, OUTPUT_NAME = "pixels", "probs"
PARITY_TOL = 1e-4          # max |p_exported - p_torch| an export must meet on the check batch
METADATA_FILE = "deepshield.json"  # TorchScript: the extra file holding the metadata


class ExportError(DataError):
    """A file that is not a deepshield export, or an export that does not reproduce its model."""


# A loaded export: pixels float32 [N, 3, S, S] in [0, 1] -> probabilities float32 [N, 2].
ScoreFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ExportFormat:
    """One file format: its suffix, how to write a module with metadata, and how to load it back."""

    name: str
    suffix: str
    save: Callable[[nn.Module, torch.Tensor, Path, dict[str, str]], None]
    load: Callable[[Path, int], tuple[ScoreFn, dict[str, str]]]   # (path, threads) -> (score, metadata)


EXPORT_FORMATS: Registry[ExportFormat] = Registry("export format")


# --- ONNX ----------------------------------------------------------------------------------------------


def _save_onnx(module: nn.Module, example: torch.Tensor, path: Path, metadata: dict[str, str]) -> None:
    import onnx
    import torch

    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (example,), None, input_names=[INPUT_NAME],
                                    output_names=[OUTPUT_NAME], dynamic_shapes={INPUT_NAME: {0: batch}},
                                    dynamo=True, optimize=True, verbose=False)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, metadata)
    proto.doc_string = f"deepshield {metadata['backbone']}: {metadata['input']} -> {metadata['output']}"
    onnx.save_model(proto, str(path))  # one file: the weights are far under protobuf's 2 GB limit


def _load_onnx(path: Path, threads: int) -> tuple[ScoreFn, dict[str, str]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: no "removing initializer" chatter
    # no busy-waiting after a run: it bought no speed here and takes CPU from the face detector
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/... types
        reason = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
        raise ExportError(f"{path} is not a readable ONNX model ({reason}); export it again with "
                          "'deepshield export'") from None
    input_name = session.get_inputs()[0].name

    def score(pixels: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: np.ascontiguousarray(pixels, dtype=np.float32)})[0]

    return score, dict(session.get_modelmeta().custom_metadata_map)


EXPORT_FORMATS.add("onnx", ExportFormat("onnx", ".onnx", _save_onnx, _load_onnx))


# --- TorchScript ---------------------------------------------------------------------------------------


def _save_torchscript(module: nn.Module, example: torch.Tensor, path: Path, metadata: dict[str, str]) -> None:
    import torch

    with warnings.catch_warnings():  # torch.jit is deprecated upstream; it still is what LibTorch loads
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={METADATA_FILE: json.dumps(metadata)})


def _load_torchscript(path: Path, threads: int) -> tuple[ScoreFn, dict[str, str]]:
    import torch

    extra = {METADATA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra).eval()
    except Exception as e:  # RuntimeError for anything torch.jit cannot read
        raise ExportError(f"{path} is not a readable TorchScript model ({type(e).__name__}); "
                          "export it again with 'deepshield export --format torchscript'") from None

    def score(pixels: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))).numpy()

    return score, json.loads(extra[METADATA_FILE] or "{}")


# ultralytics' suffix for TorchScript; ".pt" would be mistaken for a checkpoint, ".ts" for a video
EXPORT_FORMATS.add("torchscript", ExportFormat("torchscript", ".torchscript", _save_torchscript,
                                               _load_torchscript))


# --- metadata, export, load ----------------------------------------------------------------------------


def export_metadata(raw_config: dict, image_size: int, source: str) -> dict[str, str]:
    """String metadata of an export: what goes in and out, the crop settings, the training config."""
    from deepshield import __version__

    shape = f"[N, 3, {image_size}, {image_size}]"
    return {
        "format": EXPORT_FORMAT_TAG,
        "deepshield_version": __version__,
        "backbone": str(raw_config.get("backbone")),
        "image_size": str(image_size),
        "class_names": json.dumps(list(CLASS_NAMES)),
        "input": f"{INPUT_NAME}: float32 {shape} RGB in [0, 1] (normalization is inside the model)",
        "output": f"{OUTPUT_NAME}: float32 [N, 2] softmax probabilities of (real, fake)",
        "preprocess": json.dumps(raw_config.get("preprocess")),
        "threshold": json.dumps(raw_config.get("threshold")),
        "train_config": json.dumps(raw_config),
        "source": source,
    }


@dataclass
class ExportedModel:
    """An exported file loaded with its runtime: ``model(pixels) -> probs`` (float32 numpy arrays)."""

    path: Path
    format: str
    metadata: dict[str, str]
    score: ScoreFn

    @property
    def image_size(self) -> int:
        return int(self.metadata["image_size"])

    @property
    def threshold(self) -> dict | None:
        """The calibrated threshold record (``Threshold.to_json()``), None when the checkpoint had none."""
        return json.loads(self.metadata.get("threshold") or "null")

    @property
    def train_config(self) -> dict:
        """The checkpoint's raw training config (with ``preprocess``), as ``load_model_and_config`` gives."""
        return json.loads(self.metadata["train_config"])

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return self.score(pixels)


def format_of(path: str | Path) -> ExportFormat:
    """The export format of a file, by its suffix (``.onnx``, ``.torchscript``)."""
    name = str(path)
    for fmt in EXPORT_FORMATS.values():
        if name.endswith(fmt.suffix):
            return fmt
    raise ConfigError(f"{path}: not an exported model; expected a file ending in "
                      + " or ".join(f.suffix for f in EXPORT_FORMATS.values()))


def load_exported(path: str | Path, threads: int | None = None) -> ExportedModel:
    """Load an exported file with its runtime (CPU, ``threads`` intra-op threads; default: the cores)."""
    path = Path(path)
    fmt = format_of(path)
    if not path.is_file():
        raise MissingFileError(f"{path} not found; write it with 'deepshield export --out {path}'")
    score, metadata = fmt.load(path, threads or cpu_threads())
    if metadata.get("format") != EXPORT_FORMAT_TAG:
        raise ExportError(f"{path} was not written by 'deepshield export' (no {EXPORT_FORMAT_TAG} "
                          "metadata); export the checkpoint with 'deepshield export'")
    return ExportedModel(path, fmt.name, metadata, score)


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote, and how far the file's probabilities are from PyTorch's."""

    path: Path
    format: str
    metadata: dict[str, str]
    max_abs_diff: float

    def summary(self) -> str:
        size_mb = self.path.stat().st_size / 1e6
        return (f"wrote {self.path} ({self.format}, {size_mb:.1f} MB)\n"
                f"  input  {self.metadata['input']}\n  output {self.metadata['output']}\n"
                f"  max |p - p_torch| on the check batch: {self.max_abs_diff:.1e}")


def default_out(checkpoint: str, fmt: ExportFormat) -> Path:
    """``runs/x/best.pt`` -> ``runs/x/best.onnx``; a bundled name -> ``./default.onnx``."""
    from deepshield.models.zoo import BUNDLED

    if checkpoint in BUNDLED:
        return Path(checkpoint + fmt.suffix)
    return Path(checkpoint).with_suffix(fmt.suffix)


def export_model(cfg: ExportConfig) -> ExportResult:
    """Export ``cfg.checkpoint`` to ``cfg.out`` (default: beside it) and check the file reproduces it."""
    import torch

    from deepshield.models.loading import Probabilities, load_model_and_config

    fmt = EXPORT_FORMATS.lookup(cfg.format)
    out = Path(cfg.out) if cfg.out else default_out(cfg.checkpoint, fmt)
    if not str(out).endswith(fmt.suffix):
        raise ConfigError(f"--out {out}: a {fmt.name} file must end in {fmt.suffix} (e.g. "
                          f"{out.with_suffix(fmt.suffix)})")
    model, train_cfg, raw = load_model_and_config(cfg.checkpoint, torch.device("cpu"))
    module = Probabilities(model).eval()
    size = train_cfg.image_size
    metadata = export_metadata(raw, size, source=str(cfg.checkpoint))
    diff: list[float] = []

    def write(tmp: Path) -> None:
        fmt.save(module, _pixels(2, size, seed=0), tmp, metadata)
        # another batch size than the example's, so the dynamic batch axis is exercised
        diff.append(parity(module, tmp, fmt, _pixels(3, size, seed=1), name=str(out)))

    atomic_write(out, write)
    return ExportResult(out, fmt.name, metadata, diff[0])


def parity(module: nn.Module, path: Path, fmt: ExportFormat, pixels: torch.Tensor,
           name: str | None = None) -> float:
    """Max |probability difference| between ``module`` and the exported file at ``path`` on ``pixels``;
    raises ExportError above ``PARITY_TOL`` (naming the file ``name``, default ``path``)."""
    import torch

    path_name = name or str(path)
    score, _ = fmt.load(path, torch.get_num_threads())
    with torch.inference_mode():
        expected = module(pixels).numpy()
    got = score(pixels.numpy())
    if got.shape != expected.shape:
        raise ExportError(f"{path_name}: output shape {got.shape} != PyTorch's {expected.shape}")
    diff = float(np.abs(got - expected).max())
    if not diff <= PARITY_TOL:
        raise ExportError(f"{path_name}: probabilities differ from PyTorch's by {diff:.2e} > {PARITY_TOL:g}; "
                          "the export is wrong (please report it with the checkpoint's backbone)")
    return diff


def _pixels(n: int, size: int, seed: int) -> torch.Tensor:
    import torch

    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


# --- exported on the fly, for predict --runtime onnx ---------------------------------------------------


def cache_dir() -> Path:
    """``$DEEPSHIELD_CACHE`` or ``$XDG_CACHE_HOME/deepshield`` (default ``~/.cache/deepshield``)."""
    if os.environ.get("DEEPSHIELD_CACHE"):
        return Path(os.environ["DEEPSHIELD_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "deepshield"


def exported_file(checkpoint: str, format: str) -> Path:
    """``checkpoint`` itself when it is already a ``format`` file, else its export in :func:`cache_dir`
    (made on first use; keyed by the checkpoint's bytes and the deepshield version)."""
    from deepshield import __version__
    from deepshield.models.zoo import bundled_export, resolve_checkpoint

    fmt = EXPORT_FORMATS.lookup(format)
    if str(checkpoint).endswith(fmt.suffix):
        return Path(checkpoint)
    other = next((f for f in EXPORT_FORMATS.values() if str(checkpoint).endswith(f.suffix)), None)
    if other is not None:
        raise ConfigError(f"{checkpoint} is a {other.name} file; use --runtime {other.name}")
    shipped = bundled_export(checkpoint, fmt.suffix)
    if shipped is not None:  # exported when the model was bundled: no export on a user's first call
        return shipped
    source = resolve_checkpoint(checkpoint)
    if not source.is_file():
        raise MissingFileError(f"checkpoint {source} not found; pass a run's best.pt, 'default', or an "
                               f"exported {fmt.suffix} file")
    digest = hashlib.sha256(source.read_bytes() + __version__.encode()).hexdigest()[:16]
    path = cache_dir() / "export" / f"{source.stem}-{digest}{fmt.suffix}"
    if not path.is_file():
        export_model(ExportConfig(checkpoint=str(checkpoint), format=fmt.name, out=str(path)))
    return path


__all__ = ["CLASS_NAMES", "EXPORT_FORMATS", "PARITY_TOL", "ExportError", "ExportFormat", "ExportResult",
           "ExportedModel", "cache_dir", "export_metadata", "export_model", "exported_file",
           "format_of", "load_exported", "parity"]
