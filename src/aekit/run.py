"""The run directory's single-writer rule (one process writes a run at a time), and the signals that
ask a run to save and stop.

A writer (``fit`` with ``run_dir``, ``aekit train``, ``aekit report``, ``aekit compare``) holds an
OS lock on ``RUN/.aekit.lock`` (``filelock``: ``flock`` on POSIX), so the kernel releases it when
the holder dies, even by ``kill -9``: a stale lock never blocks. The holder's PID and command are
written to ``RUN/.aekit.holder`` so that a refused second writer can say who holds the run.
Readers (evaluate, encode, reconstruct) take no lock.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

LOCK = ".aekit.lock"
HOLDER = ".aekit.holder"


class RunLocked(ValueError):
    """Another live process writes this run directory."""


_HELD: dict[Path, list] = {}  # run directory -> [its FileLock, depth]: the locks this process holds


@contextmanager
def lock(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold the writer's lock of ``run_dir`` (created if missing) for the ``with`` block.

    Re-entrant within a process (the CLI holds it around ``fit``, which takes it too). A second
    process gets :class:`RunLocked` at once, naming the directory and the holder's PID. Left-over
    ``*.tmp`` files of writes that a killed process never finished are removed on entry.

    Example
    -------
    >>> with lock("/tmp/aekit-doc-run") as run:
    ...     (run / "notes.txt").write_text("mine")
    4
    """
    run = Path(run_dir)
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot create the run directory {run}: {e.strerror or e}") from None
    key = run.resolve()
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield run
        finally:
            _HELD[key][1] -= 1
        return
    fl = FileLock(run / LOCK, timeout=0)
    try:
        fl.acquire()
    except Timeout:
        raise RunLocked(f"run directory {run} is in use by {_holder(run)}; wait for it to finish, "
                        "or write to another directory") from None
    except OSError as e:
        raise ValueError(f"cannot lock the run directory {run}: {e.strerror or e}") from None
    _HELD[key] = [fl, 1]
    try:
        (run / HOLDER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                              "command": " ".join(sys.argv[:3])}))
        for tmp in run.glob("*.tmp"):  # an atomic write cut short by a kill: never the real file
            tmp.unlink(missing_ok=True)
        yield run
    finally:
        del _HELD[key]
        fl.release()


def _holder(run: Path) -> str:
    try:
        h = json.loads((run / HOLDER).read_text())
        return f"process {h['pid']} on {h['host']} ({h['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


# SIGUSR1: SLURM's warning before the time limit (``--signal=USR1@120``)
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGINT", "SIGUSR1") if hasattr(signal, n))


@dataclass
class Stop:
    """Set by :func:`stop_on_signals`: the signal that asked the run to stop, or ``None``."""

    signum: int | None = None


@contextmanager
def stop_on_signals() -> Iterator[Stop]:
    """While the block runs, SIGTERM, SIGINT and SIGUSR1 set ``stop.signum`` instead of ending the
    process, so the training loop can save its full state at the next step boundary and stop.

    A second SIGINT (Ctrl-C twice) interrupts at once. Outside the main thread (where Python
    cannot install handlers) nothing changes. The previous handlers come back afterwards.
    """
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: object) -> None:
        if signum == signal.SIGINT and stop.signum is not None:
            raise KeyboardInterrupt
        stop.signum = signum

    old = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)
