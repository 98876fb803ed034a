"""The code's density in the detector's score: a Gaussian of the training codes, Mahalanobis distances."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import aekit.estimators._base as base
from aekit.estimators import AutoencoderOutlierDetector
from aekit.estimators._density import DROP, RIDGE, combine, energy, fit, fit_robust, mahalanobis, parts
from aekit.estimators._detector import _split
from aekit.estimators._robust import AUTO_MEMBERS
from aekit.evaluation.novelty import robust_scale
from aekit.evaluation.metrics import batched, reconstruct


def test_moments_mahalanobis_and_energy_against_numpy():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(500, 3)) @ rng.normal(size=(3, 3))
    e = rng.normal(size=(500, 4)) * [1.0, 2.0, 0.5, 3.0]
    g = fit(zip(np.array_split(h, 7), np.array_split(e, 7)))  # chunks: the same moments as one pass
    cov = np.cov(h.T, bias=True)
    cov += RIDGE * np.trace(cov) / 3 * np.eye(3)
    np.testing.assert_allclose(g["mean"], h.mean(0), atol=1e-12)
    np.testing.assert_allclose(g["precision"], np.linalg.inv(cov), rtol=1e-8)
    v = (e**2).mean(0)
    np.testing.assert_allclose(g["variance"], v + RIDGE * v.mean(), rtol=1e-12)
    c = h[:5] - h.mean(0)
    np.testing.assert_allclose(mahalanobis(h[:5], g), [x @ np.linalg.inv(cov) @ x for x in c], rtol=1e-8)
    np.testing.assert_allclose(energy(e[:5], g), [sum(x**2 / np.array(g["variance"])) for x in e[:5]], rtol=1e-12)
    np.testing.assert_allclose(parts(h[:5], e[:5], g), np.c_[energy(e[:5], g), mahalanobis(h[:5], g)])


def test_a_constant_code_unit_or_a_perfect_feature_stays_finite():
    h = np.c_[np.random.default_rng(1).normal(size=100), np.ones(100)]
    g = fit([(h, np.c_[np.zeros(100), np.ones(100)])])
    assert np.isfinite(g["precision"]).all() and np.isfinite(energy(np.ones((2, 2)), g)).all()


def test_combine_by_hand():
    g = {"reconstruction": [2.0, 0.5], "code": [1.0, 4.0]}
    # energy 3 → z_rec (3 − 2)/0.5 = 2; distance 9 → z_code (9 − 1)/4 = 2; −(2 + 2)/2
    assert combine(np.array([[3.0, 9.0]]), g) == pytest.approx([-2.0])


def test_fit_robust_refits_without_the_worst_rows_by_hand():
    rng = np.random.default_rng(2)
    h, e = rng.normal(size=(400, 3)), rng.normal(size=(400, 5))
    h[:8] += 6.0  # eight far codes among the training rows
    g0 = fit([(h, e)])
    p = parts(h, e, g0)
    g0.update(reconstruction=list(robust_scale(p[:, 0])), code=list(robust_scale(p[:, 1])))
    first = combine(p, g0)
    keep = first >= np.percentile(first, 100 * DROP)
    assert not keep[:8].any() and keep.sum() == 380
    g1 = fit([(h[keep], e[keep])])
    p = parts(h, e, g1)
    g1.update(reconstruction=list(robust_scale(p[keep, 0])), code=list(robust_scale(p[keep, 1])))
    chunks = lambda: zip(np.array_split(h, 3), np.array_split(e, 3))  # noqa: E731  (stored rows, chunk by chunk)
    g, score = fit_robust(chunks)
    for key in ("mean", "precision", "variance", "reconstruction", "code"):
        np.testing.assert_allclose(g[key], g1[key], rtol=1e-10)
    np.testing.assert_allclose(score, combine(p, g1), rtol=1e-10)
    assert np.linalg.inv(g["precision"])[0, 0] < 0.7 * np.linalg.inv(g0["precision"])[0, 0]  # no longer widened


def on_manifold_outliers() -> tuple[np.ndarray, np.ndarray]:
    """Normal rows near a plane, and 15 rows on the plane but far out along it: reconstructed well."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6))
    x[:, 3] = x[:, 0] + 0.1 * rng.normal(size=300)
    a = 0.3 * rng.normal(size=(15, 6))
    a[:, [0, 3]] = 4.0
    return np.vstack([x, a]), np.r_[np.zeros(300), np.ones(15)]


def test_code_density_finds_what_reconstruction_misses():
    X, y = on_manifold_outliers()
    auc = {cd: roc_auc_score(y, -AutoencoderOutlierDetector(code_density=cd, tails=False, random_state=0).fit(X).score_samples(X))
           for cd in (False, True)}
    assert auc[False] < 0.5 < 0.9 < auc[True]


def test_detector_score_is_the_combination_and_survives_save_and_load(tmp_path):
    X, _ = on_manifold_outliers()
    det = AutoencoderOutlierDetector(n_estimators=1, tails=False, epochs=3, random_state=0).fit(X)
    m, (g,) = det.model_, det.densities_
    h, e = _split(m, X)
    np.testing.assert_allclose(h, batched(m.code, m, X), rtol=1e-6)
    np.testing.assert_allclose(e, X - reconstruct(m, X), rtol=1e-5, atol=1e-6)
    by_hand, train = fit_robust(lambda: [(h, e)])
    for key in ("mean", "precision", "variance", "reconstruction", "code"):
        np.testing.assert_allclose(g[key], by_hand[key], rtol=1e-6)
    p = np.c_[(e**2 / np.array(g["variance"])).sum(1), mahalanobis(h, g)]
    np.testing.assert_allclose(det.score_samples(X), combine(p, g), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(det.score_samples(X), train, rtol=1e-5, atol=1e-6)
    assert det.offset_ == pytest.approx(np.percentile(det.score_samples(X), 100 * det.contamination))
    loaded = AutoencoderOutlierDetector.load(det.save(tmp_path / "det"))
    np.testing.assert_array_equal(loaded.score_samples(X), det.score_samples(X))
    del loaded.densities_  # as a detector saved before code_density: reconstruction alone
    np.testing.assert_allclose(loaded.score_samples(X), base._score(m, X, det.seed_), rtol=1e-6)


def test_ensemble_members_each_have_their_density():
    X, _ = on_manifold_outliers()
    det = AutoencoderOutlierDetector(n_estimators=2, epochs=2, random_state=0).fit(X)
    assert len(det.densities_) == 2 and det.densities_[0]["mean"] != det.densities_[1]["mean"]
    s = det.score_samples(X)
    assert np.isfinite(s).all() and abs((s < det.offset_).mean() - det.contamination) < 0.01


def test_auto_gives_tables_the_density_and_an_ensemble_but_not_wide_data():
    rng = np.random.default_rng(0)
    wide, table = rng.normal(size=(60, 101)), rng.normal(size=(60, 6))
    fitted = lambda X, **kw: AutoencoderOutlierDetector(epochs=1, random_state=0, **kw).fit(X)  # noqa: E731
    det = fitted(table)
    assert det.n_estimators_ == len(det.models_) == len(det.densities_) == AUTO_MEMBERS > 1
    assert fitted(table, preset="vae").densities_ == [] and fitted(table, preset="vae").n_estimators_ == AUTO_MEMBERS
    det = fitted(wide)  # one sample, a raw and a standardised model (scale="auto")
    assert det.densities_ == [] and det.n_estimators_ == 1 and len(det.models_) == 2
    assert len(fitted(wide, code_density=True, scale=False).densities_) == 1
    assert fitted(wide, n_estimators=2).n_estimators_ == 2
