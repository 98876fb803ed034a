"""The run directory: its files (:class:`Run`), its single-writer rule (one process writes a run at a time),
and the signals that ask a run to save and stop.

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
from typing import Any

from filelock import FileLock, Timeout

from .atomic import append_lines, atomic_write, fsync_dir
from .atomic import write_json as _write_json

LOCK = ".aekit.lock"
HOLDER = ".aekit.holder"
CLEARING = ".aekit.clearing"  # present while --overwrite removes an old run: an interrupted clear is finished


class RunLocked(ValueError):
    """Another live process writes this run directory."""


_HELD: dict[Path, list] = {}  # run directory -> [its FileLock, depth]: the locks this process holds


@contextmanager
def lock(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold the writer's lock of ``run_dir`` (created if missing) for the ``with`` block.

    Re-entrant within a process (the CLI holds it around ``fit``, which takes it too). A second
    process gets :class:`RunLocked` at once, naming the directory and the holder's PID. Left-over
    ``*.tmp`` files of writes that a killed process never finished are removed on entry, and so is what
    an interrupted :meth:`Run.clear` left. A directory with a symbolic link in it is refused (``ValueError``):
    aekit never writes through a link (``RUN/metrics.jsonl -> ~/.bashrc``).

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
    _refuse_links(run)
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
        _refuse_links(run)  # again, now that no other aekit process can add one
        holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv[:3])})
        atomic_write(run / HOLDER, lambda tmp: Path(tmp).write_text(holder))
        for tmp in run.glob("*.tmp"):  # an atomic write cut short by a kill: never the real file
            tmp.unlink(missing_ok=True)
        if (run / CLEARING).exists():
            Run(run).clear()
        yield run
    finally:
        del _HELD[key]
        fl.release()


def _refuse_links(run: Path) -> None:
    links = sorted(p.name for p in run.iterdir() if p.is_symlink())
    if links:
        raise ValueError(f"run directory {run} holds symbolic links ({', '.join(links[:5])}); aekit does not write "
                         "through links: remove them, or write the run to another directory")


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


def read_json(path: Path, missing: str = "file not found", damaged: str = "corrupted file") -> Any:
    """The JSON file ``path``; a ``ValueError`` that names it ("{missing}: path", "{damaged} path: why") when it is
    missing or cannot be read as JSON."""
    if not path.is_file():
        raise ValueError(f"{missing}: {path}")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{damaged} {path}: {type(e).__name__}: {str(e)[:200]}") from None


class Run:
    """A run directory: the one place that names its files, reads them and writes them.

    Only the process that writes the run changes its files (``writes=True``: the holder of :func:`lock`, rank 0
    of a distributed run); on the other ranks every write is a no-op, so no caller asks which rank it is.

    Example
    -------
    >>> run = Run("/tmp/aekit-doc-run2")
    >>> run.write_json(Run.DATA, {"data": "digits"})
    >>> run.data_spec()["data"], run.file(Run.DATA).name
    ('digits', 'data.json')
    """

    MODEL, MODEL_CONFIG, TRAINER = "model.safetensors", "model.json", "trainer.safetensors"
    TRAIN, DATA, CONFIG = "train.json", "data.json", "run.toml"
    METRICS, EVALUATION, REPORT = "metrics.jsonl", "evaluation.json", "report.html"
    # what a run leaves (--overwrite removes it all): its files, the report's figures, tracker logs
    FILES = (MODEL, MODEL_CONFIG, TRAINER, TRAIN, DATA, CONFIG, METRICS, EVALUATION, REPORT, "*.png", "tensorboard")

    def __init__(self, path: str | os.PathLike, writes: bool = True) -> None:
        self.path, self.writes = Path(path), writes

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    @contextmanager
    def writing(self) -> Iterator["Run"]:
        """Hold the run's :func:`lock` while the block writes it (on the writing process; the others take none)."""
        if not self.writes:
            yield self
            return
        with lock(self.path):
            yield self

    def started(self) -> bool:
        """Whether a run was written here (a model, a trainer state or a training config)."""
        return any(self.file(f).exists() for f in (self.MODEL_CONFIG, self.TRAINER, self.TRAIN))

    def clear(self) -> None:
        """Remove what an earlier run left (--overwrite): no old file survives beside the new run's.

        A marker file is written first and removed last, so a clear cut short by a kill is finished the next
        time the directory is locked: an old evaluation never sits beside a new run."""
        import shutil

        if self.writes:
            marker = self.file(CLEARING)
            atomic_write(marker, lambda tmp: Path(tmp).write_text("an --overwrite is removing the old run\n"))
            for pattern in self.FILES:
                for f in self.path.glob(pattern):
                    shutil.rmtree(f) if f.is_dir() and not f.is_symlink() else f.unlink()
            fsync_dir(self.path)
            marker.unlink()

    def read(self, name: str) -> Any:
        """The JSON file ``name``; ``ValueError`` naming it when it is missing or damaged."""
        return read_json(self.file(name))

    def write_json(self, name: str, obj: Any) -> None:
        if self.writes:
            _write_json(self.file(name), obj)

    def write_text(self, name: str, text: str) -> None:
        if self.writes:
            atomic_write(self.file(name), lambda tmp: Path(tmp).write_text(text))

    def train_meta(self) -> dict[str, Any]:
        """``train.json``: the training options (``"train"``) and the model's config (``"model"``)."""
        meta = self.read(self.TRAIN)
        if not isinstance(meta, dict) or not isinstance(meta.get("train"), dict) or "model" not in meta:
            raise ValueError(f"corrupted file {self.file(self.TRAIN)}: expected the keys 'train' and 'model'")
        return meta

    def data_spec(self) -> dict[str, Any]:
        """``data.json``: what the run was trained on (data, data_dir, seed, binarize, stream; for a series the
        window, stride, train_steps and the channels' center and scale), checked."""
        meta = self.read(self.DATA)
        ok = isinstance(meta, dict) and isinstance(meta.get("data"), str)
        if ok:
            seed = meta.get("seed", 0)
            ok = (isinstance(meta.get("data_dir"), (str, type(None))) and type(seed) is int and 0 <= seed < 2**63
                  and isinstance(meta.get("binarize", False), bool) and isinstance(meta.get("stream", False), bool)
                  and (meta.get("window") is None or (type(meta["window"]) is int and type(meta.get("stride")) is int
                                                      and isinstance(meta.get("center"), list)
                                                      and isinstance(meta.get("scale"), list)))
                  and (meta.get("standardize") is None or (isinstance(meta["standardize"], list)
                                                           and len(meta["standardize"]) == 2))
                  and isinstance(meta.get("label_column"), (str, type(None)))
                  and isinstance(meta.get("drop_columns", []), list)
                  and (meta.get("train_steps") is None or type(meta["train_steps"]) is int))
        if not ok:
            raise ValueError(f"corrupted file {self.file(self.DATA)}: expected 'data' (a string), and data_dir, "
                             "seed, binarize and stream of the right types")
        return {"data_dir": None, "seed": 0, "binarize": False, "stream": False, "window": None, "stride": 1,
                "train_steps": None, **meta}

    def evaluation(self) -> dict[str, Any]:
        """``evaluation.json``, or nothing before a run is evaluated."""
        return self.read(self.EVALUATION) if self.file(self.EVALUATION).is_file() else {}

    def metrics(self) -> list[dict[str, Any]]:
        """The per-epoch rows of ``metrics.jsonl`` (none before the first epoch ends; a last line that a kill cut
        short is left out)."""
        path = self.file(self.METRICS)
        text = path.read_text() if path.is_file() else ""
        return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]

    def write_metrics(self, rows: list[dict[str, Any]], append: bool = False) -> None:
        """Write ``rows`` as ``metrics.jsonl``, atomically; ``append``: after those there, flushed to disk (a kill
        can cut only the line being appended, which :meth:`metrics` then leaves out)."""
        if not self.writes:
            return
        lines = [json.dumps(r) + "\n" for r in rows]
        if append:
            append_lines(self.file(self.METRICS), lines)
        else:
            self.write_text(self.METRICS, "".join(lines))
