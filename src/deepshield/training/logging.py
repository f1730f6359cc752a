"""Run logging: metrics.jsonl (always), TensorBoard scalars (optional), and plain progress lines."""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType

from tqdm.auto import tqdm


class RunLogger:
    """Appends one JSON line per ``log`` call to ``out/metrics.jsonl`` and mirrors it to TensorBoard."""

    def __init__(self, out: Path, tensorboard: bool = False, resume: bool = False, enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(out) / "metrics.jsonl"
        self.writer = None
        if enabled and not resume:
            self.path.write_text("")
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(Path(out) / "tensorboard"))

    def info(self, message: str) -> None:
        if self.enabled:
            tqdm.write(message)

    def log(self, metrics: dict[str, float], step: int) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(metrics) + "\n")
        if self.writer is not None:
            for k, v in metrics.items():
                if k != "epoch":
                    self.writer.add_scalar(k, v, step)
            self.writer.flush()
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k not in ("epoch", "lr"))
        self.info(f"epoch {int(metrics.get('epoch', step))}: {shown}")

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self.writer is not None:
            self.writer.close()
