"""The scikit-learn estimators: scikit-learn's own estimator checks, pipelines, grid search, persistence."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from aekit.estimators import AutoencoderOutlierDetector, AutoencoderTransformer

FAST = dict(hidden=(8,), epochs=3, batch_size=16)


# No check is skipped. n_components=1 for the undercomplete preset: the checks fit 2-feature data,
# and an undercomplete code must be smaller than the input. The VAE runs them too (its scores use
# common random numbers, so they are deterministic and row-order invariant). The one skip pytest
# reports per estimator is scikit-learn's own: check_array_api_input skips itself unless SCIPY_ARRAY_API
# is set; aekit computes in torch and does not claim array-API support.
@parametrize_with_checks([
    AutoencoderTransformer(n_components=1, **FAST, random_state=0),
    AutoencoderTransformer("vae", **FAST, random_state=0),
    AutoencoderOutlierDetector(n_components=1, **FAST, random_state=0),
    AutoencoderOutlierDetector("denoising", n_components=4, noise="gaussian", level=0.1, epochs=3,
                               batch_size=16, random_state=0),
])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def X(digits):
    return digits.train.x[:400].astype(np.float64)


def test_pipeline_with_standard_scaler(X):
    pipe = Pipeline([("scale", StandardScaler()), ("ae", AutoencoderTransformer(n_components=3, **FAST, random_state=0))])
    Z = pipe.fit_transform(X)
    assert Z.shape == (400, 3) and Z.dtype == np.float64
    assert pipe.inverse_transform(Z).shape == X.shape
    np.testing.assert_allclose(pipe.transform(X), Z, rtol=1e-5, atol=1e-6)


def test_grid_search_over_a_penalty_weight(X, digits):
    # score = mean of score_samples (negative reconstruction loss), as PCA.score is its mean log-likelihood
    grid = GridSearchCV(AutoencoderTransformer("contractive", n_components=16, **FAST, random_state=0),
                        {"lam": [1e-3, 10.0]}, cv=2)
    grid.fit(X)
    assert set(grid.cv_results_["param_lam"]) == {1e-3, 10.0}
    # a huge contractive weight flattens the code and costs reconstruction: the small one wins
    assert grid.best_params_ == {"lam": 1e-3}
    assert grid.best_estimator_.transform(X).shape == (400, 16)


def test_clone_round_trips_and_same_random_state_gives_identical_codes(X):
    ae = AutoencoderTransformer("denoising", n_components=5, noise="masking", level=0.2, **FAST, random_state=7)
    c = clone(ae)
    assert c.get_params() == ae.get_params()
    a, b = ae.fit_transform(X), c.fit_transform(X)
    np.testing.assert_array_equal(a, b)
    other = AutoencoderTransformer("denoising", n_components=5, noise="masking", level=0.2, **FAST, random_state=8)
    assert not np.array_equal(a, other.fit_transform(X))


def test_not_fitted_and_wrong_feature_count(X):
    ae = AutoencoderTransformer(**FAST)
    with pytest.raises(NotFittedError):
        ae.transform(X)
    ae.fit(X)
    with pytest.raises(ValueError, match="X has 10 features, but AutoencoderTransformer is expecting 64 features"):
        ae.transform(X[:, :10])
    with pytest.raises(ValueError, match="inverse_transform expects 2"):
        ae.inverse_transform(np.zeros((3, 5)))


def test_bernoulli_needs_unit_interval_data(X):
    ae = AutoencoderTransformer(likelihood="bernoulli", **FAST)
    ae.fit(X)  # digits are in [0, 1]
    with pytest.raises(ValueError, match=r"needs data in \[0, 1\].*likelihood='gaussian'"):
        AutoencoderTransformer(likelihood="bernoulli", **FAST).fit(StandardScaler().fit_transform(X))


def test_options_that_do_not_apply_are_errors(X):
    with pytest.raises(ValueError, match="lam=0.1 does not apply to preset 'undercomplete'"):
        AutoencoderTransformer(lam=0.1, **FAST).fit(X)
    with pytest.raises(ValueError, match="n_components=64 must be smaller than the number of features"):
        AutoencoderTransformer(n_components=64, **FAST).fit(X)
    with pytest.raises(ValueError, match=r"contamination must be in \(0, 0.5\]"):
        AutoencoderOutlierDetector(contamination=0.7, **FAST).fit(X)
    with pytest.raises(ValueError, match="sigma=0.5 has no effect here: the Bernoulli likelihood has no sigma"):
        AutoencoderTransformer(likelihood="bernoulli", sigma=0.5, **FAST).fit(X)
    with pytest.raises(ValueError, match="level=0.5 has no effect here"):
        AutoencoderOutlierDetector("denoising", noise="masking:0.2", level=0.5, **FAST).fit(X)


def test_every_main_option_reaches_the_model(X):
    ae = AutoencoderTransformer("ksparse", n_components=40, k=5, alpha=2.0, hidden=(16,), epochs=2, batch_size=32,
                                lr=5e-3, random_state=0).fit(X)
    topk = ae.model_.encoder.final
    assert (topk.k, topk.alpha) == (5, 2.0) and ae.model_.encoder.sizes == [64, 16, 40]
    assert ae.history_.last["epoch"] == 2 and ae.history_.last["lr"] == 5e-3
    vae = AutoencoderTransformer("vae", n_components=3, beta=0.5, free_bits=0.1, kl_warmup_epochs=1, **FAST).fit(X)
    kl = vae.model_.penalties[0]
    assert (kl.beta, kl.free_bits) == (0.5, 0.1) and vae.history_.rows[0]["kl_weight"] == 1.0


def test_vae_transform_is_the_posterior_mean_and_scores_are_elbos(X):
    import torch

    vae = AutoencoderTransformer("vae", n_components=3, **FAST, random_state=0).fit(X)
    Z = vae.transform(X[:10])
    np.testing.assert_allclose(Z, vae.model_.posterior(torch.from_numpy(X[:10]).float()).mean.detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    s = vae.score_samples(X[:10])
    np.testing.assert_array_equal(s, vae.score_samples(X[:10]))  # deterministic
    np.testing.assert_allclose(s[::-1], vae.score_samples(X[:10][::-1]), rtol=1e-5)  # row order does not matter


def test_set_output_pandas(X):
    pd = pytest.importorskip("pandas")
    ae = AutoencoderTransformer(n_components=2, **FAST).set_output(transform="pandas")
    df = ae.fit(X).transform(X[:5])
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["autoencodertransformer0", "autoencodertransformer1"]
    assert list(ae.get_feature_names_out()) == list(df.columns)


def test_outlier_detector_contract(X, digits):
    det = AutoencoderOutlierDetector(n_components=4, contamination=0.1, **FAST, random_state=0).fit(X)
    scores = det.score_samples(X)
    np.testing.assert_allclose(det.decision_function(X), scores - det.offset_)
    pred = det.predict(X)
    assert set(pred) == {-1, 1} and abs((pred == -1).mean() - 0.1) < 0.01
    noise = np.random.default_rng(0).uniform(0, 1, size=(50, 64))
    assert (det.predict(noise) == -1).mean() > 0.9  # uniform noise is not a digit


def test_pickle_and_aekit_checkpoint_round_trip(X, tmp_path):
    for est in (AutoencoderTransformer("vae", n_components=3, **FAST, random_state=0),
                AutoencoderOutlierDetector(n_components=3, **FAST, random_state=0)):
        est.fit(X)
        again = pickle.loads(pickle.dumps(est))
        np.testing.assert_array_equal(again.score_samples(X), est.score_samples(X))
        path = est.save(tmp_path / type(est).__name__)
        loaded = type(est).load(path)
        assert loaded.get_params() == est.get_params()
        if hasattr(est, "transform"):
            np.testing.assert_array_equal(loaded.transform(X), est.transform(X))
        np.testing.assert_array_equal(loaded.score_samples(X), est.score_samples(X))
        if hasattr(est, "offset_"):
            assert loaded.offset_ == est.offset_
            np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    with pytest.raises(ValueError, match="saved from AutoencoderOutlierDetector, not from AutoencoderTransformer"):
        AutoencoderTransformer.load(tmp_path / "AutoencoderOutlierDetector")


def test_estimators_stream_files_and_shards_like_arrays(X, tmp_path):
    """A .npy path, a shard directory or a memory map: fit streams it, and transform/score/predict read it a
    chunk at a time, with the results of the same data in memory (a window holds every row: the same order)."""
    from aekit.store.shards import write_shards

    x32 = X.astype(np.float32)
    np.save(tmp_path / "x.npy", x32)
    stored = {"npy": str(tmp_path / "x.npy"), "memmap": np.load(tmp_path / "x.npy", mmap_mode="r"),
              "shards": write_shards(tmp_path / "s", (x32[i : i + 64] for i in range(0, 400, 64)), rows_per_shard=150)}
    ref_t = AutoencoderTransformer("vae", n_components=3, **FAST, random_state=0).fit(x32)
    ref_d = AutoencoderOutlierDetector(n_components=3, **FAST, random_state=0).fit(x32)
    for kind, data in stored.items():
        t = AutoencoderTransformer("vae", n_components=3, **FAST, random_state=0).fit(data)
        np.testing.assert_array_equal(t.transform(data), ref_t.transform(x32), err_msg=kind)
        np.testing.assert_array_equal(t.score_samples(data), ref_t.score_samples(x32), err_msg=kind)
        d = AutoencoderOutlierDetector(n_components=3, **FAST, random_state=0).fit(data)
        assert d.offset_ == ref_d.offset_ and t.n_features_in_ == 64 and not hasattr(t, "feature_names_in_")
        np.testing.assert_array_equal(d.predict(data), ref_d.predict(x32), err_msg=kind)
    # chunk by chunk: rows beyond one chunk (~8 MB stored) score like the array
    big = np.random.default_rng(0).normal(size=(40_000, 64)).astype(np.float32)
    np.save(tmp_path / "big.npy", big)
    np.testing.assert_allclose(ref_d.score_samples(tmp_path / "big.npy"), ref_d.score_samples(big), rtol=1e-6)


def test_streamed_estimator_input_errors(X, tmp_path):
    det = AutoencoderOutlierDetector(n_components=3, **FAST, random_state=0).fit(X)
    np.save(tmp_path / "narrow.npy", X[:, :10].astype(np.float32))
    with pytest.raises(ValueError, match="X has 10 features, but AutoencoderOutlierDetector is expecting 64"):
        det.score_samples(tmp_path / "narrow.npy")
    np.save(tmp_path / "empty.npy", np.zeros((0, 64), np.float32))
    with pytest.raises(ValueError, match="empty.npy is empty"):
        det.predict(str(tmp_path / "empty.npy"))
    with pytest.raises(ValueError, match="shuffle_buffer=100 has no effect here"):
        AutoencoderTransformer(n_components=3, **FAST, shuffle_buffer=100).fit(X)
    nan = X[:100].astype(np.float32)
    nan[57, 3] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(ValueError, match="nan.npy, rows from 0: contains NaN or inf"):
        AutoencoderTransformer(n_components=3, **FAST).fit(tmp_path / "nan.npy")
    with pytest.raises(ValueError, match="rows 0–99: contains NaN or inf"):
        det.score_samples(tmp_path / "nan.npy")


def test_preset_options_reach_every_option_of_the_preset(tmp_path):
    X = np.random.default_rng(0).normal(size=(120, 8)).astype(np.float32)
    t = AutoencoderTransformer("undercomplete", n_components=3, epochs=1, preset_options={"tied": True},
                               random_state=0).fit(X)
    assert t.options_["model"]["tied"] is True and t.model_.config["options"]["tied"] is True
    det = AutoencoderOutlierDetector("ksparse", n_components=16, k=4, epochs=1, n_estimators=1,
                                     preset_options={"aux_k": 8, "k_start": 8, "anneal_steps": 10},
                                     random_state=0).fit(X)
    assert [p.name for p in det.model_.penalties] == ["auxk"] and det.model_.encoder.final.k_start == 8
    loaded = AutoencoderOutlierDetector.load(det.save(tmp_path / "det"))
    assert loaded.preset_options == {"aux_k": 8, "k_start": 8, "anneal_steps": 10}
    np.testing.assert_array_equal(loaded.score_samples(X), det.score_samples(X))
    for bad, match in [({"depth": 3}, r"preset_options\['depth'\] does not apply to preset 'undercomplete'"),
                       ({"hidden": [4]}, r"preset_options\['hidden'\]: set it with the parameter hidden="),
                       ({"code_size": 4}, r"set it with the parameter n_components="),
                       ([("tied", True)], "preset_options must be None or a dict")]:
        with pytest.raises(ValueError, match=match):
            AutoencoderTransformer(n_components=3, epochs=1, preset_options=bad).fit(X)


def test_the_estimators_share_one_init_contract():
    """Every parameter has one home for what it accepts: a preset option's (aekit.presets.options), a training
    field's (TrainConfig) or the class's own declaration; the parameters both estimators have agree."""
    import inspect

    from aekit.training.config import TrainConfig
    from aekit.presets.options import OPTIONS

    sigs = [inspect.signature(cls.__init__).parameters for cls in (AutoencoderTransformer, AutoencoderOutlierDetector)]
    from aekit.estimators import SeriesOutlierDetector

    for cls in (AutoencoderTransformer, AutoencoderOutlierDetector, SeriesOutlierDetector):
        constraints = cls._constraints()  # a parameter with no home is a KeyError here
        assert set(constraints) == set(cls._get_param_names())
        est = cls()
        est._validate_params()  # the defaults are accepted
        for name in cls._get_param_names():
            kind = "option" if name in OPTIONS else "train" if name in TrainConfig.__dataclass_fields__ else "own"
            if kind != "own":
                assert name not in cls._own_constraints, f"{name} is declared twice"
            bad = est.set_params(**{name: object()})
            with pytest.raises(ValueError, match=f"^{name} must be "):
                bad._validate_params()
            est = cls()
    common = set(sigs[0]) & set(sigs[1])
    for name in common - {"n_components"}:  # the detector chooses a code size; the transformer keeps 2 like PCA
        assert sigs[0][name].default == sigs[1][name].default, name
    assert set(AutoencoderTransformer._model_params()) <= common
