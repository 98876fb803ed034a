"""Writing files so that no reader ever sees a torn one and no link is followed: temp-then-rename with fsync
for whole files, ``O_NOFOLLOW`` + fsync for appends. Torch-free, so that the CLI starts fast.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` and move the result onto ``path`` only if it succeeded.

    The file is flushed to disk before the rename and the directory after it, so neither a kill
    nor a power loss can leave ``path`` empty or half-written: it is the old file or the new one.
    The rename replaces a symbolic link at ``path`` itself; its target is never written.

    Example
    -------
    >>> atomic_write(Path("/tmp/aekit-doc-atomic.txt"), lambda tmp: Path(tmp).write_text("new"))
    >>> Path("/tmp/aekit-doc-atomic.txt").read_text()
    'new'
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would make shared runs unreadable to the group
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fsync_dir(folder: Path) -> None:
    """Flush ``folder``'s entries (a rename, a removal) to disk, where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. a platform without directory descriptors
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2)
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text))


def append_lines(path: Path, lines: Iterable[str]) -> None:
    """Append ``lines`` to ``path`` (created if missing) and flush them to disk; a symbolic link at ``path`` is
    refused (``ValueError``), never followed. A kill can cut the last line short, never an earlier one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError:
        if path.is_symlink():
            raise ValueError(f"{path} is a symbolic link; aekit does not write through links in a run directory"
                             ) from None
        raise
    with os.fdopen(fd, "a") as f:
        f.writelines(lines)
        f.flush()
        os.fsync(f.fileno())
