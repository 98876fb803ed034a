"""The novelty of a window's code: what reconstruction error misses in a series.

A sequence autoencoder generalises: a window whose pattern never occurred in training (a square wave that
stops switching, a plateau at an unusual level) is often reconstructed as well as a normal one, because it is
smooth and easy. Its code is not typical, though: it lies far from the codes of the training windows. The
series detector adds this distance — the k-th nearest training window's code, in the code space the model
learned (Sub-KNN on the raw windows, TSB-AD's baseline, does the same in the input space) — to the
reconstruction error, each part standardised by the median and IQR of its values on the training series
(:func:`robust_scale`), so the two weigh the same whatever their units:

    score(step) = z(reconstruction error of the step) + z(mean novelty of the windows that contain it)

The training windows' own novelty leaves each window out of its own neighbours (its shifted neighbours, one
step away, stay in: they are what a normal window of a new series meets too). At most ``REFERENCE``
training windows are kept (every s-th), so scoring a step costs one k-NN query in a fixed set. Chosen on the
real series of ``benchmarks/series_anomaly.py`` (README, Benchmarks).

Example
-------
>>> import aekit, torch
>>> from aekit.evaluation.series import windows
>>> _ = torch.manual_seed(0)
>>> t = np.arange(900)
>>> z = np.sign(np.sin(2 * np.pi * t / 30)) + 0.05 * np.random.default_rng(0).normal(size=900)  # a square wave
>>> z = z[:, None].astype(np.float32)
>>> model = aekit.create("tcn", (30, 1))
>>> _ = aekit.fit(model, windows(z[:600], 30, 2)[0], epochs=3, progress=False, seed=0)
>>> codes, spread, _ = reference(model, z[:600])
>>> y = z[600:].copy()
>>> y[150:210, 0] = np.sin(2 * np.pi * np.arange(60) / 30)  # a stretch of sine
>>> s = step_scores(model, y, index(codes), spread)
>>> sorted({int(i) // 30 for i in np.argsort(-s)[:20]})  # the highest scores: in the sine's stretch, steps 150–209
[5, 6]
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

from ..core.model import Autoencoder
from .series import errors, per_step, starts_of

NEIGHBOURS = 5  # the k of the k-th nearest training code (PyOD's and TSB-AD's Sub-KNN default)
REFERENCE = 20_000  # training windows kept as the reference set, at most
IQR_TO_SD = 1.349  # the interquartile range of a standard normal


def reference(model: Autoencoder, z: np.ndarray, how: str = "mean"
              ) -> tuple[np.ndarray, dict[str, tuple[float, float]], np.ndarray]:
    """What scoring with code novelty needs from the training series ``z`` (T, C), standardised as the model
    reads it: the reference codes ``(N, K)`` (every training window, or ``REFERENCE`` evenly spaced ones) and
    the (median, scale) on ``z`` of the reconstruction error per ``"step"`` (combined over windows by ``how``)
    and per ``"window"``, and of the novelty per ``"novelty_window"`` and ``"novelty_step"``; and the step
    scores of ``z`` itself, as :func:`step_scores` gives them."""
    n = len(z) - int(model.input_shape[0]) + 1
    if n < 2:
        raise ValueError("the training series holds one window: code novelty needs at least two "
                         "(code_novelty=False scores by reconstruction alone)")
    step, starts, window, codes = errors(model, z, how=how, codes=True)  # every window's code: (n, K)
    ref = starts_of(len(z), int(model.input_shape[0]), -(-n // REFERENCE))  # all windows, or every s-th and the last
    nn = index(codes[ref])
    k = min(NEIGHBOURS, len(ref) - 1)
    d = nn.kneighbors(codes[ref], n_neighbors=k + 1)[0]
    own = d[:, k]  # the k-th nearest other window (the nearest is the window itself)
    spread = {"step": robust_scale(step), "window": robust_scale(window), "novelty_window": robust_scale(own),
              "novelty_step": robust_scale(per_step(own, starts[ref], len(z)))}
    # z's own step scores, as step_scores gives them: a window counts itself among its neighbours
    plain = d[:, min(NEIGHBOURS, len(ref)) - 1] if len(ref) == n else kth(nn, codes)
    return codes[ref], spread, standard(step, spread["step"]) + standard(per_step(plain, starts, len(z)),
                                                                         spread["novelty_step"])


def step_scores(model: Autoencoder, z: np.ndarray, nn: NearestNeighbors, spread: dict[str, tuple[float, float]],
                how: str = "mean") -> np.ndarray:
    """Each step's anomaly score ``(T,)`` (higher is more anomalous): the robust z of its reconstruction error
    (combined over the windows that hold it by ``how``) + the robust z of those windows' mean novelty."""
    step, starts, _, codes = errors(model, z, how=how, codes=True)
    return (standard(step, spread["step"])
            + standard(per_step(kth(nn, codes), starts, len(z)), spread["novelty_step"]))


def window_scores(model: Autoencoder, z: np.ndarray, nn: NearestNeighbors, spread: dict[str, tuple[float, float]],
                  stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The first steps ``(N,)`` of the windows of ``z`` every ``stride`` steps and their anomaly scores ``(N,)``:
    the robust z of the window's mean reconstruction error + the robust z of its novelty."""
    _, starts, error, codes = errors(model, z, stride, codes=True)
    return starts, standard(error, spread["window"]) + standard(kth(nn, codes), spread["novelty_window"])


def index(codes: np.ndarray) -> NearestNeighbors:
    """A k-NN index of the reference codes."""
    return NearestNeighbors().fit(codes)


def kth(nn: NearestNeighbors, codes: np.ndarray, leave_out: bool = False) -> np.ndarray:
    """Each code's novelty ``(N,)``: its distance to the k-th nearest reference code (``leave_out``: the codes
    are the reference's own, and each one's nearest, itself, does not count)."""
    k = min(NEIGHBOURS, nn.n_samples_fit_ - int(leave_out))
    return nn.kneighbors(codes, n_neighbors=k + int(leave_out))[0][:, -1]


def standard(values: np.ndarray, location_scale: tuple[float, float]) -> np.ndarray:
    """(values − median) / scale, with a training part's (median, scale)."""
    return (values - location_scale[0]) / location_scale[1]


def robust_scale(s: np.ndarray) -> tuple[float, float]:
    """(median, IQR / 1.349) of scores ``s``: a location and a scale that a few extreme rows cannot move."""
    q1, med, q3 = np.percentile(s, [25, 50, 75])
    scale = (q3 - q1) / IQR_TO_SD
    if not scale > 0:  # all (or most) scores equal: fall back on the standard deviation, then on 1
        scale = float(np.std(s)) or 1.0
    return float(med), float(scale)
