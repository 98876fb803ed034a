"""Long series cut into windows, and window scores mapped back to time steps.

A series is an array ``(T, C)`` (``(T,)`` is one channel). :func:`windows` cuts it into overlapping
windows ``(N, length, C)`` that a sequence preset trains on; the last window is aligned to the series'
end, so every step lies in at least one window. :func:`per_step` turns scores of windows — one per
window, or one per step of each window, such as :func:`step_errors` — into one score per time step:
the mean over the windows that contain the step, so a detector's output lines up with the series.

Example
-------
>>> x = np.arange(10.0)
>>> w, starts = windows(x, 4, 3)
>>> w.shape, starts.tolist()
((3, 4, 1), [0, 3, 6])
>>> per_step(np.array([1.0, 2.0, 3.0]), starts, 10).tolist()
[1.0, 1.0, 1.0, 1.5, 2.0, 2.0, 2.5, 3.0, 3.0, 3.0]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.preprocessing import StandardScaler

from .._checks import OneOf, check, integer
from ..core.model import Autoencoder
from ..store.data import Dataset, Split
from ..store.series import SeriesFile, as_series, read_series
from .metrics import batched


def starts_of(T: int, length: int, stride: int) -> np.ndarray:
    """First steps of the windows of ``length`` every ``stride`` steps over T, the last one ending at T."""
    length, stride = integer(length, "window length"), integer(stride, "stride")
    if length > T:
        raise ValueError(f"window length {length} is longer than the series ({T} steps)")
    starts = np.arange(0, T - length + 1, stride)
    if starts[-1] != T - length:  # the tail the stride would skip gets a window of its own
        starts = np.append(starts, T - length)
    return starts


def windows(series: Any, length: int, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Windows ``(N, length, C)`` of ``series`` (T, C) every ``stride`` steps, and their first steps ``(N,)``."""
    x = as_series(series)
    starts = starts_of(len(x), length, stride)
    view = np.lib.stride_tricks.sliding_window_view(x, length, axis=0)  # (T − length + 1, C, length)
    return np.ascontiguousarray(view[starts].transpose(0, 2, 1)), starts


def per_step(scores: Any, starts: np.ndarray, T: int) -> np.ndarray:
    """One score per time step ``(T,)`` from window scores: ``(N,)`` (one per window) or ``(N, length)``
    (one per step of each window); each step gets the mean over the windows that contain it.

    With one score per window, the windows' length is read off the last one, which ends at step T
    (as :func:`windows` cuts them)."""
    s, starts = np.asarray(scores, dtype=np.float64), np.asarray(starts)
    if s.ndim not in (1, 2) or len(s) != len(starts) or len(s) == 0:
        raise ValueError(f"scores must have shape (N,) or (N, length) for N = {len(starts)} windows, got {s.shape}")
    if s.ndim == 1:
        s = np.repeat(s[:, None], int(T - starts[-1]), 1)
    steps = (starts[:, None] + np.arange(s.shape[1])).ravel()
    if steps.min() < 0 or steps.max() >= T:
        raise ValueError(f"the windows reach steps {steps.min()}..{steps.max()}, outside a series of {T} steps")
    counts = np.bincount(steps, minlength=T)
    if (counts == 0).any():
        raise ValueError(f"step {int(np.argmin(counts))} lies in no window")
    return np.bincount(steps, weights=s.ravel(), minlength=T) / counts


def step_errors(model: Autoencoder, w: np.ndarray) -> np.ndarray:
    """Squared reconstruction error of each step of each window, summed over channels: ``(N, length)``."""
    return _step_errors(model, w)[0]


def _step_errors(model: Autoencoder, w: np.ndarray, codes: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`step_errors` and, with ``codes``, the codes ``(N, K)`` the decoder read (one encoder pass for both)."""
    x = np.asarray(w, dtype=np.float32).reshape(len(w), -1)
    if not codes:
        return ((x - batched(model.reconstruct, model, x)) ** 2).reshape(w.shape).sum(-1), None
    h = batched(model.code, model, x)
    return ((x - batched(model.decode, model, h)) ** 2).reshape(w.shape).sum(-1), h


def _window_chunks(model: Autoencoder, x: np.ndarray, stride: int, chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The windows of series ``x`` (T, C) the model reads (its ``input_shape[0]`` steps), every ``stride`` steps,
    ``chunk`` at a time: ``(windows (n, length, C), the steps they cover, flat (n · length,))``."""
    length = int(model.input_shape[0])
    if model.input_size != length * x.shape[1]:
        raise ValueError(f"the model reads windows of shape {model.input_shape}; the series has {x.shape[1]} channels")
    starts = starts_of(len(x), length, stride)
    view = np.lib.stride_tricks.sliding_window_view(x, length, axis=0)  # (T − length + 1, C, length), no copy
    for i in range(0, len(starts), chunk):
        part = starts[i:i + chunk]
        yield view[part].transpose(0, 2, 1), (part[:, None] + np.arange(length)).ravel()


def series_errors(model: Autoencoder, z: Any, stride: int = 1, how: str = "mean", chunk: int = 8192) -> np.ndarray:
    """Per-step reconstruction error of a whole series ``z`` (T, C), shape (T,): the squared error of each
    step summed over channels, over the windows (every ``stride`` steps, the last at the end) that contain
    the step: their mean (``how="mean"``), or the smallest (``"min"``: a step is only as bad as its best
    reconstruction, so an anomaly does not smear over the steps that share windows with it). Windows are
    cut ``chunk`` at a time, so a long series never exists as all its windows. The window length is the
    model's (its ``input_shape[0]``)."""
    return errors(model, z, stride, how, chunk)[0]


def window_errors(model: Autoencoder, z: Any, stride: int = 1, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Reconstruction error of each window of a whole series ``z`` (T, C), every ``stride`` steps (the last at
    the end): the first steps ``(N,)`` and the mean over the window's steps of their squared error summed
    over channels ``(N,)`` (the units of :func:`series_errors`). Cut ``chunk`` windows at a time."""
    return errors(model, z, stride, "mean", chunk)[1:]


def errors(model: Autoencoder, z: Any, stride: int = 1, how: str = "mean", chunk: int = 8192, codes: bool = False
           ) -> tuple[np.ndarray, ...]:
    """:func:`series_errors` and :func:`window_errors` from one pass of the model over the windows: the
    per-step errors ``(T,)``, the windows' first steps ``(N,)`` and their mean errors ``(N,)``; with ``codes``,
    the windows' codes ``(N, K)`` too, from the same encoder pass (:meth:`Autoencoder.code`: the code the decoder
    reads, a variational model's posterior mean)."""
    x = as_series(z)
    check(how, "how", OneOf("mean", "min"))
    sums, counts, low = np.zeros(len(x)), np.zeros(len(x)), np.full(len(x), np.inf)
    starts, means, hs = [], [], []
    for w, steps in _window_chunks(model, x, stride, chunk):
        e, h = _step_errors(model, w, codes)  # (n, length), (n, K) or None
        starts.append(steps[:: w.shape[1]])  # each window's first step
        means.append(e.mean(1))
        hs.append(h)
        if how == "min":
            np.minimum.at(low, steps, e.ravel())
        else:
            sums += np.bincount(steps, weights=e.ravel(), minlength=len(x))
            counts += np.bincount(steps, minlength=len(x))
    out = (low if how == "min" else sums / counts, np.concatenate(starts), np.concatenate(means))
    return (*out, np.concatenate(hs)) if codes else out


def series_reconstruction(model: Autoencoder, z: Any, chunk: int = 8192) -> np.ndarray:
    """The model's reconstruction of a whole series ``z`` (T, C), shape (T, C): each step's reconstruction
    averaged over every window that contains it (cut ``chunk`` windows at a time)."""
    x = as_series(z)
    sums, counts = np.zeros(x.shape), np.zeros(len(x))
    for w, steps in _window_chunks(model, x, 1, chunk):
        r = batched(model.reconstruct, model, np.ascontiguousarray(w).reshape(len(w), -1))
        np.add.at(sums, steps, r.reshape(-1, x.shape[1]))
        counts += np.bincount(steps, minlength=len(x))
    return sums / counts[:, None]


def standardizer(train: Any) -> StandardScaler:
    """Per-channel standardisation fitted on a training series ``(T, C)`` (a constant channel is only centred)."""
    return StandardScaler().fit(as_series(train, "training series"))


# ---------------------------------------------------------------------------- series files


def train_cut(T: int, train_steps: int | None = None, test_fraction: float = 0.2) -> int:
    """How many of a series' T steps train: ``train_steps``, or the first ``1 − test_fraction`` of them."""
    return int(round(T * (1 - test_fraction))) if train_steps is None else integer(train_steps, "train steps")


def series_split(path: str | Path, window: int, stride: int = 1, test_fraction: float = 0.2,
                 train_steps: int | None = None, drop_columns: Sequence[str] = ()):
    """A :class:`~aekit.store.data.Split` of windows of the series in ``path`` (read by
    :func:`~aekit.store.series.read_series`, ``drop_columns`` left out): its first ``train_steps`` steps train
    (by default the first ``1 − test_fraction`` of them), the rest test — a series splits in time, never at random;
    both standardised per channel with the training part's statistics, which the split's ``scaler`` attribute
    keeps; ``series`` holds the standardised test part as a :class:`SeriesFile` (the report draws its score track)."""
    f = read_series(path, drop_columns)
    cut = train_cut(len(f.x), train_steps, test_fraction)
    if cut < window or len(f.x) - cut < window:
        how = f"the first {train_steps} train" if train_steps is not None else "split in time"
        raise ValueError(f"{path}: {len(f.x)} steps, {how}: {min(cut, len(f.x))} / {max(len(f.x) - cut, 0)}; each "
                         f"part needs at least window={window} steps")
    scaler = standardizer(f.x[:cut])
    parts = []
    for name, part in (("train", f.x[:cut]), ("test", f.x[cut:])):
        w, _ = windows(scaler.transform(part).astype(np.float32), window, stride)
        parts.append(Dataset(w.reshape(len(w), -1), None, (window, f.x.shape[1]), f"{Path(path).name} ({name})"))
    split = Split(*parts)
    split.scaler = scaler
    labels = f.labels[cut:] if f.labels is not None else None
    split.series = SeriesFile(scaler.transform(f.x[cut:]).astype(np.float32), f.names,
                              f.time[cut:] if f.time is not None else None, labels)  # the test part, for the report
    return split
