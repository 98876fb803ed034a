"""Writing rows: shards with a JSON manifest (:class:`ShardWriter`, :func:`write_shards`), and a Hugging Face
``IterableDataset`` spooled to shards in one pass (:func:`spool_rows`) — every one read back by
:class:`~aekit.store.rows.ShardRows`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import OneOf, check
from .atomic import atomic_write, write_json
from .rows import FORMAT, MANIFEST, ShardRows, is_bf16


class ShardWriter:
    """Writes shards into ``directory`` one call at a time and rewrites ``manifest.json`` after each, so a
    writer that stops leaves a readable prefix; ``keep=k`` continues an existing directory after its first
    ``k`` shards (those after are removed), as a resumed writer does. ``bfloat16`` shards are ``.safetensors``.

    Example
    -------
    >>> w = ShardWriter("/tmp/aekit-doc-writer", meta={"source": "ones"})
    >>> w.write(np.ones((3, 4), np.float32)); w.write(np.ones((2, 4), np.float32))
    >>> ShardRows("/tmp/aekit-doc-writer").n
    5
    """

    def __init__(self, directory: str | os.PathLike, fmt: str = "npy", meta: dict[str, Any] | None = None,
                 keep: int = 0) -> None:
        check(fmt, "fmt", OneOf("npy", "safetensors"))
        self.dir, self.fmt, self.meta = Path(directory), fmt, meta or {}
        self.dir.mkdir(parents=True, exist_ok=True)
        self.shards: list[dict] = []
        self.shape: tuple[int, ...] | None = None
        self.dtype: np.dtype | None = None
        if keep:
            old = ShardRows(self.dir)
            if len(old.shards) < keep:
                raise ValueError(f"{self.dir} holds {len(old.shards)} shards, fewer than the {keep} to keep")
            self.shards = json.loads((self.dir / MANIFEST).read_text())["shards"][:keep]
            self.shape, self.dtype = old.sample_shape, old.dtype
        self._manifest()
        names = {s["file"] for s in self.shards}
        for f in self.dir.glob("shard-*"):
            if f.name not in names:
                f.unlink()  # written after the last shard kept: the resumed writer writes them again

    @property
    def count(self) -> int:
        return sum(s["rows"] for s in self.shards)

    def check(self, rows: np.ndarray) -> np.ndarray:
        """``rows`` if they have the sample shape and dtype of the shards (the first rows set them), else ValueError."""
        if self.shape is None:
            self.shape, self.dtype = rows.shape[1:], rows.dtype
        if rows.shape[1:] != self.shape or rows.dtype != self.dtype:
            raise ValueError(f"every array must be (n, {', '.join(map(str, self.shape))}) {self.dtype}, "
                             f"got {rows.shape} {rows.dtype}")
        return rows

    def write(self, rows: np.ndarray) -> None:
        """One shard of ``rows`` (n, ...), the same sample shape and dtype as every other shard."""
        from safetensors.numpy import save_file
        from safetensors.torch import save_file as save_torch

        rows = self.check(np.ascontiguousarray(rows))
        fmt = "safetensors" if is_bf16(rows.dtype) else self.fmt  # .npy has no bfloat16
        name = f"shard-{len(self.shards):05d}.{fmt}"
        if fmt == "npy":
            atomic_write(self.dir / name, lambda tmp: _save_npy(tmp, rows))
        elif is_bf16(rows.dtype):
            import torch

            t = torch.from_numpy(rows.view(np.int16)).view(torch.bfloat16)
            atomic_write(self.dir / name, lambda tmp: save_torch({"x": t}, tmp))
        else:
            atomic_write(self.dir / name, lambda tmp: save_file({"x": rows}, tmp))
        self.shards.append({"file": name, "rows": len(rows)})
        self._manifest()

    def _manifest(self) -> None:
        write_json(self.dir / MANIFEST, {
            "format": FORMAT, "sample_shape": list(self.shape or ()), "dtype": str(self.dtype or "float32"),
            "count": self.count, "shards": self.shards, "meta": self.meta})


def write_shards(directory: str | os.PathLike, arrays: Iterable[np.ndarray], rows_per_shard: int = 65_536,
                 fmt: str = "npy", meta: dict[str, Any] | None = None) -> Path:
    """Write the rows of ``arrays`` (an iterator of (n, ...) arrays of one shape and dtype) as shards of
    ``rows_per_shard`` rows plus a ``manifest.json``; returns the directory.

    The manifest is rewritten after every shard, so a writer that stops leaves a readable prefix.
    ``meta`` goes into the manifest as ``"meta"`` (e.g. where the rows came from).

    Example
    -------
    >>> d = write_shards("/tmp/aekit-doc-shards", (np.ones((3, 4), np.float32) for _ in range(5)), rows_per_shard=4)
    >>> ShardRows(d).n, len(ShardRows(d).shards)
    (15, 4)
    """
    writer = ShardWriter(directory, fmt, meta)
    pending: list[np.ndarray] = []
    for a in arrays:
        pending.append(writer.check(np.asarray(a)))
        while sum(len(p) for p in pending) >= rows_per_shard:
            rows = np.concatenate(pending)
            writer.write(rows[:rows_per_shard])
            pending = [rows[rows_per_shard:]]
    rest = [p for p in pending if len(p)]
    if rest:
        writer.write(np.concatenate(rest))
    if writer.shape is None:
        raise ValueError("write_shards got no arrays")
    return writer.dir


def _save_npy(path: str, rows: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(rows))


def spool_rows(dataset: Any, column: str, directory: str | os.PathLike, batch_size: int = 4096,
               rows_per_shard: int = 65_536) -> ShardRows:
    """A Hugging Face ``IterableDataset``'s ``column`` written to shards in ``directory`` in one pass, and
    returned as rows that :func:`~aekit.training.loop.fit`, the estimators and ``evaluate`` stream.

    An ``IterableDataset`` (``load_dataset(..., streaming=True)``, a generator) has neither a length nor
    random access, and training needs both: a validation share, shuffle windows, exact resume at a position,
    each process its part of every batch. So its rows come once through memory, ``batch_size`` at a time, into
    ``directory`` (disk: the column's size), and are read back from there. A directory that already holds the
    finished spool of the same ``column`` is read as it is (a resumed run does not pass over the data again).

    Example
    -------
    >>> import datasets
    >>> ds = datasets.IterableDataset.from_generator(lambda: ({"x": [float(i)] * 4} for i in range(10)))
    >>> rows = spool_rows(ds, "x", "/tmp/aekit-doc-spool")  # doctest: +SKIP
    >>> rows.n, rows.sample_shape  # doctest: +SKIP
    (10, (4,))
    """
    directory = Path(directory)
    meta = {"source": "spool_rows", "column": column, "complete": True}
    try:
        done = json.loads((directory / MANIFEST).read_text()).get("meta") == meta
    except (OSError, ValueError):
        done = False
    if done:
        return ShardRows(directory)
    names = getattr(dataset, "column_names", None)
    if names is not None and column not in names:
        raise ValueError(f"column {column!r} is not one of the dataset's columns {names}")
    try:
        batches = dataset.select_columns([column]).with_format("numpy").iter(batch_size=batch_size)
    except (AttributeError, TypeError) as e:
        raise ValueError(f"spool_rows takes a Hugging Face IterableDataset, got {type(dataset).__name__} ({e})"
                         ) from None

    def arrays():
        it = iter(batches)
        while True:
            try:
                b = next(it)
            except StopIteration:
                return
            except KeyError:  # a dataset whose columns are known only once read: select_columns fails here
                b = {}
            if column not in b:
                raise ValueError(f"the dataset's rows have no column {column!r}")
            a = np.asarray(b[column])
            if a.dtype == object:
                raise ValueError(f"column {column!r} holds rows of different lengths or non-numbers: stream a "
                                 "fixed-size numeric column")
            yield a if a.ndim > 1 else a[:, None]

    write_shards(directory, arrays(), rows_per_shard, meta={**meta, "complete": False})
    ShardWriter(directory, keep=len(ShardRows(directory).shards), meta=meta)  # the same shards, marked complete
    return ShardRows(directory)
