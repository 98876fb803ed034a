"""Training progress: a live bar on a terminal, plain lines in a log file (``tail -f`` of a long job shows them)."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

__all__ = ["LineProgress", "progress"]


class LineProgress:
    """The bar's interface, written as lines: one at the end of every epoch, and one at most every ``every``
    seconds inside a long epoch.

    Example
    -------
    >>> import io
    >>> log = io.StringIO()
    >>> with LineProgress(steps_per_epoch=2, stream=log) as p:
    ...     t = p.add_task("train", total=4, completed=0, loss="")
    ...     p.update(t, completed=2, description="epoch 1/2", loss="loss 0.5")
    >>> log.getvalue().split(",")[0]
    'epoch 1/2 done: step 2/4'
    """

    def __init__(self, steps_per_epoch: int, every: float = 30.0, stream: TextIO | None = None) -> None:
        self.steps, self.every, self.stream = steps_per_epoch, every, stream or sys.stderr
        self.total, self.t0 = 0, time.monotonic()
        self.last = self.t0

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def add_task(self, name: str, total: int, completed: int = 0, **fields: Any) -> int:
        self.total, self.t0 = total, time.monotonic()
        self.last = self.t0
        return 0

    def update(self, task: int, completed: int, description: str, loss: str = "") -> None:
        now = time.monotonic()
        done = completed % self.steps == 0
        if done or now - self.last >= self.every:
            self.last = now
            print(f"{description}{' done' if done else ''}: step {completed}/{self.total}, "
                  f"{loss + ', ' if loss else ''}{now - self.t0:.0f} s", file=self.stream, flush=True)


def progress(enabled: bool, steps_per_epoch: int) -> Progress | LineProgress:
    """A rich bar when stderr is a terminal; otherwise :class:`LineProgress` (a bar would print nothing useful)."""
    if enabled and not sys.stderr.isatty():
        return LineProgress(steps_per_epoch)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[loss]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not enabled, transient=False)
