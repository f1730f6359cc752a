"""Progress display that suits where the output goes.

On a terminal: a tqdm bar. Redirected to a file (CI, nohup, a cluster job): no carriage-return
updates — a bar would write thousands of them into the log — but one line when the stage ends
(``desc: N items in T s``), plus a ``desc: n/total`` line each minute for long stages. Epoch
summaries are logged by the caller as usual.

    >>> for batch in progress(loader, desc="epoch 1/5", enabled=True):
    ...     ...
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def interactive(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default stderr, where tqdm writes) is a terminal."""
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


class _LineProgress:
    """The tqdm subset our loops use, printing one summary line at the end instead of a live bar."""

    def __init__(self, iterable: Iterable[T] | None, desc: str, total: int | None, stream: TextIO,
                 initial: int = 0, every_s: float = 60.0, unit: str = "it", summary: bool = True) -> None:
        self.iterable, self.desc, self.stream, self.summary = iterable, desc, stream, summary
        self.unit, self.units = unit, unit + ("es" if unit.endswith(("ch", "s", "x")) else "s")
        self.total = total if total is not None else _len(iterable)
        self.n, self.initial, self.postfix, self.every_s = initial, initial, "", every_s
        self.start: float | None = time.perf_counter()
        self.last = self.start

    def __iter__(self) -> Iterator[T]:
        assert self.iterable is not None
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        done = self.total is not None and self.n >= self.total  # close() says it
        if self.start is not None and not done and now - self.last >= self.every_s:
            self.last = now
            of = f"/{self.total}" if self.total else ""
            elapsed = now - self.start
            left = ""
            if self.total and self.n > self.initial:  # a linear estimate from this run's own pace
                left = f", about {elapsed / (self.n - self.initial) * (self.total - self.n):.0f} s left"
            print(f"{self.desc}: {self.n}{of} {self.units} after {elapsed:.0f} s{left}", file=self.stream,
                  flush=True)

    def set_postfix(self, **kwargs: Any) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in kwargs.items())

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def close(self) -> None:
        if self.start is None:
            return
        seconds = time.perf_counter() - self.start
        self.start = None
        if self.summary:
            tail = f"; {self.postfix}" if self.postfix else ""
            units = self.unit if self.n == 1 else self.units
            line = f"{self.desc}: {self.n} {units} in {seconds:.1f} s{tail}"
            print(line, file=self.stream, flush=True)

    def __enter__(self) -> _LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Silent(_LineProgress):
    def close(self) -> None:
        pass


def progress(iterable: Iterable[T] | None = None, *, desc: str = "", total: int | None = None,
             enabled: bool = True, stream: TextIO | None = None, unit: str = "it", summary: bool = True,
             **tqdm_kwargs: Any) -> Any:
    """A tqdm bar on a terminal, a one-line summary per stage elsewhere, nothing when not ``enabled``.

    ``summary=False``: off a terminal, only the once-a-minute lines (for stages whose caller logs its
    own summary, such as training epochs)."""
    stream = stream or sys.stderr
    if not enabled:
        return _Silent(iterable, desc, total, stream, every_s=float("inf"))
    if interactive(stream):
        return tqdm(iterable, desc=desc, total=total, file=stream, unit=unit, **tqdm_kwargs)
    return _LineProgress(iterable, desc, total, stream, initial=int(tqdm_kwargs.get("initial", 0)), unit=unit,
                         summary=summary)


def _len(iterable: object) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None


def write(message: str) -> None:
    """Print a line without breaking a live bar (stdout)."""
    tqdm.write(message)


__all__ = ["interactive", "progress", "write"]
