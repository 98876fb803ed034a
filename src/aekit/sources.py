"""Where the batches of an epoch come from: data in memory (on the device), or rows streamed from disk.

Rows are stored samples that can be read by range: an in-memory array, a ``.npy`` file (read with
positioned reads, so the file's pages never count against the process), a directory of shards
with a JSON manifest (:func:`write_shards`), or a column of a Hugging Face dataset. A
:class:`Source` turns the training rows into the batches of an epoch for one rank; the training
loop does not know whether they come from memory or from disk.

The epoch's order is a function of the seed and the epoch: the training rows (ascending) are cut
into chunks, the chunks are dealt into shuffle windows of ``buffer`` rows in a seeded order, and each
window's rows are permuted with the trainer's shuffle generator. A window that holds every row is
exactly the in-memory order, so a streamed run and an in-memory run of the same data agree.
"""

from __future__ import annotations

import json
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

MANIFEST = "manifest.json"
FORMAT = "aekit-shards-1"
CHUNK_BYTES = 8 * 2**20  # rows read in one piece (a chunk) hold about this much stored data
BUFFER_BYTES = 256 * 2**20  # default shuffle window: this much stored data


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

    def take(self, idx: np.ndarray) -> np.ndarray:
        """The rows ``idx`` (ascending), read as one contiguous range and selected: (len(idx), D) as stored."""
        if len(idx) == 0:
            return np.empty((0, math.prod(self.sample_shape)), self.dtype)
        block = self.read(int(idx[0]), int(idx[-1]) + 1)
        return block.reshape(len(block), -1)[idx - idx[0]]


class ArrayRows(Rows):
    """Any array-like with ``shape`` and slicing (``np.ndarray``, ``np.memmap``, h5py): rows read by slicing."""

    def __init__(self, a: Any, name: str = "array") -> None:
        if len(getattr(a, "shape", ())) < 2:
            raise ValueError(f"{name} must have shape (samples, features...), got {getattr(a, 'shape', None)}")
        self.a, self.name = a, name
        self.n, self.sample_shape, self.dtype = int(a.shape[0]), tuple(int(s) for s in a.shape[1:]), np.dtype(a.dtype)

    def read(self, lo: int, hi: int) -> np.ndarray:
        return np.asarray(self.a[lo:hi])


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
            self.dtype = np.dtype(meta["dtype"])
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
        parts = []
        first = int(np.searchsorted(self.starts, lo, side="right")) - 1
        for i in range(max(first, 0), len(self.shards)):
            a, b = max(lo, self.starts[i]), min(hi, self.starts[i + 1])
            if a >= b:
                break
            parts.append(self.shards[i].read(int(a - self.starts[i]), int(b - self.starts[i])))
        return np.concatenate(parts) if len(parts) != 1 else parts[0]


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
                shape, dtype = tuple(sl.get_shape()), _NP_DTYPES[sl.get_dtype()]
            with open(path, "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                self.offset = 8 + n + json.loads(fh.read(n))["x"]["data_offsets"][0]
        except (SafetensorError, OSError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path} is not a shard with a tensor 'x' ({type(e).__name__}: {e})") from None
        self.n, self.sample_shape, self.dtype = shape[0], tuple(shape[1:]), dtype

    read = NpyRows.read  # the same positioned read from self.offset


def open_rows(x: Any, column: str | None = None) -> Rows:
    """Rows for ``x``: a ``.npy`` path, a shard directory, a Hugging Face ``datasets.Dataset`` (with
    ``column``), or an array-like; ``Rows`` pass through."""
    if isinstance(x, Rows):
        return x
    if isinstance(x, (str, os.PathLike)):
        path = Path(x)
        if path.is_dir():
            return ShardRows(path)
        if path.suffix == ".npy":
            return NpyRows(path)
        raise ValueError(f"cannot stream {path}: give a .npy file or a shard directory (aekit.sources.write_shards)")
    if type(x).__module__.startswith("datasets"):
        return HFRows(x, column)
    return ArrayRows(x)


class HFRows(Rows):
    """One column of a Hugging Face ``datasets.Dataset`` (Arrow, memory-mapped), read by row range as NumPy."""

    def __init__(self, dataset: Any, column: str | None) -> None:
        if column is None or column not in dataset.column_names:
            raise ValueError(f"name the column of the dataset to train on; it has {dataset.column_names}")
        self.ds, self.column, self.name = dataset.with_format("numpy", columns=[column]), column, f"dataset[{column}]"
        first = np.asarray(self.ds[0:1][column])
        self.n, self.sample_shape, self.dtype = len(dataset), tuple(first.shape[1:]), first.dtype

    def read(self, lo: int, hi: int) -> np.ndarray:
        return np.asarray(self.ds[lo:hi][self.column])


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
    from safetensors.numpy import save_file

    from .checkpoint import atomic_write, write_json

    if fmt not in ("npy", "safetensors"):
        raise ValueError(f"fmt must be 'npy' or 'safetensors', got {fmt!r}")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    shards: list[dict] = []
    pending: list[np.ndarray] = []
    shape = dtype = None

    def flush(rows: np.ndarray) -> None:
        name = f"shard-{len(shards):05d}.{fmt}"
        if fmt == "npy":
            atomic_write(folder / name, lambda tmp: _save_npy(tmp, rows))
        else:
            atomic_write(folder / name, lambda tmp: save_file({"x": np.ascontiguousarray(rows)}, tmp))
        shards.append({"file": name, "rows": len(rows)})
        write_json(folder / MANIFEST, {"format": FORMAT, "sample_shape": list(shape), "dtype": str(dtype),
                                       "count": sum(s["rows"] for s in shards), "shards": shards, "meta": meta or {}})

    for a in arrays:
        a = np.asarray(a)
        if shape is None:
            shape, dtype = a.shape[1:], a.dtype
        if a.shape[1:] != shape or a.dtype != dtype:
            raise ValueError(f"every array must be (n, {', '.join(map(str, shape))}) {dtype}, got {a.shape} {a.dtype}")
        pending.append(a)
        while sum(len(p) for p in pending) >= rows_per_shard:
            rows = np.concatenate(pending)
            flush(rows[:rows_per_shard])
            pending = [rows[rows_per_shard:]]
    rest = [p for p in pending if len(p)]
    if rest:
        flush(np.concatenate(rest))
    if shape is None:
        raise ValueError("write_shards got no arrays")
    return folder


def _save_npy(path: str, rows: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(rows))


# ---------------------------------------------------------------------------- sources


class Source(ABC):
    """Interface: the training rows, as the batches of an epoch for one rank.

    ``batches(epoch, shuffle, batch_size, start, rank, world)`` yields, from global batch ``start`` on,
    this rank's part of each global batch on the device, with the global batch's size; the order is
    drawn from ``shuffle``, which the caller has set to the epoch's starting state.
    """

    n: int

    @abstractmethod
    def batches(self, epoch: int, shuffle: torch.Generator, batch_size: int, start: int = 0, rank: int = 0,
                world: int = 1) -> Iterator[tuple[Tensor, int]]: ...


class InMemory(Source):
    """Samples already on the device (N, D): one permutation per epoch, batches by indexing — no copies."""

    def __init__(self, x: Tensor) -> None:
        self.x, self.n = x, len(x)

    def batches(self, epoch, shuffle, batch_size, start=0, rank=0, world=1):
        perm = torch.randperm(self.n, generator=shuffle).to(self.x.device)
        for b in range(start, math.ceil(self.n / batch_size)):
            idx = perm[b * batch_size : (b + 1) * batch_size]
            yield self.x[idx if world == 1 else idx.tensor_split(world)[rank]], len(idx)


class Stream(Source):
    """Rows ``idx`` (ascending) of ``rows`` streamed in shuffle windows of ``buffer`` rows, each window read
    in chunks of ``chunk`` rows by a background thread while the previous one trains.

    ``check(stored, first_row)`` validates each window as read (raising ``ValueError``); batches are
    converted to float32 on the way to the device (``uint8`` scaled to [0, 1]), pinned on CUDA.
    """

    def __init__(self, rows: Rows, idx: np.ndarray, device: torch.device, seed: int, buffer: int = 0,
                 chunk: int = 0, check: Callable[[np.ndarray, int], None] | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        self.rows, self.idx, self.n, self.device, self.seed = rows, np.asarray(idx), len(idx), device, seed
        self.chunk = int(chunk or max(1, CHUNK_BYTES // rows.row_bytes))
        self.buffer = int(buffer or max(self.chunk, BUFFER_BYTES // rows.row_bytes))
        self.check, self.dtype, self.pin = check, dtype, device.type == "cuda"

    def windows(self, epoch: int) -> list[np.ndarray]:
        """The epoch's shuffle windows: each the (ascending) rows of some chunks, the chunks in a seeded order."""
        chunks = [self.idx[i : i + self.chunk] for i in range(0, self.n, self.chunk)]
        per = max(1, self.buffer // self.chunk)
        if per >= len(chunks):
            return [self.idx]
        order = np.random.default_rng([self.seed, epoch]).permutation(len(chunks))
        return [np.concatenate([chunks[c] for c in sorted(order[i : i + per])]) for i in range(0, len(chunks), per)]

    def read(self, rows_idx: np.ndarray) -> np.ndarray:
        """The stored rows ``rows_idx`` (ascending), chunk by chunk, checked: (len, D)."""
        parts = [self.rows.take(rows_idx[i : i + self.chunk]) for i in range(0, len(rows_idx), self.chunk)]
        data = np.concatenate(parts) if len(parts) != 1 else parts[0]
        if self.check is not None and len(rows_idx):
            self.check(data, int(rows_idx[0]))
        return data

    def to_device(self, stored: np.ndarray) -> Tensor:
        t = torch.from_numpy(np.ascontiguousarray(stored))
        t = t.to(self.dtype).div_(255) if stored.dtype == np.uint8 else t.to(self.dtype)
        return (t.pin_memory() if self.pin else t).to(self.device, non_blocking=True)

    def in_order(self, batch_size: int) -> Iterator[Tensor]:
        """The rows in their stored order, in batches of ``batch_size`` (evaluation, encoding): memory
        bounded by a chunk, not by the data."""
        pending = None
        for i in range(0, self.n, self.chunk):
            data = self.read(self.idx[i : i + self.chunk])
            data = data if pending is None else np.concatenate([pending, data])
            full = len(data) - len(data) % batch_size if i + self.chunk < self.n else len(data)
            for j in range(0, full, batch_size):
                yield self.to_device(data[j : j + batch_size])
            pending = data[full:]

    def batches(self, epoch, shuffle, batch_size, start=0, rank=0, world=1):
        wins = self.windows(epoch)
        first, skip = 0, start * batch_size
        while first < len(wins) and skip >= len(wins[first]):  # windows wholly before `start`: advance the RNG only
            torch.randperm(len(wins[first]), generator=shuffle)
            skip -= len(wins[first])
            first += 1

        def emit(rows: np.ndarray) -> tuple[Tensor, int]:
            part = rows if world == 1 else np.array_split(rows, world)[rank]  # the split torch.tensor_split makes
            return self.to_device(part), len(rows)

        pending: np.ndarray | None = None  # rows of a global batch begun in the previous window
        with ThreadPoolExecutor(max_workers=1) as pool:
            ahead = pool.submit(self.read, wins[first]) if first < len(wins) else None
            for w in range(first, len(wins)):
                data = ahead.result()
                ahead = pool.submit(self.read, wins[w + 1]) if w + 1 < len(wins) else None
                order = torch.randperm(len(data), generator=shuffle).numpy()
                order, last = (order[skip:] if w == first else order), w == len(wins) - 1
                i = 0
                if pending is not None:
                    i = batch_size - len(pending)
                    pending = np.concatenate([pending, data[order[:i]]])
                    if len(pending) < batch_size and not last:
                        continue
                    yield emit(pending)
                    pending = None
                while i < len(order):
                    take = order[i : i + batch_size]
                    i += batch_size
                    if len(take) < batch_size and not last:
                        pending = data[take]
                        break
                    yield emit(data[take])


def streamable(x: Any) -> bool:
    """Whether ``fit`` streams ``x`` from storage (a path, rows, a Hugging Face dataset) rather than moving it
    to the device whole."""
    return isinstance(x, (str, os.PathLike, Rows)) or type(x).__module__.startswith("datasets")


def stored_check(validate: Callable[[Tensor], None], name: str) -> Callable[[np.ndarray, int], None]:
    """A window check: finite values (float data), and the likelihood's support (``validate`` sees the
    window's minimum and maximum, scaled as training will see them); errors name the file and rows."""

    def check(data: np.ndarray, first_row: int) -> None:
        try:
            if data.dtype.kind == "f" and not np.isfinite(data).all():
                raise ValueError("contains NaN or inf")
            lo, hi = float(data.min()), float(data.max())
            scale = 255.0 if data.dtype == np.uint8 else 1.0
            validate(torch.tensor([lo / scale, hi / scale]))
        except ValueError as e:
            raise ValueError(f"{name}, rows from {first_row}: {e}") from None

    return check
