"""Range-based precision, recall and F1 of anomaly detections in a series (Tatbul et al. 2018, "Precision and
Recall for Time Series"): anomalies that last several steps are ranges, and a detection is judged by how much
of each range it covers and how many pieces it cuts it into, not step by step.

Flat positional bias and reciprocal cardinality (a range hit by n separate detections earns 1/n of its
overlap), the defaults of TimeEval and aeon. Precision has no existence reward (the paper's definition);
recall's weight ``alpha`` on it is 0 by default, which makes both the classical scores where every anomaly and
every detection is a single step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._checks import Interval, check


def anomaly_ranges(labels: Any) -> np.ndarray:
    """The runs of 1s in a 0/1 series: ``(n, 2)``, the first and last step of each (both included).

    Example
    -------
    >>> anomaly_ranges([0, 1, 1, 0, 0, 1]).tolist()
    [[1, 2], [5, 5]]
    """
    y = _binary(labels, "labels")
    edges = np.diff(np.r_[0, y, 0])
    return np.c_[np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1]


def _binary(labels: Any, what: str) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or not np.isin(y, (0, 1)).all():
        raise ValueError(f"{what} must be a 1-D series of 0s and 1s, got shape {y.shape} with values "
                         f"{np.unique(y)[:5].tolist()}")
    return y.astype(np.int8)


def _score(these: np.ndarray, those: np.ndarray, alpha: float) -> float:
    """Mean over ``these`` ranges of α·(overlaps any of ``those``) + (1 − α)·(cardinality factor)·(share of
    the range covered by ``those``)."""
    if len(these) == 0:
        return 0.0
    lo = np.maximum(these[:, None, 0], those[None, :, 0])
    hi = np.minimum(these[:, None, 1], those[None, :, 1])
    overlap = np.clip(hi - lo + 1, 0, None)  # (these, those): steps in common
    hits = (overlap > 0).sum(1)
    cover = overlap.sum(1) / (these[:, 1] - these[:, 0] + 1)  # flat bias: every step of a range counts the same
    cardinality = 1.0 / np.maximum(hits, 1)
    return float(np.mean(alpha * (hits > 0) + (1 - alpha) * cardinality * cover))


def range_precision_recall(labels: Any, predicted: Any, alpha: float = 0.0) -> tuple[float, float]:
    """Range-based precision and recall of the 0/1 detections ``predicted`` against the 0/1 ``labels``.

    Precision: the mean over detected ranges of the share of each that lies in anomalies (0 when nothing is
    detected). Recall: the mean over anomalous ranges of α·(detected at all) + (1 − α)·(the share of it
    covered), a range cut into n detections earning 1/n of its share.

    Example
    -------
    >>> range_precision_recall([0, 1, 1, 1, 1, 0], [0, 0, 0, 1, 1, 1])  # half the range, 2/3 of the detection
    (0.6666666666666666, 0.5)
    """
    y, p = _binary(labels, "labels"), _binary(predicted, "predicted")
    if len(y) != len(p):
        raise ValueError(f"labels and predicted must have the same length, got {len(y)} and {len(p)}")
    if not y.any():
        raise ValueError("labels has no anomalous step: range recall is undefined")
    check(alpha, "alpha", Interval(float, 0, 1))
    return _precision_recall(anomaly_ranges(y), anomaly_ranges(p), alpha)


def _precision_recall(real: np.ndarray, pred: np.ndarray, alpha: float) -> tuple[float, float]:
    return _score(pred, real, 0.0), _score(real, pred, alpha)


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def range_f1(labels: Any, predicted: Any, alpha: float = 0.0) -> float:
    """The harmonic mean of :func:`range_precision_recall` (0 when both are 0).

    Example
    -------
    >>> round(range_f1([0, 1, 1, 1, 1, 0], [0, 0, 0, 1, 1, 1]), 4)
    0.5714
    """
    return _f1(*range_precision_recall(labels, predicted, alpha))


def best_range_f1(labels: Any, scores: Any, thresholds: int = 200, alpha: float = 0.0) -> tuple[float, float]:
    """The best :func:`range_f1` of ``scores ≥ t`` (higher is more anomalous) over about ``thresholds``
    thresholds t, and that t: an oracle's threshold, for comparing detectors.

    The thresholds are the k-th highest scores for k on a geometric grid from 1 to the series' length, dense
    where few steps are flagged (every k up to about ``thresholds``/7 for 1,000 steps), which is where rare
    anomalies are told apart.

    Example
    -------
    >>> best_range_f1([0, 0, 1, 1, 0, 0], [0.1, 0.2, 0.9, 0.8, 0.3, 0.1])
    (1.0, 0.8)
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != np.shape(labels) or not np.isfinite(s).all():
        raise ValueError(f"scores must be finite, one per label: got shape {s.shape} for {np.shape(labels)} labels")
    check(thresholds, "thresholds", Interval(int, 1))
    range_precision_recall(labels, labels, alpha)  # the labels and alpha checked once
    real = anomaly_ranges(labels)  # found once, not per threshold
    ranked = np.sort(s)[::-1]
    ks = np.unique(np.geomspace(1, len(s), thresholds).round().astype(int))  # steps flagged (before ties)
    best = (-1.0, float(ranked[0]))
    for t in np.unique(ranked[ks - 1])[::-1]:  # the highest first: of equal F1, the strictest threshold
        f = _f1(*_precision_recall(real, anomaly_ranges((s >= t).astype(np.int8)), alpha))
        if f > best[0]:
            best = (f, float(t))
    return best
