"""Where the batches of an epoch come from: data in memory (on the device), or rows streamed from
storage (:mod:`aekit.store.rows`). A :class:`Source` turns the training rows into the batches of an epoch
for one rank; the training loop does not know whether they come from memory or from disk.

The epoch's order is a function of the seed and the epoch: the training rows (ascending) are cut
into chunks, the chunks are dealt into shuffle windows of ``buffer`` rows in a seeded order, and each
window's rows are permuted with the trainer's shuffle generator. A window that holds every row is
exactly the in-memory order, so a streamed run and an in-memory run of the same data agree.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..core.tensors import as_tensor, param_dtype
from ..store.rows import Rows, is_bf16, is_files, open_rows

CHUNK_BYTES = 8 * 2**20  # rows read in one piece (a chunk) hold about this much stored data
BUFFER_BYTES = 256 * 2**20  # default shuffle window: this much stored data
PREPARE_ROWS = 65_536  # streamed data: the training rows a model's parts see to set data-dependent defaults


def epoch_batches(n: int, batch_size: int, world: int = 1) -> int:
    """Global batches in an epoch of ``n`` rows: every rank must get a non-empty share of each (DDP steps
    together), so on several processes a last partial batch with fewer rows than processes is dropped, as
    ``DistributedSampler(drop_last=True)`` drops rows (at most ``world - 1`` of an epoch's, and in another
    order each epoch).

    Example
    -------
    >>> epoch_batches(3001, 100), epoch_batches(3001, 100, world=2), epoch_batches(3002, 100, world=2)
    (31, 30, 31)
    """
    full, rest = divmod(n, batch_size)
    return full + (1 if rest and (world == 1 or rest >= world) else 0)


class Source(ABC):
    """Interface: the training rows, as the batches of an epoch for one rank.

    ``batches(epoch, shuffle, batch_size, start, rank, world)`` yields, from global batch ``start`` on,
    this rank's part of each of the epoch's :func:`epoch_batches` global batches on the device, with the
    global batch's size; the order is drawn from ``shuffle``, which the caller has set to the epoch's
    starting state. ``in_order(batch_size)`` yields the rows in order (validation, evaluation).
    """

    n: int

    @abstractmethod
    def batches(self, epoch: int, shuffle: torch.Generator, batch_size: int, start: int = 0, rank: int = 0,
                world: int = 1) -> Iterator[tuple[Tensor, int]]: ...

    @abstractmethod
    def in_order(self, batch_size: int) -> Iterator[Tensor]: ...


class InMemory(Source):
    """The rows ``idx`` (ascending) of samples already on the device (N, D): one permutation per epoch, batches
    by indexing — the training rows are never copied out of the data as a whole."""

    def __init__(self, x: Tensor, idx: Tensor | None = None) -> None:
        self.x, self.whole = x, idx is None  # whole: every row in order, read by slices (views, not gathers)
        self.idx = torch.arange(len(x)) if idx is None else idx
        self.n = len(self.idx)

    def rows(self, count: int | None = None) -> Tensor:
        """The first ``count`` training rows (all by default), (count, D): a copy."""
        return self.x[self.idx[:count].to(self.x.device)]

    def in_order(self, batch_size: int) -> Iterator[Tensor]:
        for i in range(0, self.n, batch_size):
            rows = slice(i, i + batch_size) if self.whole else self.idx[i : i + batch_size].to(self.x.device)
            yield self.x[rows]

    def batches(self, epoch, shuffle, batch_size, start=0, rank=0, world=1):
        perm = self.idx[torch.randperm(self.n, generator=shuffle)].to(self.x.device)
        for b in range(start, epoch_batches(self.n, batch_size, world)):
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
        self.buffer = int(buffer or max(1, BUFFER_BYTES // rows.row_bytes))
        self.chunk = int(chunk or min(self.buffer, max(1, CHUNK_BYTES // rows.row_bytes)))
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
        """The stored rows ``rows_idx`` (ascending), chunk by chunk into one buffer, checked: (len, D)."""
        data = np.empty((len(rows_idx), math.prod(self.rows.sample_shape)), self.rows.dtype)
        for i in range(0, len(rows_idx), self.chunk):
            data[i : i + self.chunk] = self.rows.take(rows_idx[i : i + self.chunk])
        if self.check is not None and len(rows_idx):
            self.check(data, int(rows_idx[0]))
        return data

    def to_device(self, stored: np.ndarray) -> Tensor:
        stored = np.ascontiguousarray(stored)
        t = torch.from_numpy(stored.view(np.int16)).view(torch.bfloat16) if is_bf16(stored.dtype) \
            else torch.from_numpy(stored)
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
                    if len(pending) >= world:  # (see epoch_batches)
                        yield emit(pending)
                    pending = None
                while i < len(order):
                    take = order[i : i + batch_size]
                    i += batch_size
                    if len(take) < batch_size and not last:
                        pending = data[take]
                        break
                    if len(take) >= world:  # (see epoch_batches)
                        yield emit(data[take])


def streamable(x: Any) -> bool:
    """Whether ``fit`` streams ``x`` from storage (a path, rows, a Hugging Face dataset, a memory map) rather
    than moving it to the device whole."""
    return isinstance(x, (str, os.PathLike, Rows, np.memmap)) or is_files(x) or type(x).__module__.startswith("datasets")


def stored_check(validate: Callable[[Tensor], None], name: str) -> Callable[[np.ndarray, int], None]:
    """A window check: finite values (float data), and the likelihood's support (``validate`` sees the
    window's minimum and maximum, scaled as training will see them); errors name the file and rows."""

    def check(data: np.ndarray, first_row: int) -> None:
        try:
            if (data.dtype.kind == "f" or is_bf16(data.dtype)) and not np.isfinite(data).all():
                raise ValueError("contains NaN or inf")
            lo, hi = float(data.min()), float(data.max())
            scale = 255.0 if data.dtype == np.uint8 else 1.0
            validate(torch.tensor([lo / scale, hi / scale]))
        except ValueError as e:
            raise ValueError(f"{name}, rows from {first_row}: {e}") from None

    return check


def training_data(x: Any, model: Any, shuffle_buffer: int = 0) -> Tensor | Rows:
    """In-memory samples as a checked tensor (N, D), or the rows of a file, directory or dataset to stream."""
    if streamable(x):
        rows = open_rows(x)
        if rows.n == 0:
            raise ValueError(f"{rows.name} is empty (0 samples)")
        if math.prod(rows.sample_shape) != model.input_size:
            raise ValueError(f"{rows.name} has {math.prod(rows.sample_shape)} features per sample but the model "
                             f"expects {model.input_size}")
        return rows
    if shuffle_buffer:
        raise ValueError(f"option shuffle_buffer={shuffle_buffer} has no effect here: it applies to streamed "
                         "data (a .npy path, a shard directory, a dataset); in-memory data is shuffled whole")
    data = as_tensor(x, model, "training data")
    model.likelihood.validate(data)
    return data


def split(data: Tensor | Rows, model: Any, seed: int, val_fraction: float, dev: torch.device, buffer: int = 0,
          rank: int = 0, world: int = 1) -> tuple[Source, Source | None, int]:
    """The training source, this rank's share of the validation data (a source too, or ``None``) and
    the validation set's size: a seeded share ``val_fraction`` of the rows is held out; the training rows
    keep their order (ascending), and every rank sees all of them (it takes its part of each batch)."""
    n_all = data.n if isinstance(data, Rows) else len(data)
    order = np.arange(n_all, dtype=np.int32 if n_all < 2**31 else np.int64)  # 4 bytes a row: big files have many
    np.random.default_rng(seed).shuffle(order)  # the permutation Generator.permutation(n) draws
    n_val = int(round(val_fraction * n_all))
    if val_fraction > 0 and (n_val < 1 or n_val >= n_all):
        raise ValueError(f"val_fraction={val_fraction} leaves no training or no validation data with {n_all} samples")
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    if 0 < n_val < world:
        raise ValueError(f"val_fraction={val_fraction} holds out {n_val} rows, fewer than the {world} processes")
    mine = np.array_split(val_idx, world)[rank] if world > 1 else val_idx
    if isinstance(data, Rows):
        check = stored_check(model.likelihood.validate, data.name)
        dtype = param_dtype(model)
        source = Stream(data, train_idx, dev, seed, buffer, check=check, dtype=dtype)
        return source, (Stream(data, mine, dev, seed, check=check, dtype=dtype) if n_val else None), n_val
    x = data.to(dev)  # the validation rows are a source over the same samples: no copy of them
    return (InMemory(x, torch.from_numpy(train_idx).long()),
            (InMemory(x, torch.from_numpy(mine).long()) if n_val else None), n_val)


def ordered(x: Any, model: Any) -> Source:
    """``x`` as a :class:`Source` to read in order: itself, a stream of a file, directory or dataset (memory bounded
    by a chunk), or samples in memory (a tensor as it is; anything else validated for ``model``)."""
    if isinstance(x, Source):
        return x
    if streamable(x):
        rows = open_rows(x)
        return Stream(rows, np.arange(rows.n), next(model.parameters()).device, 0,
                      check=stored_check(model.likelihood.validate, rows.name), dtype=param_dtype(model))
    return InMemory(x if isinstance(x, Tensor) else as_tensor(x, model))


def prepare_sample(source: Source) -> Tensor:
    """What a model's data-dependent defaults are taken from: the first ``PREPARE_ROWS`` training rows, in memory
    or streamed alike (so that both give the same model)."""
    if isinstance(source, InMemory):
        return source.rows(PREPARE_ROWS)
    return source.to_device(source.read(source.idx[:PREPARE_ROWS]))
