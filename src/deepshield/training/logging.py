"""Run logging: metrics.jsonl (always), TensorBoard scalars (optional), and plain progress lines."""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType

from deepshield.io import write_text_atomic
from deepshield.progress import write


class RunLogger:
    """Appends one JSON line per ``log`` call to ``out/metrics.jsonl`` and mirrors it to TensorBoard."""

    def __init__(self, out: Path, tensorboard: bool = False, resume_epoch: int = 0,
                 enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(out) / "metrics.jsonl"
        self.writer = None
        if enabled:
            self._truncate(resume_epoch)
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(Path(out) / "tensorboard"))

    def _truncate(self, epochs_done: int) -> None:
        """Keep only the lines of epochs a resumed run will not redo (all of them for a fresh run: none)."""
        kept = []
        if epochs_done > 0 and self.path.exists():
            kept = [ln for ln in self.path.read_text().splitlines()
                    if ln.strip() and json.loads(ln).get("epoch", 0) <= epochs_done]
        write_text_atomic(self.path, "".join(ln + "\n" for ln in kept))

    def info(self, message: str) -> None:
        if self.enabled:
            write(message)

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
