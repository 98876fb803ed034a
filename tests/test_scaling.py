"""The detector's ``scale``: per-feature standardisation with a floor, against NumPy, streamed like arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aekit.estimators import AutoencoderOutlierDetector
from aekit.estimators._scaling import FLOOR, ScaledRows, fit_scale, scaled
from aekit.store.rows import ArrayRows

FAST = dict(n_components=3, hidden=(8,), epochs=3, batch_size=16, random_state=0)


def by_numpy(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sd = x.astype(np.float64).std(0)
    return x.astype(np.float64).mean(0), np.maximum(sd, FLOOR * np.sqrt((sd**2).mean()))


def test_fit_scale_matches_numpy_chunk_by_chunk_for_arrays_and_stored_rows():
    rng = np.random.default_rng(0)
    # 5,000 rows of 500 float32 features: 10 MB, read in two unequal chunks of ~8 MB
    x = (rng.normal(size=(5000, 500)) * 10 ** rng.uniform(-2, 1, 500) + 100).astype(np.float32)
    x[:, 7] = 3.0  # a constant feature: only centred (its scale is the floor)
    rows = ArrayRows(x)
    assert len(list(rows.chunks())) == 2
    center, scale = by_numpy(x)
    assert (scale > x.std(0)).sum() > 50  # the floor binds on the narrow features
    for data in (x, rows):
        c, s = fit_scale(data)
        assert c.dtype == s.dtype == np.float32
        np.testing.assert_allclose(c, center, rtol=1e-6)
        np.testing.assert_allclose(s, scale, rtol=1e-5)
    np.testing.assert_array_equal(scaled(x, *fit_scale(x))[:, 7], 0.0)


def test_all_constant_features_are_only_centred():
    c, s = fit_scale(np.full((10, 3), 2.5))
    assert c.tolist() == [2.5] * 3 and s.tolist() == [1.0] * 3


def test_scaled_rows_read_standardised_float32():
    x = np.arange(24, dtype=np.uint8).reshape(6, 4)  # uint8 rows read as x / 255
    c, s = np.full(4, 0.01, np.float32), np.full(4, 2.0, np.float32)
    r = ScaledRows(ArrayRows(x), c, s)
    assert r.n == 6 and r.dtype == np.float32
    np.testing.assert_allclose(r.read(1, 4), (x[1:4] / 255 - 0.01) / 2, rtol=1e-6)


def test_detector_with_scale_is_the_detector_on_standardised_rows(tmp_path):
    rng = np.random.default_rng(1)
    X = (rng.normal(size=(300, 6)) * [1, 2, 5, 0.01, 0.001, 1] + [50, 0, 0, 0, 0, 0]).astype(np.float32)
    det = AutoencoderOutlierDetector(scale=True, **FAST).fit(X)
    center, scale = fit_scale(X)
    np.testing.assert_array_equal(det.center_, center)
    np.testing.assert_array_equal(det.scale_, scale)
    ref = AutoencoderOutlierDetector(**FAST).fit(scaled(X, center, scale))
    np.testing.assert_allclose(det.score_samples(X), ref.score_samples(scaled(X, center, scale)), rtol=1e-6)
    assert det.offset_ == pytest.approx(ref.offset_, rel=1e-6)
    # a unit-free rule: the same data in other units (× 1024, shifted) scores the same
    other = AutoencoderOutlierDetector(scale=True, **FAST).fit(X * 1024 - 8)
    np.testing.assert_allclose(other.score_samples(X * 1024 - 8), det.score_samples(X), rtol=1e-4, atol=1e-3)
    # stored rows stream through the scaling; the fitted scale is saved and loaded with the model
    np.save(tmp_path / "x.npy", X)
    stored = AutoencoderOutlierDetector(scale=True, **FAST).fit(tmp_path / "x.npy")
    np.testing.assert_array_equal(stored.score_samples(tmp_path / "x.npy"), det.score_samples(X))
    loaded = AutoencoderOutlierDetector.load(det.save(tmp_path / "det"))
    np.testing.assert_array_equal(loaded.score_samples(X), det.score_samples(X))
    # off (the default for tables, "auto" at 6 features): nothing measured, the rows as they are
    plain = AutoencoderOutlierDetector(**FAST).fit(X)
    assert plain.center_ is None and plain.scale_ is None and set(plain.units_) == {False}


def test_both_averages_a_raw_and_a_standardised_member_each_standardised(tmp_path):
    rng = np.random.default_rng(2)
    X = (rng.normal(size=(300, 6)) * [1, 2, 5, 0.01, 0.001, 1]).astype(np.float32)
    new = (rng.normal(size=(40, 6)) * 3).astype(np.float32)
    ONE = dict(FAST, n_estimators=1, code_density=False, tails=False)  # scores: the reconstruction alone
    both = AutoencoderOutlierDetector(scale="both", **ONE).fit(X)
    assert both.units_ == [False, True] and len(both.models_) == 2 and both.seeds_[0] == both.seeds_[1]
    # its members are the raw detector's and the scale=True detector's models (same seed, same rows)
    raw, std = (AutoencoderOutlierDetector(scale=s, **ONE).fit(X) for s in (False, True))
    np.testing.assert_array_equal(both.center_, std.center_)

    def z(det, rows):  # a score standardised by the median and IQR (as a normal's σ) of the training rows' scores
        q1, med, q3 = np.percentile(det.score_samples(X), [25, 50, 75])
        return (det.score_samples(rows) - med) / ((q3 - q1) / 1.349)

    for rows in (X, new):
        np.testing.assert_allclose(both.score_samples(rows), (z(raw, rows) + z(std, rows)) / 2, rtol=1e-5, atol=1e-6)
    assert both.offset_ == pytest.approx(np.percentile((z(raw, X) + z(std, X)) / 2, 10), rel=1e-5)
    # saved and loaded; stored rows stream through both members
    loaded = AutoencoderOutlierDetector.load(both.save(tmp_path / "det"))
    np.testing.assert_array_equal(loaded.score_samples(new), both.score_samples(new))
    np.save(tmp_path / "x.npy", X)
    stored = AutoencoderOutlierDetector(scale="both", **ONE).fit(tmp_path / "x.npy")
    np.testing.assert_allclose(stored.score_samples(new), both.score_samples(new), rtol=1e-6)


def test_auto_is_both_for_wide_data_only_and_old_saves_still_load(tmp_path):
    rng = np.random.default_rng(3)
    wide = rng.random((200, 120), dtype=np.float32)
    det = AutoencoderOutlierDetector(**FAST).fit(wide)
    assert det.n_estimators_ == 1 and det.units_ == [False, True] and det.scale_.shape == (120,)
    assert set(AutoencoderOutlierDetector(**FAST).fit(wide[:, :100]).units_) == {False}  # 5 members
    # the Bernoulli likelihood reads [0, 1]: "auto" leaves its rows raw, and asking to standardise is refused
    assert AutoencoderOutlierDetector(likelihood="bernoulli", **FAST).fit(wide).units_ == [False]
    with pytest.raises(ValueError, match="scale='both' standardises .* Bernoulli"):
        AutoencoderOutlierDetector(likelihood="bernoulli", scale="both", **FAST).fit(wide)
    # a detector saved before units_ existed: its models all read the rows as center_ says
    std = AutoencoderOutlierDetector(scale=True, **FAST).fit(wide)
    path = std.save(tmp_path / "old")
    meta = json.loads((path / "estimator.json").read_text())
    del meta["fitted"]["units_"]
    (path / "estimator.json").write_text(json.dumps(meta))
    old = AutoencoderOutlierDetector.load(path)
    assert not hasattr(old, "units_")
    np.testing.assert_array_equal(old.score_samples(wide[:20]), std.score_samples(wide[:20]))


@pytest.mark.parametrize("bad", [1, "yes", "Both"])
def test_a_bad_scale_is_named(bad):
    with pytest.raises(ValueError, match="scale"):
        AutoencoderOutlierDetector(scale=bad, epochs=1).fit(np.zeros((20, 3)))
