"""Issue 39: the series benchmark's VUS-PR is the reference package's (aeon's ``range_pr_vus_score``, Paparrizos
et al. 2022), called with the benchmark's conventions: 0/1 labels per step, higher scores more anomalous, buffers
up to the window."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _series_data import period, vus_pr  # noqa: E402


def _example():
    y = np.zeros(40, int)
    y[10], y[25:28] = 1, 1
    s = np.linspace(0, 1, 40)[::-1] * 0.5
    s[10], s[26], s[3] = 0.9, 0.7, 0.8
    return y, s


def test_vus_pr_is_aeons_on_a_fixed_example():
    from aeon.benchmarking.metrics.anomaly_detection import range_pr_vus_score

    y, s = _example()
    for buffer in (0, 5, 20):
        assert vus_pr(y, s, buffer) == range_pr_vus_score(y.astype(bool), s, max_buffer_size=buffer)
    # the values aeon 1.6 gives: a change in the package (or in how the benchmark calls it) shows here
    assert round(vus_pr(y, s, 0), 6) == 0.399000
    assert round(vus_pr(y, y.astype(float), 5), 6) == 0.927358


def test_vus_pr_ranks_a_perfect_score_over_a_random_one_over_an_inverted_one():
    y, s = _example()
    noise = np.random.default_rng(0).random(40)
    assert vus_pr(y, y.astype(float), 5) > vus_pr(y, noise, 5) > vus_pr(y, -y.astype(float) + noise * 1e-3, 5)


def test_the_window_is_the_dominant_period():
    t = np.arange(3000)
    x = np.sin(2 * np.pi * t / 37) + 0.1 * np.random.default_rng(0).normal(size=3000)
    assert abs(period(x[:, None]) - 37) <= 1
    assert period(np.random.default_rng(1).normal(size=(500, 1))) >= 8  # no period: the smallest window or a peak
