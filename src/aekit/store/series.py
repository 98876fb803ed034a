"""A series read from a file: its channels, its time column put to use, its labels.

A series is an array ``(T, C)`` of finite numbers (``(T,)`` is one channel). A CSV file names its columns
in a header line; :func:`read_series` finds the time column, the optional 0/1 label column and the
channels, and uses the time column for what it says: the rows are put oldest first (a file written newest
first is read backwards, with a warning), rows out of order or a repeated time are refused, and gaps in
time are reported (missing steps are not filled in: the steps either side are read as neighbours). A
column that only counts the rows (0, 1, 2, … as pandas' ``to_csv`` writes its index) is never a channel.

Example
-------
>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "s.csv"
>>> _ = p.write_text("time,value,label\\n2024-01-03,3.0,1\\n2024-01-02,2.0,0\\n2024-01-01,1.0,0\\n")
>>> import warnings
>>> with warnings.catch_warnings(record=True) as said:
...     warnings.simplefilter("always")
...     f = read_series(p)
>>> f.x[:, 0].tolist(), f.time, f.labels.tolist()
([1.0, 2.0, 3.0], ['2024-01-01', '2024-01-02', '2024-01-03'], [0.0, 0.0, 1.0])
>>> "runs backwards in time" in str(said[0].message)
True
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .files import _is_float, _read_npy

TIME_NAMES = ("time", "timestamp", "date", "datetime", "ds")
LABEL_NAMES = ("label", "anomaly", "is_anomaly")
INDEX_NAMES = ("", "index", "idx", "row", "unnamed: 0")
GAP = 1.5  # a step more than this many times the usual one is a gap


def as_series(series: Any, what: str = "series") -> np.ndarray:
    """``series`` as a float32 array ``(T, C)``: finite numbers, at least one step; ``(T,)`` becomes ``(T, 1)``."""
    a = np.asarray(series, dtype=np.float32)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{what} must have shape (T,) or (T, C) with T, C >= 1, got {a.shape}")
    bad = ~np.isfinite(a).all(1)
    if bad.any():
        raise ValueError(f"{what} has NaN or infinite values at {int(bad.sum())} step(s), the first at step "
                         f"{int(np.argmax(bad))}; fill or drop them first")
    return a


@dataclass
class SeriesFile:
    """A series read from a file: values ``x`` (T, C), the channels' ``names``, the ``time`` column as text
    (if the file has one), oldest first, and 0/1 ``labels`` per step (if it has a label column)."""

    x: np.ndarray
    names: list[str]
    time: list[str] | None = None
    labels: np.ndarray | None = None


def read_series(path: str | Path, drop_columns: Sequence[str] = ()) -> SeriesFile:
    """A series from ``.npy`` (shape (T,) or (T, C)) or ``.csv``: one header line, a time column (named time,
    timestamp, date, datetime or ds, or the first non-numeric column), an optional 0/1 label column (label,
    anomaly or is_anomaly), and numeric channels; ``drop_columns`` (header names or 0-based indices) left out.

    The time column (numbers, or ISO 8601 dates and times) orders the rows: see the module's docstring. A
    column of consecutive integers is a row index, not a channel: it is the time column when the file has
    none, and is left out otherwise (with a warning, unless ``drop_columns`` names it)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    if path.suffix == ".npy":
        if drop_columns:
            raise ValueError(f"dropped columns apply to .csv files; {path} is an array")
        with open(path, "rb") as fh:
            a = _read_npy(fh, path.stat().st_size, str(path))
        if a.ndim > 2:
            raise ValueError(f"{path} holds an array of shape {a.shape}, not one series (T,) or (T, C); "
                             "windows like these train without --window")
        series = as_series(a, str(path))
        return SeriesFile(series, [f"x{i}" for i in range(series.shape[1])])
    if path.suffix != ".csv":
        raise ValueError(f"unsupported series file {path.suffix!r} for {path}; use .csv or .npy")
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if len(rows) < 2:
        raise ValueError(f"{path} needs a header line and at least one row")
    head, body = [h.strip() for h in rows[0]], rows[1:]
    if any(len(r) != len(head) for r in body):
        raise ValueError(f"{path}: rows have different numbers of columns than the header ({len(head)})")
    dropped = _columns(drop_columns, head, path)
    time, label, index = _roles(head, body, dropped)
    if index is not None and time is None:
        time = index
        warnings.warn(f"{path}: column {head[index]!r} counts the rows (a row index): it orders the steps and "
                      "is not read as a channel", UserWarning, stacklevel=2)
    elif index is not None:
        warnings.warn(f"{path}: column {head[index]!r} counts the rows (a row index), so it is left out; "
                      f"--drop-columns {head[index] or index} (drop_columns=) says so and silences this",
                      UserWarning, stacklevel=2)
    channels = [i for i in range(len(head)) if i not in (time, label, index) and i not in dropped]
    if not channels:
        raise ValueError(f"{path} has no numeric columns besides its time, label and dropped columns")
    values = np.empty((len(body), len(channels)), dtype=np.float32)
    for t, r in enumerate(body):
        for j, i in enumerate(channels):
            try:
                values[t, j] = float(r[i])
            except ValueError:
                raise ValueError(f"{path}: non-numeric value {r[i]!r} in column {head[i]!r} on line {t + 2}; "
                                 f"--drop-columns {head[i]} (drop_columns=) leaves it out") from None
    labels = None
    if label is not None:
        labels = np.array([float(r[label]) if _is_float(r[label]) else np.nan for r in body])
        if not np.isin(labels, (0, 1)).all():
            raise ValueError(f"{path}: the label column {head[label]!r} must hold 0 or 1")
    stamps = [r[time] for r in body] if time is not None else None
    order = _time_order(stamps, head[time], path) if stamps is not None else np.arange(len(body))
    x = as_series(values[order], str(path))
    return SeriesFile(x, [head[i] for i in channels], [stamps[i] for i in order] if stamps is not None else None,
                      labels[order] if labels is not None else None)


def _columns(names: Sequence[str], head: list[str], path: Path) -> set[int]:
    """The 0-based indices of the columns ``names`` (header names or indices), each checked."""
    out = set()
    for name in names:
        name = str(name).strip()
        if name in head:
            out.add(head.index(name))
        elif name.isdigit() and int(name) < len(head):
            out.add(int(name))
        else:
            raise ValueError(f"{path}: no column {name!r} to drop; its columns are {', '.join(map(repr, head))}")
    return out


def _roles(head: list[str], body: list[list[str]], dropped: set[int]) -> tuple[int | None, int | None, int | None]:
    """The time, label and row-index columns (or None) among those not dropped."""
    lower = [h.lower() for h in head]
    kept = [i for i in range(len(head)) if i not in dropped]
    time = next((i for i in kept if lower[i] in TIME_NAMES), None)
    if time is None:
        time = next((i for i in kept if not _is_float(body[0][i])), None)
    label = next((i for i in kept if lower[i] in LABEL_NAMES and i != time), None)
    index = next((i for i in kept if i not in (time, label) and _counts_rows(lower[i], [r[i] for r in body])), None)
    return time, label, index


def _counts_rows(name: str, values: list[str]) -> bool:
    """Whether a column is a row index: consecutive integers k, k ± 1, k ± 2, … over ten rows at least, or over
    three under an index's name (pandas writes its index unnamed)."""
    if len(values) < (3 if name in INDEX_NAMES else 10) or not all(v.strip().lstrip("-").isdigit() for v in values):
        return False
    d = np.diff(np.array(values, dtype=np.int64))
    return bool(np.all(d == 1) or np.all(d == -1))  # written oldest or newest first


def _time_order(stamps: list[str], name: str, path: Path) -> np.ndarray:
    """The row order, oldest first, that the time column ``stamps`` gives; refuses disorder and repeats, warns
    of a file written backwards and of gaps."""
    T = len(stamps)
    if T < 2:
        return np.arange(T)
    t = _parse_times(stamps)
    if t is None:
        warnings.warn(f"{path}: the time column {name!r} holds values like {stamps[0]!r}, neither numbers nor ISO "
                      "dates: the file's order is taken as the time order", UserWarning, stacklevel=3)
        return np.arange(T)
    order = np.arange(T)
    d = np.diff(t)
    if (d < 0).all():
        warnings.warn(f"{path} runs backwards in time (column {name!r}, newest first): it is read oldest first",
                      UserWarning, stacklevel=3)
        order, t, d = order[::-1], t[::-1], -d[::-1]
    if (d == 0).any():
        i = int(np.argmax(d == 0))
        raise ValueError(f"{path}: time {stamps[order[i]]!r} appears twice in column {name!r} (lines {order[i] + 2} "
                         f"and {order[i + 1] + 2}); a series has one row per step")
    if (d < 0).any():
        i = int(np.argmax(d < 0))
        raise ValueError(f"{path} is not in time order: line {i + 3} ({stamps[i + 1]!r}) comes after line {i + 2} "
                         f"({stamps[i]!r}) in column {name!r}; sort the file by {name!r} first")
    usual = float(np.median(d))
    gaps = np.flatnonzero(d > GAP * usual)
    if len(gaps):
        i = int(gaps[np.argmax(d[gaps])])
        warnings.warn(f"{path}: {len(gaps)} gap(s) in time (column {name!r}): the largest between "
                      f"{stamps[order[i]]!r} and {stamps[order[i + 1]]!r}, {d[i] / usual:.1f} times the usual step; "
                      "missing steps are not filled in: the steps either side of a gap are read as neighbours",
                      UserWarning, stacklevel=3)
    return order


def _parse_times(stamps: list[str]) -> np.ndarray | None:
    """The time column as numbers (seconds for dates), or None when it is neither numbers nor ISO 8601."""
    if all(_is_float(s) for s in stamps):
        return np.array(stamps, dtype=np.float64)
    try:
        parsed = [datetime.fromisoformat(s.strip()) for s in stamps]
    except ValueError:
        return None
    if len({p.tzinfo is None for p in parsed}) > 1:
        return None  # naive and zoned times cannot be compared
    base = parsed[0]
    return np.array([(p - base).total_seconds() for p in parsed])
