"""Stored samples read by row range: an array in memory, a ``.npy`` file (read with positioned reads,
so streaming it leaves no file pages in the process), a directory of shards with a JSON manifest
(:func:`write_shards`), or a column of a Hugging Face dataset. :mod:`aekit.training.sources` streams them.
"""

from __future__ import annotations

import json
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
FORMAT = "aekit-shards-1"
TAKE_BYTES = 8 * 2**20  # Rows.take reads at most this much stored data at once


def bf16() -> np.dtype:
    """NumPy's bfloat16 (``ml_dtypes``; activations are often stored in it, safetensors "BF16"), imported on first
    use: 0.6 s that a command without bfloat16 data does not pay."""
    import ml_dtypes

    return np.dtype(ml_dtypes.bfloat16)


def is_bf16(dtype: np.dtype) -> bool:
    """Whether ``dtype`` is bfloat16, without importing ``ml_dtypes``."""
    return np.dtype(dtype).name == "bfloat16"


class Rows(ABC):
    """Interface: ``n`` stored samples of shape ``sample_shape`` and dtype ``dtype``, read by row range."""

    n: int
    sample_shape: tuple[int, ...]
    dtype: np.dtype
    name: str

    @abstractmethod
    def read(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``[lo, hi)`` as stored, shape (hi − lo, *sample_shape)."""

    @property
    def row_bytes(self) -> int:
        return math.prod(self.sample_shape) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.n

    def chunks(self, rows: int = 0) -> Iterable[tuple[int, np.ndarray]]:
        """``(first_row, float32 rows (n, D))`` over all rows in order, ``rows`` at a time (default: ~8 MB
        stored); ``uint8`` is scaled to [0, 1], NaN or inf is a ``ValueError`` naming the rows."""
        rows = rows or max(1, 8 * 2**20 // self.row_bytes)
        for lo in range(0, self.n, rows):
            x = as_float(self.read(lo, min(lo + rows, self.n)))
            if not np.isfinite(x).all():
                raise ValueError(f"{self.name}, rows {lo}–{min(lo + rows, self.n) - 1}: contains NaN or inf")
            yield lo, x

    def take(self, idx: np.ndarray, span_bytes: int = TAKE_BYTES) -> np.ndarray:
        """The rows ``idx`` (ascending) as stored, (len(idx), D): read in ranges of at most ``span_bytes`` of
        stored rows (or one row), each range's rows selected, so that scattered rows never read what lies
        between them all at once: memory is the result plus one range."""
        idx = np.asarray(idx)
        out = np.empty((len(idx), math.prod(self.sample_shape)), self.dtype)
        span = max(1, span_bytes // self.row_bytes)  # rows one read may cover
        i = 0
        while i < len(idx):
            j = int(np.searchsorted(idx, idx[i] + span, side="left"))  # idx[i:j] lie within one range
            lo, hi = int(idx[i]), int(idx[j - 1]) + 1
            out[i:j] = self.read(lo, hi).reshape(hi - lo, -1)[idx[i:j] - lo]
            i = j
        return out


def moments(data: Any) -> tuple[np.ndarray, np.ndarray]:
    """The features' means and standard deviations (D,), float64, over the rows of ``data`` (an array or
    :class:`Rows`), ~8 MB at a time: no temporary the size of the data.

    Example
    -------
    >>> [m.tolist() for m in moments(np.array([[0.0, 10.0], [2.0, 30.0]]))]
    [[1.0, 20.0], [1.0, 10.0]]
    """
    n, mean, m2 = 0, 0.0, 0.0
    rows = data if isinstance(data, Rows) else ArrayRows(data)
    for _, x in rows.chunks():  # Chan et al.'s pairwise update of (count, mean, squared deviations)
        x = x.astype(np.float64)
        k, mu = len(x), x.mean(0)
        delta = mu - mean
        mean = mean + delta * k / (n + k)
        m2 = m2 + ((x - mu) ** 2).sum(0) + delta**2 * n * k / (n + k)
        n += k
    return np.asarray(mean), np.sqrt(np.asarray(m2) / n)


def as_float(stored: np.ndarray) -> np.ndarray:
    """Stored rows as float32 (n, D): ``uint8`` scaled to [0, 1] (images stored at one byte per value)."""
    x = stored.reshape(len(stored), -1)
    return (x / np.float32(255)).astype(np.float32) if x.dtype == np.uint8 else x.astype(np.float32, copy=False)


class SubsetRows(Rows):
    """The rows ``idx`` of ``rows`` (sorted), e.g. a train or test split of a file, readable like any rows."""

    def __init__(self, rows: Rows, idx: np.ndarray, name: str | None = None) -> None:
        self.rows, self.idx = rows, np.sort(np.asarray(idx))
        self.n, self.sample_shape, self.dtype = len(self.idx), rows.sample_shape, rows.dtype
        self.name = name or rows.name

    def read(self, lo: int, hi: int) -> np.ndarray:
        return self.rows.take(self.idx[lo:hi]).reshape(hi - lo, *self.sample_shape)


class ArrayRows(Rows):
    """Any array-like with ``shape`` and slicing (``np.ndarray``, ``np.memmap``, h5py): rows read by slicing."""

    def __init__(self, a: Any, name: str = "array") -> None:
        if len(getattr(a, "shape", ())) < 2:
            raise ValueError(f"{name} must have shape (samples, features...), got {getattr(a, 'shape', None)}")
        self.a, self.name = a, name
        self.n, self.sample_shape, self.dtype = int(a.shape[0]), tuple(int(s) for s in a.shape[1:]), np.dtype(a.dtype)

    def read(self, lo: int, hi: int) -> np.ndarray:
        return np.array(self.a[lo:hi])  # a copy: a memory map's slice is a read-only view of the file


class NpyRows(Rows):
    """A ``.npy`` file read with positioned reads (``os.pread``): streaming it leaves no file pages in the
    process (a memory map would count every page read), and its header is checked against its size."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        try:
            with open(self.path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read_header(f)
                self.offset = f.tell()
        except FileNotFoundError:
            raise ValueError(f"file not found: {self.path}") from None
        except Exception as e:  # numpy's header parser: any failure means a damaged file
            raise ValueError(f"{self.path} is not a readable .npy file ({type(e).__name__}: {e})") from None
        if fortran or dtype.hasobject or len(shape) < 2:
            raise ValueError(f"{self.path}: streaming needs a C-ordered numeric array (samples, ...), "
                             f"got shape {shape}, dtype {dtype}, fortran order {fortran}")
        self.n, self.sample_shape, self.dtype = int(shape[0]), tuple(int(s) for s in shape[1:]), dtype
        need = self.offset + self.n * self.row_bytes
        if need != self.path.stat().st_size:
            raise ValueError(f"{self.path}: its header claims shape {shape} ({need:,} bytes with the header), "
                             f"but the file holds {self.path.stat().st_size:,} bytes")

    def read(self, lo: int, hi: int) -> np.ndarray:
        out = np.empty((hi - lo, *self.sample_shape), self.dtype)
        buf = memoryview(out.reshape(-1).view(np.uint8))
        with open(self.path, "rb", buffering=0) as f:
            fd, pos, done = f.fileno(), self.offset + lo * self.row_bytes, 0
            while done < len(buf):
                got = os.preadv(fd, [buf[done:]], pos + done)
                if got == 0:
                    raise ValueError(f"{self.path} ended early: rows {lo}–{hi} are not all there")
                done += got
        return out


class ShardRows(Rows):
    """A directory of ``.npy`` or ``.safetensors`` shards and the ``manifest.json`` that :func:`write_shards` writes."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.dir = Path(directory)
        self.name = str(self.dir)
        try:
            meta = json.loads((self.dir / MANIFEST).read_text())
            self.sample_shape = tuple(int(s) for s in meta["sample_shape"])
            self.dtype = bf16() if meta["dtype"] == "bfloat16" else np.dtype(meta["dtype"])
            files = [(str(s["file"]), int(s["rows"])) for s in meta["shards"]]
        except FileNotFoundError:
            raise ValueError(f"{self.dir} has no {MANIFEST}: not a shard directory") from None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{self.dir / MANIFEST} is damaged ({type(e).__name__}: {e})") from None
        self.shards: list[Rows] = []
        for file, rows in files:
            path = self.dir / file
            if path.parent != self.dir:
                raise ValueError(f"{self.dir / MANIFEST} names {file!r}, outside its directory")
            shard = NpyRows(path) if path.suffix == ".npy" else _SafetensorsRows(path)
            if shard.n != rows or shard.sample_shape != self.sample_shape or shard.dtype != self.dtype:
                raise ValueError(f"{path} holds {shard.n} rows of {shard.sample_shape} {shard.dtype}; the manifest "
                                 f"says {rows} rows of {self.sample_shape} {self.dtype}")
            self.shards.append(shard)
        self.starts = np.cumsum([0] + [s.n for s in self.shards])
        self.n = int(self.starts[-1])

    def read(self, lo: int, hi: int) -> np.ndarray:
        return _read_across(self.shards, self.starts, lo, hi)


def _read_across(shards: list[Rows], starts: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Rows ``[lo, hi)`` of ``shards`` read one after another (``starts``: each shard's first row, then the total)."""
    parts = []
    first = int(np.searchsorted(starts, lo, side="right")) - 1
    for i in range(max(first, 0), len(shards)):
        a, b = max(lo, starts[i]), min(hi, starts[i + 1])
        if a >= b:
            break
        parts.append(shards[i].read(int(a - starts[i]), int(b - starts[i])))
    return np.concatenate(parts) if len(parts) != 1 else parts[0]


class FileRows(Rows):
    """``.npy`` (or ``.safetensors`` shard) files named in a list, or by a glob pattern (sorted), read one after
    another as one set of rows; every file must hold rows of the same shape and dtype.

    Example
    -------
    >>> for i in range(3): np.save(f"/tmp/aekit-doc-part{i}.npy", np.full((2, 4), i, np.float32))
    >>> FileRows("/tmp/aekit-doc-part*.npy").read(1, 5)[:, 0].tolist()
    [0.0, 1.0, 1.0, 2.0]
    """

    def __init__(self, files: str | os.PathLike | Iterable[str | os.PathLike]) -> None:
        if isinstance(files, (str, os.PathLike)):
            import glob

            pattern = str(files)
            paths = sorted(Path(p) for p in glob.glob(pattern))
            if not paths:
                raise ValueError(f"no file matches {pattern}")
            self.name = pattern
        else:
            paths = [Path(p) for p in files]
            if not paths:
                raise ValueError("an empty list of files")
            self.name = f"{paths[0]} and {len(paths) - 1} more files" if len(paths) > 1 else str(paths[0])
        self.shards: list[Rows] = []
        for path in paths:
            if path.suffix not in (".npy", ".safetensors"):
                raise ValueError(f"cannot stream {path}: a list of files takes .npy files (or .safetensors shards)")
            shard = NpyRows(path) if path.suffix == ".npy" else _SafetensorsRows(path)
            if self.shards and (shard.sample_shape, shard.dtype) != (self.sample_shape, self.dtype):
                raise ValueError(f"{path} holds rows of {shard.sample_shape} {shard.dtype}, but {paths[0]} holds "
                                 f"{self.sample_shape} {self.dtype}: every file must hold rows of one shape and dtype")
            self.sample_shape, self.dtype = shard.sample_shape, shard.dtype
            self.shards.append(shard)
        self.starts = np.cumsum([0] + [s.n for s in self.shards])
        self.n = int(self.starts[-1])

    def read(self, lo: int, hi: int) -> np.ndarray:
        return _read_across(self.shards, self.starts, lo, hi)


def is_files(x: Any) -> bool:
    """Whether ``x`` names files to read as rows: a glob pattern, or a list or tuple of paths."""
    if isinstance(x, (str, os.PathLike)):
        return any(c in str(x) for c in "*?[") and not Path(x).exists()
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(p, (str, os.PathLike)) for p in x)


_NP_DTYPES = {"F64": np.dtype(np.float64), "F32": np.dtype(np.float32), "F16": np.dtype(np.float16),
              "I64": np.dtype(np.int64), "I32": np.dtype(np.int32), "I16": np.dtype(np.int16),
              "I8": np.dtype(np.int8), "U8": np.dtype(np.uint8), "BOOL": np.dtype(bool)}


class _SafetensorsRows(Rows):
    """The one tensor ``x`` of a safetensors shard, read by row range."""

    def __init__(self, path: Path) -> None:
        from safetensors import SafetensorError, safe_open

        self.path, self.name = path, str(path)
        try:
            with safe_open(path, "np") as f:  # validates the header against the file
                sl = f.get_slice("x")
                shape, kind = tuple(sl.get_shape()), sl.get_dtype()
                dtype = bf16() if kind == "BF16" else _NP_DTYPES[kind]
            with open(path, "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                self.offset = 8 + n + json.loads(fh.read(n))["x"]["data_offsets"][0]
        except (SafetensorError, OSError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path} is not a shard with a tensor 'x' ({type(e).__name__}: {e})") from None
        self.n, self.sample_shape, self.dtype = shape[0], tuple(shape[1:]), dtype

    read = NpyRows.read  # the same positioned read from self.offset


def open_rows(x: Any, column: str | None = None) -> Rows:
    """Rows for ``x``: a ``.npy`` path, a shard directory, a list of ``.npy`` files or a glob pattern naming them
    (:class:`FileRows`), a Hugging Face ``datasets.Dataset`` (with ``column``), or an array-like; ``Rows`` pass
    through."""
    if isinstance(x, Rows):
        return x
    if is_files(x):
        return FileRows(x)
    if isinstance(x, (str, os.PathLike)):
        path = Path(x)
        if path.is_dir():
            return ShardRows(path)
        if path.suffix == ".npy":
            return NpyRows(path)
        raise ValueError(f"cannot stream {path}: give a .npy file or a shard directory (aekit.write_shards)")
    if type(x).__module__.startswith("datasets"):
        if type(x).__name__ == "IterableDataset":
            raise ValueError(f"an IterableDataset has no length and no random access, which training needs: spool it "
                             f"to local shards first, one pass with bounded memory — aekit.spool_rows(dataset, "
                             f"{column or 'COLUMN'!r}, 'a/folder') — and fit on what it returns")
        return HFRows(x, column)
    return ArrayRows(x)


class HFRows(Rows):
    """One column of a Hugging Face ``datasets.Dataset`` (Arrow, memory-mapped), read by row range as NumPy."""

    def __init__(self, dataset: Any, column: str | None) -> None:
        if column is None or column not in dataset.column_names:  # fit(model, dataset) cannot name it: open_rows can
            raise ValueError(f"name the dataset's column to use, e.g. aekit.open_rows(dataset, {dataset.column_names[0]!r}); "
                             f"column {column!r} is not one of {dataset.column_names}")
        self.ds, self.column, self.name = dataset.with_format("numpy", columns=[column]), column, f"dataset[{column}]"
        first = np.asarray(self.ds[0:1][column])
        self.n, self.sample_shape, self.dtype = len(dataset), tuple(first.shape[1:]), first.dtype

    def read(self, lo: int, hi: int) -> np.ndarray:
        return np.asarray(self.ds[lo:hi][self.column])
