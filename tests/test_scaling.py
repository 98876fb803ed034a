"""The detector's ``scale``: per-feature standardisation with a floor, against NumPy, streamed like arrays."""

from __future__ import annotations

import numpy as np
import pytest

from aekit.estimators import AutoencoderOutlierDetector
from aekit.estimators.scaling import FLOOR, ScaledRows, fit_scale, scaled
from aekit.rows import ArrayRows

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
    # off (the default): nothing measured, the rows as they are
    plain = AutoencoderOutlierDetector(**FAST).fit(X)
    assert plain.center_ is None and plain.scale_ is None


@pytest.mark.parametrize("bad", [1, "yes", "auto"])
def test_a_bad_scale_is_named(bad):
    with pytest.raises(ValueError, match="scale"):
        AutoencoderOutlierDetector(scale=bad, epochs=1).fit(np.zeros((20, 3)))
