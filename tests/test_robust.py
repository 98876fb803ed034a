"""The detector's defences against contaminated training data: trimming, ensembles on subsamples."""

from __future__ import annotations

import numpy as np
import pytest

import aekit.estimators._base as base
from aekit.estimators import AutoencoderOutlierDetector
from aekit.estimators._robust import subsample, trimmed_fit
from aekit.evaluation.novelty import IQR_TO_SD, robust_scale
from aekit.store.rows import ArrayRows


def test_trimmed_fit_trains_the_second_half_without_the_worst_rows():
    data = np.arange(20.0)[:, None]
    calls = []
    score = lambda x: -np.abs(x[:, 0] - 5.0)  # noqa: E731  rows far from 5 are the least typical
    dropped = trimmed_fit(lambda part, epochs: calls.append((part[:, 0].tolist(), epochs)), score, data, 7, 0.25)
    assert dropped == 5 and calls[0] == (data[:, 0].tolist(), 3)
    assert calls[1] == ([float(v) for v in range(0, 15)], 4)  # 15..19 are the 5 farthest from 5


def test_trimmed_fit_on_stored_rows_reads_the_kept_rows():
    rows = ArrayRows(np.arange(10.0, dtype=np.float32)[:, None])
    seen = []
    trimmed_fit(lambda part, e: seen.append(len(part)), lambda r: -np.concatenate([x[:, 0] for _, x in r.chunks()]),
                rows, 2, 0.3)
    assert seen == [10, 7]


def test_robust_scale_by_hand():
    assert robust_scale(np.array([1.0, 2.0, 3.0, 4.0, 5.0])) == pytest.approx((3.0, 2.0 / IQR_TO_SD))
    loc, scale = robust_scale(np.array([0.0] * 9 + [10.0]))  # IQR 0: the standard deviation
    assert loc == 0.0 and scale == pytest.approx(3.0)
    assert robust_scale(np.zeros(4)) == (0.0, 1.0)


def test_subsample_draws_without_replacement():
    x = np.arange(100.0)[:, None]
    s = subsample(x, 30, np.random.default_rng(0))
    assert len(s) == 30 and len(np.unique(s)) == 30 and subsample(x, 500, np.random.default_rng(0)) is x


def test_trim_reaches_the_trainer(monkeypatch):
    sizes = []
    real = base.fit

    def spy(model, data, **kw):
        sizes.append((len(data), kw["epochs"]))
        return real(model, data, **kw)

    monkeypatch.setattr(base, "fit", spy)
    X = np.random.default_rng(0).normal(size=(200, 5))
    AutoencoderOutlierDetector(trim=0.1, n_estimators=1, epochs=4, random_state=0).fit(X)
    assert sizes == [(200, 2), (180, 2)]


def test_ensemble_scores_are_the_mean_of_standardised_members(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 4))
    det = AutoencoderOutlierDetector(n_estimators=3, max_samples=100, epochs=3, code_density=False, tails=False,
                                     random_state=0).fit(X)
    assert len(det.models_) == 3 and len(set(det.seeds_)) == 3
    assert all(m.code_size == 2 for m in det.models_)
    members = [base._score(m, X, s) for m, s in zip(det.models_, det.seeds_, strict=True)]
    for s, (loc, scale) in zip(members, det.scales_, strict=True):
        assert loc == pytest.approx(np.median(s))
    want = np.mean([(s - loc) / scale for s, (loc, scale) in zip(members, det.scales_, strict=True)], axis=0)
    np.testing.assert_allclose(det.score_samples(X), want, rtol=1e-6)
    assert abs((det.predict(X) == -1).mean() - det.contamination) < 0.01
    again = AutoencoderOutlierDetector(n_estimators=3, max_samples=100, epochs=3, code_density=False, tails=False,
                                       random_state=0).fit(X)
    np.testing.assert_array_equal(det.score_samples(X), again.score_samples(X))
    loaded = AutoencoderOutlierDetector.load(det.save(tmp_path / "det"))
    np.testing.assert_array_equal(loaded.score_samples(X), det.score_samples(X))


@pytest.mark.parametrize("bad, match", [
    ({"n_estimators": 0}, "n_estimators"), ({"trim": 0.5}, "trim"), ({"max_samples": 0}, "max_samples"),
    ({"max_samples": 1.5}, "max_samples"), ({"max_samples": "all"}, "max_samples"),
    ({"code_density": 1}, "code_density"), ({"code_density": "yes"}, "code_density"),
])
def test_bad_robustness_options_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        AutoencoderOutlierDetector(**bad, epochs=1).fit(np.zeros((20, 3)))
