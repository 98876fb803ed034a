"""Datasets: embedded digits, MNIST-family IDX files (local or downloaded and verified), user arrays.

Every loader returns float32 arrays of shape ``(N, D)`` (images flattened, with
their per-sample ``shape`` kept alongside) and checks them: no NaN or inf, not
empty, numeric. Problems raise ``ValueError`` with a message that names the
file and the fault.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .files import check_array, csv_columns, flatten, read_array
from .rows import NpyRows, SubsetRows, open_rows  # data larger than memory: streamed by fit

__all__ = ["Dataset", "Split", "binarize", "cache_dir", "download", "load", "read_idx"]

CACHE_ENV = "AEKIT_CACHE_DIR"

# Canonical files and their md5 checksums, verified after every download.
IDX_FILES = {
    "mnist": {
        "mirrors": [
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ],
        "md5": {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    },
    "fashion-mnist": {
        "mirrors": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        "md5": {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    },
}
NAMES = ("digits", *IDX_FILES)


@dataclass
class Dataset:
    """Samples ``x`` (N, D) float32 — or rows streamed from storage (:mod:`aekit.store.rows`) — optional
    labels ``y`` (N,), and the shape of one sample."""

    x: Any
    y: np.ndarray | None
    shape: tuple[int, ...]
    name: str
    columns: list[str] | None = None  # a table's feature names (a CSV header), for people to read
    units: tuple[np.ndarray, np.ndarray] | None = None  # (center, scale) x was standardised with: x·scale + center

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class Split:
    """A train/test pair of datasets."""

    train: Dataset
    test: Dataset


# ---------------------------------------------------------------------------- IDX


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzipped) of unsigned bytes, checking header and gzip CRC."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"file not found: {path}") from None
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path} is corrupted (gzip data or checksum failed: {e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or not 1 <= raw[3] <= 4:
        raise ValueError(f"{path} has a bad IDX header (expected unsigned-byte magic 0x0000080N)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path} has a truncated IDX header")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = raw[4 + 4 * ndim :]
    if len(body) != int(np.prod(dims)):
        raise ValueError(f"{path}: IDX header says shape {dims} ({int(np.prod(dims))} bytes), body has {len(body)}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _read_idx_dir(root: Path, name: str) -> Split:
    if not root.is_dir():
        raise ValueError(f"data directory not found: {root}")
    parts = {}
    for split in ("train", "t10k"):
        images = read_idx(_find(root, f"{split}-images-idx3-ubyte"))
        labels = read_idx(_find(root, f"{split}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{root}: {split} images {images.shape} and labels {labels.shape} do not match")
        x, shape = flatten(images.astype(np.float32) / 255.0)
        parts[split] = Dataset(x, labels.astype(np.int64), shape, name)
    return Split(parts["train"], parts["t10k"])


def _find(root: Path, stem: str) -> Path:
    for p in (root / f"{stem}.gz", root / stem):
        if p.exists():
            return p
    raise ValueError(f"missing file {stem}.gz in {root}")


def cache_dir() -> Path:
    """Where downloads go: ``$AEKIT_CACHE_DIR`` or ``~/.cache/aekit``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "aekit")


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(name: str, root: str | os.PathLike | None = None, mirrors: list[str] | None = None,
             deadline: float = 600.0) -> Path:
    """Fetch the four IDX files of ``name`` into ``root/name`` and verify their md5.

    Files already present with the right checksum are kept. A file is written
    under a temporary name and moved into place only once verified, so an
    interrupted or corrupted download never leaves a bad file in the cache.
    Each file must arrive within ``deadline`` seconds from a mirror, else the next
    mirror is tried (a socket timeout alone restarts with every byte a slow server sends).

    Example
    -------
    >>> download("mnist")  # doctest: +SKIP
    PosixPath('/home/me/.cache/aekit/mnist')
    """
    if name not in IDX_FILES:
        raise ValueError(f"no download for {name!r}; downloadable: {', '.join(IDX_FILES)}")
    spec = IDX_FILES[name]
    folder = Path(root or cache_dir()) / name
    folder.mkdir(parents=True, exist_ok=True)
    for fname, md5 in spec["md5"].items():
        dest = folder / fname
        if dest.exists() and _md5(dest) == md5:
            continue
        errors = []
        for base in mirrors or spec["mirrors"]:
            url = base.rstrip("/") + "/" + fname
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=fname, suffix=".part")
            try:
                with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as resp:
                    _copy_within(resp, out, time.monotonic() + deadline, deadline)
                got = _md5(Path(tmp))
                if got != md5:
                    errors.append(f"{url}: checksum mismatch (md5 {got}, expected {md5})")
                    continue
                os.replace(tmp, dest)
                break
            except (urllib.error.URLError, OSError) as e:
                errors.append(f"{url}: {e}")
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            raise ValueError(f"could not download {fname} for {name}: " + "; ".join(errors))
    return folder


def _copy_within(src, dst, until: float, deadline: float) -> None:
    """Copy ``src`` to ``dst`` in chunks, failing once the clock passes ``until``. A server that sends one
    byte at a time still reads as slowly as it sends: ``read(n)`` returns what has arrived."""
    while chunk := src.read1(1 << 16) if hasattr(src, "read1") else src.read(1 << 16):
        dst.write(chunk)
        if time.monotonic() > until:
            raise OSError(f"the download took longer than its deadline of {deadline:g} s")


def _split_order(n: int, name: str, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The test and training rows of a seeded split of ``n`` rows, in their shuffled order."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n_test = int(round(n * test_fraction))
    if n_test < 1 or n_test >= n:
        raise ValueError(f"{name}: {n} samples are too few to hold out a test fraction of {test_fraction}")
    idx = np.random.default_rng(seed).permutation(n)
    return idx[:n_test], idx[n_test:]


def _split(x: np.ndarray, y: np.ndarray | None, shape: tuple, name: str, test_fraction: float, seed: int,
           columns: list[str] | None = None) -> Split:
    te, tr = _split_order(len(x), name, test_fraction, seed)
    sub = (lambda i: None) if y is None else (lambda i: y[i])
    return Split(Dataset(x[tr], sub(tr), shape, name, columns), Dataset(x[te], sub(te), shape, name, columns))


def load(
    spec: str,
    *,
    data_dir: str | os.PathLike | None = None,
    download_missing: bool = True,
    test_fraction: float = 0.2,
    seed: int = 0,
    binarize: bool = False,
    label_column: str | None = None,
    drop_columns: Sequence[str] = (),
) -> Split:
    """Load a train/test split by name or path.

    Parameters
    ----------
    spec
        ``"digits"`` (scikit-learn's embedded 8×8 digits scaled to [0, 1]),
        ``"mnist"`` or ``"fashion-mnist"`` (standard train/test files), a directory
        of IDX files, or a ``.npy``/``.npz``/``.csv`` file.
    data_dir
        For MNIST-family names: read the IDX files from this directory instead
        of the download cache (no canonical checksum is required of local files).
    download_missing
        For MNIST-family names without ``data_dir``: download into the cache if absent.
    test_fraction, seed
        How digits and user files are split (a seeded permutation).
    label_column, drop_columns
        For a ``.csv`` file: the column of labels, and columns to leave out (IDs, text), by header name or
        0-based index.
    binarize
        Stochastically binarise both sets once (see :func:`binarize`; train with seed 0,
        test with seed 1), for likelihood work with a Bernoulli decoder.

    Example
    -------
    >>> s = load("digits")
    >>> s.train.x.shape, s.test.x.shape, s.train.shape
    ((1438, 64), (359, 64), (1, 8, 8))
    """
    if (label_column is not None or drop_columns) and Path(spec).suffix != ".csv":
        raise ValueError(f"label_column and drop_columns apply to .csv files, not {spec!r}")
    split = _load(spec, data_dir, download_missing, test_fraction, seed, label_column, tuple(drop_columns))
    if binarize:
        for i, d in enumerate((split.train, split.test)):
            d.x, d.name = _binarize(d.x, seed=i, what=f"{d.name} ({'train' if i == 0 else 'test'})"), f"{d.name} (binarised)"
    return split


def stream_split(path: str | os.PathLike, seed: int = 0, test_fraction: float = 0.2) -> Split:
    """A ``.npy`` file or shard directory split like :func:`load` splits files (a seeded share of the rows
    for testing), but left on disk: ``train.x`` and ``test.x`` are rows read on demand.

    Example
    -------
    >>> np.save("/tmp/aekit-doc-stream.npy", np.zeros((10, 4), np.float32))
    >>> s = stream_split("/tmp/aekit-doc-stream.npy")
    >>> len(s.train), len(s.test), s.train.shape
    (8, 2, (4,))
    """

    rows = open_rows(path)
    te, tr = _split_order(rows.n, rows.name, test_fraction, seed)  # the split load makes of a file
    shape = rows.sample_shape if len(rows.sample_shape) != 2 else (1, *rows.sample_shape)
    name = Path(path).name if Path(path).is_dir() else Path(path).stem  # a shard directory: its whole name
    return Split(Dataset(SubsetRows(rows, tr), None, shape, name), Dataset(SubsetRows(rows, te), None, shape, name))


def _split_npy(path: Path, test_fraction: float, seed: int) -> Split | None:
    """The split :func:`load` makes of a numeric ``.npy`` file, read chunk by chunk straight into the training
    and test arrays: memory is one copy of the data as float32 (reading it whole and then indexing held two).
    ``None`` for a file this path does not take (Fortran order, 1-D, not numeric): read it whole."""
    try:
        rows = NpyRows(path)
    except ValueError:
        return None
    if rows.dtype.kind not in "biuf":
        return None
    _, shape = flatten(np.zeros((1, *rows.sample_shape), np.float32), "auto", str(path))  # (N, H, W, C) refused
    if rows.n == 0:
        raise ValueError(f"{path} is empty (shape {(0, *rows.sample_shape)})")
    te, tr = _split_order(rows.n, path.stem, test_fraction, seed)
    d = math.prod(rows.sample_shape)
    train, test = np.empty((len(tr), d), np.float32), np.empty((len(te), d), np.float32)
    dest = np.empty(rows.n, np.int64)  # file row -> its place: i in train, or -1 - i in test
    dest[tr], dest[te] = np.arange(len(tr)), -1 - np.arange(len(te))
    for lo, x in rows.chunks():  # float32, uint8 scaled to [0, 1]; NaN or inf named by its rows
        to = dest[lo : lo + len(x)]
        kept = to >= 0
        train[to[kept]], test[-1 - to[~kept]] = x[kept], x[~kept]
    return Split(Dataset(train, None, shape, path.stem), Dataset(test, None, shape, path.stem))


def _binarize(x: np.ndarray, seed: int, what: str = "data") -> np.ndarray:
    if x.min() < 0 or x.max() > 1:
        raise ValueError(f"binarising needs values in [0, 1] (they become probabilities); {what} has values in "
                         f"[{x.min():.4g}, {x.max():.4g}]")
    return (np.random.default_rng(seed).random(x.shape, dtype=np.float32) < x).astype(np.float32)


def binarize(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """Stochastic binarisation: each value p in [0, 1] becomes 1 with probability p, drawn with ``seed``.

    This is the binarised MNIST of Salakhutdinov & Murray (2008) and Burda et al. (2015), drawn once
    with a fixed seed rather than afresh each epoch, so that every run scores the same test set.

    Example
    -------
    >>> binarize(np.array([[0.0, 1.0, 0.3]]), seed=0).tolist()
    [[0.0, 1.0, 0.0]]
    """
    return _binarize(check_array(x), seed)


def _load(spec: str, data_dir, download_missing: bool, test_fraction: float, seed: int, label_column: str | None = None,
          drop_columns: tuple[str, ...] = ()) -> Split:
    if spec == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = (d.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8)
        xf, shape = flatten(x)
        return _split(xf, d.target.astype(np.int64), shape, "digits", test_fraction, seed)
    if spec in IDX_FILES:
        if data_dir is not None:
            return _read_idx_dir(Path(data_dir), spec)
        folder = cache_dir() / spec
        if not all((folder / f).exists() for f in IDX_FILES[spec]["md5"]):
            if not download_missing:
                raise ValueError(f"{spec} is not in the cache {folder}; pass data_dir or allow the download")
            folder = download(spec)
        return _read_idx_dir(folder, spec)
    path = Path(spec)
    if path.is_dir() and path.suffix in (".npy", ".npz", ".csv"):
        raise ValueError(f"{path} is a directory, not a {path.suffix} file")
    if path.is_dir():
        if (path / "manifest.json").is_file():
            raise ValueError(f"{path} is a shard directory: stream it (--stream; in Python, pass the path to fit)")
        return _read_idx_dir(path, path.name)
    if path.suffix == ".npy" and path.is_file():
        split = _split_npy(path, test_fraction, seed)
        if split is not None:
            return split
    if path.suffix in (".npy", ".npz", ".csv") or path.exists():
        x, y, shape = read_array(path, label_column=label_column, drop_columns=drop_columns)
        columns = csv_columns(path, label_column, drop_columns) if path.suffix == ".csv" else None
        return _split(x, y, shape, path.stem, test_fraction, seed, columns)
    raise ValueError(f"unknown data {spec!r}: not one of {', '.join(NAMES)}, nor an existing file or directory")
