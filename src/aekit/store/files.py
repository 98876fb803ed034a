"""User files: ``.npy``, ``.npz`` and ``.csv`` arrays, validated (no NaN/inf, numeric, not empty) and
with their headers checked against the file's size before anything is allocated.

Problems raise ``ValueError`` with a message that names the file and the fault.
"""

from __future__ import annotations

import csv
import math
import os
import struct
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def check_array(x: object, what: str = "data", dtype: type = np.float32) -> np.ndarray:
    """Return ``x`` as a float32 (or ``dtype``) array ``(N, ...)``, or raise ``ValueError`` naming the problem.

    Example
    -------
    >>> check_array([[0, 1], [1, 0]]).dtype
    dtype('float32')
    """
    try:
        a = np.asarray(x)
    except ValueError as e:
        raise ValueError(f"{what} is not a rectangular numeric array: {e}") from None
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(f"{what} must be numeric, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.complexfloating):
        raise ValueError(f"{what} is complex ({a.dtype}); pass real data (e.g. np.abs or the real and imaginary "
                         "parts as separate features)")
    if a.ndim < 2:
        raise ValueError(f"{what} must have shape (samples, features), got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{what} is empty (shape {a.shape})")
    flat = a.reshape(len(a), -1)
    # values a float32 cannot hold (1e39 in a CSV) would become inf in the cast, with a warning per chunk
    limit = np.finfo(dtype).max if np.issubdtype(a.dtype, np.floating) and np.finfo(a.dtype).max > np.finfo(dtype).max \
        else None
    step = max(1, 2**24 // flat.shape[1])  # rows of 16 M values: the check's temporaries stay small
    bad, huge = [], []
    for i in range(0, len(flat), step):
        c = flat[i : i + step]
        bad.append(np.flatnonzero(~np.isfinite(c).all(1)) + i)
        if limit is not None:
            with np.errstate(invalid="ignore"):
                huge.append(np.flatnonzero((np.abs(c) > limit).any(1)) + i)
    bad, huge = np.concatenate(bad), np.concatenate(huge) if huge else np.empty(0, np.int64)
    if len(bad):
        raise ValueError(f"{what} contains NaN or inf in {len(bad)} sample(s), first at row {int(bad[0])}")
    if len(huge):
        row = flat[huge[0]]
        raise ValueError(f"{what} has values beyond {np.dtype(dtype).name}'s range (±{limit:.3g}) in {len(huge)} "
                         f"sample(s), first at row {int(huge[0])} ({float(row[np.argmax(np.abs(row))]):.3g}); scale "
                         "the data")
    return a.astype(dtype, copy=False)


LAYOUTS = ("auto", "nchw", "nhwc")


def flatten(a: np.ndarray, layout: str = "auto", what: str = "data") -> tuple[np.ndarray, tuple[int, ...]]:
    """(N, D) stays; (N, H, W) is one-channel images; (N, C, H, W) is images (``layout="nhwc"``: (N, H, W, C),
    moved to channels first). ``"auto"`` refuses a 4-D array that looks channels-last, (N, H, W, 1|3|4) with H,
    W > 4, rather than read it silently as H channels of W × C images.

    Example
    -------
    >>> flatten(np.zeros((2, 5, 5, 3)), layout="nhwc")[1]
    (3, 5, 5)
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if a.ndim == 4 and layout == "nhwc":
        a = np.moveaxis(a, -1, 1)
    elif a.ndim == 4 and layout == "auto" and a.shape[3] in (1, 3, 4) and min(a.shape[1:3]) > 4:
        raise ValueError(f"{what} has shape {a.shape}: channels-last images (N, H, W, C)? aekit reads images as "
                         f"(N, C, H, W). Save np.moveaxis(x, -1, 1), or in Python read_array(path, layout='nhwc'); "
                         f"if these really are {a.shape[1]} channels of {a.shape[2]}×{a.shape[3]} images, "
                         "layout='nchw'")
    shape = a.shape[1:]
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) > 3:
        raise ValueError(f"data must be (N, D), (N, H, W) or (N, C, H, W), got shape {a.shape}")
    return np.ascontiguousarray(a.reshape(len(a), -1)), tuple(int(s) for s in shape)


LABEL_NAMES = ("label", "labels", "target", "class", "y", "outcome", "anomaly", "is_anomaly", "outlier")
ID_NAMES = ("id", "index", "idx", "row", "key", "uuid")


def _suspect(name: str, values: np.ndarray) -> str | None:
    """Why a feature column looks like a label or an ID (else None): its header name, or row numbers as values."""
    low = name.strip().lower()
    if low in LABEL_NAMES:
        return "a label"
    counts = len(values) > 2 and np.array_equal(values, values[0] + np.arange(len(values)))  # 0, 1, 2, … or 7, 8, …
    if low in ID_NAMES or low.endswith("_id") or counts:
        return "an ID"
    return None


def csv_columns(path: str | os.PathLike, label: str | None = None, drop: Sequence[str] = ()) -> list[str] | None:
    """The names of a CSV file's feature columns (its header, less the label and dropped columns), or None
    when it has no header. Reads the header line only."""
    with open(path, newline="") as f:
        first = next((r for r in csv.reader(f) if r), None)
    if first is None or all(_is_float(v) for v in first):
        return None
    gone = {first.index(c) if c in first else int(c) for c in [*drop, *([label] if label is not None else [])]
            if c in first or c.isdigit()}
    return [c for j, c in enumerate(first) if j not in gone]


def _read_csv(path: Path, label: str | None = None, drop: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray | None]:
    """The numeric columns of a CSV file (one header line allowed) and, with ``label``, that column as labels
    (numbers, or class names numbered in sorted order); ``drop`` columns (IDs, free text) are left out. Columns
    are named by the header or by 0-based index."""
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows:
        raise ValueError(f"{path} is empty")
    header = None if all(_is_float(v) for v in rows[0]) else rows[0]  # one header line is allowed
    start = 0 if header is None else 1
    widths = {len(r) for r in rows[start:]}
    if len(widths) > 1:
        raise ValueError(f"{path}: rows have different numbers of columns {sorted(widths)}")
    if not rows[start:]:
        raise ValueError(f"{path} has a header but no data rows")
    width = widths.pop()

    def column(ref: str, flag: str) -> int:
        if header is not None and ref in header:
            return header.index(ref)
        if ref.isdigit() and int(ref) < width:
            return int(ref)
        names = f"; its columns: {', '.join(header)}" if header else f" (no header: give an index 0–{width - 1})"
        raise ValueError(f"{flag} {ref!r} is not a column of {path}{names}")

    skip = {column(c, "drop column") for c in drop}
    y = None
    if label is not None:
        j = column(label, "label column")
        skip.add(j)
        values = [r[j] for r in rows[start:]]
        if all(_is_float(v) for v in values):
            y = np.array(values, dtype=np.float64)
            y = y.astype(np.int64) if np.all(y == np.round(y)) else y
        else:
            y = np.unique(values, return_inverse=True)[1].astype(np.int64)
    keep = [j for j in range(width) if j not in skip]
    if not keep:
        raise ValueError(f"{path}: no feature columns left after the label and dropped columns")

    def parse(i: int, row: list[str]) -> list[float]:
        try:
            return [float(row[j]) for j in keep]
        except ValueError:
            j = next(j for j in keep if not _is_float(row[j]))
            bad = row[j]
            name = f" (column {header[j]!r}: leave it out with drop_columns, --drop-columns)" \
                if header and j < len(header) else ""
            raise ValueError(f"{path}: non-numeric value {bad!r} on line {i + 1}{name}") from None

    x = np.array([parse(i, r) for i, r in enumerate(rows[start:], start)])  # float64: check_array checks the range
    if header:  # a label or an ID read as a feature is a silent mistake: say so
        for k, j in enumerate(keep):
            name = header[j] if j < len(header) else ""
            why = _suspect(name, x[:, k]) if name else None
            if why:
                warnings.warn(f"{path}: column {name!r} looks like {why} but is read as a feature; "
                              f"--label-column {name} (label_column=) makes it the labels, --drop-columns {name} "
                              "(drop_columns=) leaves it out", UserWarning, stacklevel=3)
    return x, y


def _read_npy(f, available: int, what: str) -> np.ndarray:
    """An array from an open ``.npy`` stream of ``available`` bytes, its header checked against that size
    before anything is allocated (a header may claim any shape)."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise ValueError(f"{what}: unsupported .npy version {version}")
    try:
        with warnings.catch_warnings():  # a damaged header may also make Python's parser warn
            warnings.simplefilter("ignore")
            shape, _, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)
    except Exception as e:  # numpy parses the header with tokenize/ast: any of their errors means "damaged"
        raise ValueError(f"{what}: damaged .npy header ({type(e).__name__}: {str(e)[:120]})") from None
    if dtype.hasobject:
        raise ValueError(f"{what} holds Python objects; only numeric arrays are read (never unpickled)")
    need = math.prod(shape) * dtype.itemsize
    if need > available:
        raise ValueError(f"{what}: its header claims shape {shape} of {dtype} ({need:,} bytes), "
                         f"but the file holds {available:,} bytes")
    f.seek(0)
    return fmt.read_array(f, allow_pickle=False)


def _read_member(z: zipfile.ZipFile, name: str, path: Path) -> np.ndarray:
    with z.open(name) as f:
        return _read_npy(f, z.getinfo(name).file_size, f"{path}[{name}]")


def _is_float(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def read_array(path: str | os.PathLike, layout: str = "auto", label_column: str | None = None,
               drop_columns: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...]]:
    """Read samples (and labels if stored) from ``.npy``, ``.npz`` or ``.csv``; 4-D images by ``layout``
    (see :func:`flatten`); a CSV's ``label_column`` as labels and ``drop_columns`` left out (by header name or
    0-based index).

    ``.npz`` files use the array ``x`` (or the first array) and, if present, labels ``y``.
    ``uint8`` arrays are images and are scaled to [0, 1]. Returns ``(x, y, shape)``
    with ``x`` flat, shape (N, D).
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"file not found: {path}")
    if (label_column is not None or drop_columns) and path.suffix != ".csv":
        raise ValueError(f"a label column and dropped columns apply to .csv files; {path} is {path.suffix or 'not'}"
                         " (an .npz holds labels as its array y)")
    y = None
    try:
        if path.suffix == ".npy":
            with open(path, "rb") as f:
                a = _read_npy(f, path.stat().st_size, str(path))
        elif path.suffix == ".npz":
            with zipfile.ZipFile(path) as z:
                names = {n.removesuffix(".npy"): n for n in z.namelist() if n.endswith(".npy")}
                if not names:
                    raise ValueError(f"{path} holds no arrays")
                a = _read_member(z, names.get("x", next(iter(names.values()))), path)
                y = _read_member(z, names["y"], path) if "y" in names else None
        elif path.suffix == ".csv":
            a, y = _read_csv(path, label_column, drop_columns)
        else:
            raise ValueError(f"unsupported file type {path.suffix!r} for {path}; use .npy, .npz or .csv")
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile, csv.Error, MemoryError, NotImplementedError,
            RuntimeError, OverflowError, struct.error) as e:  # zipfile: unsupported versions, encryption, ...
        raise ValueError(f"cannot read {path}: {type(e).__name__}: {str(e)[:200]}") from None
    except ValueError as e:
        if str(path) in str(e):
            raise
        raise ValueError(f"cannot read {path}: {e}") from None
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / np.float32(255)  # in float32 (as streamed rows are): a / 255 made float64, 8×
    x, shape = flatten(check_array(a, str(path)), layout, str(path))
    if y is not None and len(y) != len(x):
        raise ValueError(f"{path}: {len(y)} labels for {len(x)} samples")
    return x, y, shape
