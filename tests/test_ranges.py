"""Range-based precision, recall and F1 (aekit.evaluation.ranges) against hand-computed values and their special cases."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, precision_score, recall_score

from aekit.evaluation.ranges import anomaly_ranges, best_range_f1, range_f1, range_precision_recall


def _series(T, *runs):
    y = np.zeros(T, dtype=int)
    for a, b in runs:
        y[a:b + 1] = 1
    return y


def test_a_hand_computed_example():
    y = _series(20, (2, 5), (10, 11))
    p = _series(20, (4, 6), (10, 10), (15, 15))
    assert anomaly_ranges(p).tolist() == [[4, 6], [10, 10], [15, 15]]
    precision, recall = range_precision_recall(y, p)
    # precision: [4, 6] lies 2/3 in anomalies, [10] wholly, [15] not at all; recall: each range half covered
    assert precision == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert recall == pytest.approx(0.5)
    assert range_f1(y, p) == pytest.approx(10 / 19)
    # alpha rewards detecting a range at all: both ranges are detected
    assert range_precision_recall(y, p, alpha=0.5)[1] == pytest.approx(0.5 * 1 + 0.5 * 0.5)


def test_a_range_cut_into_pieces_earns_the_reciprocal_of_their_number():
    y = _series(12, (0, 9))
    p = _series(12, (0, 1), (5, 6))
    assert range_precision_recall(y, p) == pytest.approx((1.0, 0.5 * (2 + 2) / 10))
    assert range_f1(y, y) == 1.0
    assert range_precision_recall(y, np.zeros(12, int)) == (0.0, 0.0)
    assert range_f1(y, np.zeros(12, int)) == 0.0


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_single_step_anomalies_and_detections_give_the_classical_scores(seed):
    """Where no two anomalous (or detected) steps touch, every range is one step: the classical scores."""
    rng = np.random.default_rng(seed)
    T = 60

    def points():
        y = np.zeros(T, int)
        y[rng.choice(np.arange(0, T, 2), rng.integers(1, 10), replace=False)] = 1  # even steps: never adjacent
        return y

    y, p = points(), points()
    precision, recall = range_precision_recall(y, p)
    assert precision == pytest.approx(precision_score(y, p, zero_division=0))
    assert recall == pytest.approx(recall_score(y, p))
    assert range_f1(y, p) == pytest.approx(f1_score(y, p, zero_division=0))


def test_the_best_threshold_is_found_among_the_scores():
    y = _series(30, (10, 14))
    s = np.linspace(0, 1, 30) * 0.1
    s[10:15] = [0.5, 0.9, 0.8, 0.7, 0.6]
    f, t = best_range_f1(y, s)
    assert (f, t) == (1.0, 0.5)
    f, t = best_range_f1(y, -s)  # scores that point the wrong way cannot reach it
    assert f < 0.5


def test_bad_input_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="labels must be a 1-D series of 0s and 1s"):
        range_f1([0, 2, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="same length, got 3 and 2"):
        range_f1([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="no anomalous step"):
        range_f1([0, 0, 0], [0, 1, 1])
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\], got 2"):
        range_precision_recall([0, 1], [0, 1], alpha=2)
    with pytest.raises(ValueError, match="scores must be finite, one per label"):
        best_range_f1([0, 1, 0], [0.1, np.nan, 0.2])
