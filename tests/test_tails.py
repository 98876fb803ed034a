"""Each feature's tails in the detector's score: empirical distribution functions, against counting."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import aekit.estimators._base as base
from aekit.estimators import AutoencoderOutlierDetector
from aekit.evaluation.novelty import robust_scale
from aekit.estimators._tails import GRID, fit, surprise


def by_counting(train: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Σⱼ −log max(min(share ≤ xⱼ, share ≥ xⱼ), 1/(n+1)), by comparing every row with every training row."""
    low = (train[None, :, :] <= x[:, None, :]).mean(1)
    high = (train[None, :, :] >= x[:, None, :]).mean(1)
    return -np.log(np.maximum(np.minimum(low, high), 1 / (len(train) + 1))).sum(1)


def test_surprise_is_exact_below_the_grid_with_ties_and_values_never_seen():
    rng = np.random.default_rng(0)
    train = np.c_[rng.integers(0, 4, 300), rng.normal(size=300), rng.integers(0, 2, 300)].astype(float)
    x = np.vstack([train[:50], [[-1.0, 9.0, 1.003], [1.5, 0.0, 0.5], [3.0, -9.0, -0.01]]])
    np.testing.assert_allclose(surprise(x, fit(train)), by_counting(train, x), rtol=1e-12)


def test_surprise_from_the_grid_is_within_its_spacing_of_counting():
    rng = np.random.default_rng(1)
    train, x = rng.standard_t(3, size=(20_000, 2)), rng.standard_t(3, size=(500, 2))
    g = fit(train)
    assert len(g["ranks"]) == GRID and g["ranks"][0] == 1 and g["ranks"][-1] == 20_000
    for j in range(2):  # one feature at a time: the tail share itself, not the sum of its logarithms
        one = {**g, "values": np.asarray(g["values"])[:, [j]]}
        share, exact = np.exp(-surprise(x[:, [j]], one)), np.exp(-by_counting(train[:, [j]], x[:, [j]]))
        assert np.all(share <= exact + 1e-12) and np.all(exact - share <= 1 / (GRID - 1) + 1e-12)


def test_a_constant_feature_scores_zero_and_any_other_value_the_floor():
    g = fit(np.ones((9, 1)))
    assert surprise(np.array([[1.0], [1.0 + 1e-9], [-3.0]]), g) == pytest.approx([0.0, np.log(10), np.log(10)])


def flags_with_values_off_their_range() -> tuple[np.ndarray, np.ndarray]:
    """Independent 0/1 flags and two Gaussian features; anomalies draw each feature from its own
    marginal (ADBench's dependency type) with the flags nudged past their range by 0.01."""
    rng = np.random.default_rng(0)
    x = np.c_[rng.integers(0, 2, size=(400, 8)), rng.normal(size=(400, 2))].astype(float)
    a = np.c_[rng.integers(0, 2, size=(20, 8)) * 1.02 - 0.01, rng.normal(size=(20, 2))]
    return np.vstack([x, a]), np.r_[np.zeros(400), np.ones(20)]


def test_tails_find_flags_past_their_range_that_reconstruction_misses():
    X, y = flags_with_values_off_their_range()
    auc = {t: roc_auc_score(y, -AutoencoderOutlierDetector(tails=t, epochs=10, random_state=0).fit(X).score_samples(X))
           for t in (False, True)}
    assert auc[False] < 0.75 and auc[True] > 0.95


def test_detector_score_averages_the_standardised_parts_and_survives_save_and_load(tmp_path):
    X = flags_with_values_off_their_range()[0].astype(np.float32)  # as the detector reads it
    det = AutoencoderOutlierDetector(n_estimators=1, code_density=False, epochs=3, random_state=0).fit(X)
    assert det.tails_["n"] == len(X) and det.tails_["values"] == fit(X)["values"]  # "auto": a table has them
    ae, t = base._score(det.model_, X, det.seed_), by_counting(X, X)
    (la, sa), (lt, st) = robust_scale(ae), robust_scale(t)
    np.testing.assert_allclose(det.tails_["scales"], [[la, sa], [lt, st]], rtol=1e-6)
    np.testing.assert_allclose(det.score_samples(X), ((ae - la) / sa - (t - lt) / st) / 2, rtol=1e-5, atol=1e-6)
    assert det.offset_ == pytest.approx(np.percentile(det.score_samples(X), 100 * det.contamination))
    loaded = AutoencoderOutlierDetector.load(det.save(tmp_path / "det"))
    np.testing.assert_array_equal(loaded.score_samples(X), det.score_samples(X))
    del loaded.tails_  # as a detector saved before tails: the autoencoder's score alone
    np.testing.assert_allclose(loaded.score_samples(X), ae, rtol=1e-6)


def test_auto_gives_tables_the_tails_but_not_wide_data():
    rng = np.random.default_rng(0)
    fitted = lambda X, **kw: AutoencoderOutlierDetector(n_estimators=1, epochs=1, random_state=0, **kw).fit(X)  # noqa: E731
    assert fitted(rng.normal(size=(60, 6))).tails_ and fitted(rng.normal(size=(60, 6)), preset="vae").tails_
    assert fitted(rng.normal(size=(60, 101))).tails_ == {} and fitted(rng.normal(size=(60, 101)), tails=True).tails_
    assert fitted(rng.normal(size=(60, 6)), tails=False).tails_ == {}
    with pytest.raises(ValueError, match="tails must be True, False or 'auto', got 'yes'"):
        fitted(rng.normal(size=(60, 6)), tails="yes")
