"""Sequence bodies, presets and windows (aekit.core.networks.sequence, aekit.evaluation.series)."""

import json

import numpy as np
import pytest
import torch

from aekit import Autoencoder, Gaussian, create, fit, load_model, save_model
from aekit.parts.contractive import Contractive
from aekit.core.corruption import make_corruption
from aekit.core.networks.sequence import AttentionDecoder, AttentionEncoder, RNNDecoder, RNNEncoder, TCNDecoder, TCNEncoder, series_shape
from aekit.evaluation.series import per_step, series_errors, standardizer, step_errors, window_errors, windows
from aekit.parts.sparse import L1
from aekit.parts.variational import GaussianEncoder, GaussianKL

SEQUENCE = ("tcn", "lstm", "transformer")


def _bodies(shape, k):
    """(encoder, decoder) of each sequence body for windows of ``shape`` and codes of size ``k``."""
    tcn = TCNEncoder(shape, (8, 8), k)
    rnn, gru = RNNEncoder(shape, 8, 2, k, "lstm"), RNNEncoder(shape, 8, 1, k, "gru")
    att = AttentionEncoder(shape, 8, 2, 1, k)
    return {"tcn": (tcn, TCNDecoder(tcn)), "lstm": (rnn, RNNDecoder(rnn)), "gru": (gru, RNNDecoder(gru)),
            "gru_forced": (gru, RNNDecoder(gru, teacher_forcing=0.5)), "transformer": (att, AttentionDecoder(att))}


@pytest.mark.parametrize("shape", [(1,), (7,), (13, 1), (16, 3), (31, 2), (4, 2, 3)])
def test_every_body_round_trips_shapes_at_any_window_length(shape):
    T, C = series_shape(shape)
    x = torch.randn(5, T * C)
    for name, (enc, dec) in _bodies(shape, 3).items():
        h = enc(x)
        assert h.shape == (5, 3), name
        assert dec(h).shape == (5, T * C), name


def test_time_is_the_first_axis_and_the_bodies_see_order():
    """A body reads (T, C) windows in time order: reversing time changes the code (it is not a bag of steps)."""
    torch.manual_seed(0)
    x = torch.randn(4, 12, 2)
    for name, (enc, _) in _bodies((12, 2), 3).items():
        a, b = enc(x.flatten(1)), enc(x.flip(1).flatten(1))
        assert not torch.allclose(a, b, atol=1e-4), name


def test_bad_bodies_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="kernel must be odd"):
        TCNEncoder((10, 2), (4,), 2, kernel=4)
    with pytest.raises(ValueError, match="cell must be 'lstm' or 'gru', got 'rnn'"):
        RNNEncoder((10, 2), 4, 1, 2, "rnn")
    with pytest.raises(ValueError, match="d_model must be a multiple of heads"):
        AttentionEncoder((10, 2), 10, 4, 1, 2)
    with pytest.raises(ValueError, match="heads must be an integer >= 1, got 0"):
        create("transformer", (10, 2), heads=0)
    with pytest.raises(ValueError, match="cell must be 'lstm' or 'gru', got 'rnn'"):
        create("lstm", (10, 2), cell="rnn")


# ---------------------------------------------------------------------------- windows


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_teacher_forced_decoder_is_the_free_one_fed_the_truth(cell):
    """Fed its own predictions as the truth, the teacher-forced pass (one call) equals the free-running one
    (step by step); fed the truth, step t+1 depends on step t of x and on nothing later."""
    torch.manual_seed(0)
    enc = RNNEncoder((9, 2), 8, 2, 3, cell)
    dec = RNNDecoder(enc, teacher_forcing=1.0)
    h = enc(torch.randn(4, 18))
    free = dec(h)
    torch.testing.assert_close(dec(h, free), free, rtol=1e-5, atol=1e-6)
    x = torch.randn(4, 9, 2)
    r = dec(h, x.flatten(1)).view(4, 9, 2)
    assert not torch.allclose(r, free.view(4, 9, 2))
    x2 = x.clone()
    x2[:, 5] += 1.0
    r2 = dec(h, x2.flatten(1)).view(4, 9, 2)
    torch.testing.assert_close(r2[:, :6], r[:, :6], rtol=0, atol=0)  # steps 0..5 never see step 5
    assert (r2[:, 6:] - r[:, 6:]).abs().amax(-1).min() > 0


def test_scheduled_sampling_feeds_the_truth_at_a_random_share_of_steps():
    """With 0 < p < 1 step t+1 depends on step t of x exactly where the step drew the truth (the draw the
    decoder makes first, replayed here from the same seed), at about a share p of the steps."""
    torch.manual_seed(0)
    enc = RNNEncoder((30, 1), 8, 1, 3, "lstm")
    dec = RNNDecoder(enc, teacher_forcing=0.3)
    h = enc(torch.randn(64, 30)).detach()
    x = torch.randn(64, 30, requires_grad=True)
    torch.manual_seed(1)
    r = dec(h, x).view(64, 30)
    torch.manual_seed(1)
    forced = (torch.rand(64, 30, 1) < 0.3)[..., 0]
    for t in range(29):
        (g,) = torch.autograd.grad(r[:, t + 1].sum(), x, retain_graph=True)
        assert torch.equal(g[:, t] != 0, forced[:, t + 1]), t
        assert (g[:, t + 1:] == 0).all()  # nothing later leaks in
    assert 0.25 < forced[:, 1:].float().mean() < 0.35
    with pytest.raises(ValueError, match=r"teacher_forcing must be in \[0, 1\], got 1.5"):
        RNNDecoder(enc, teacher_forcing=1.5)


def test_the_model_teacher_forces_with_the_clean_input_in_training_only():
    torch.manual_seed(0)
    enc = RNNEncoder((10, 2), 8, 1, 3, "gru")
    dec = RNNDecoder(enc, teacher_forcing=1.0)
    model = Autoencoder(enc, dec, Gaussian(), input_shape=(10, 2), code_size=3,
                        corruption=make_corruption("gaussian", 0.5))
    x = torch.randn(6, 20)
    out = model.train()(x)
    torch.testing.assert_close(out.r, dec(out.h, x))  # the clean x, not the corrupted one
    out = model.eval()(x)
    torch.testing.assert_close(out.r, dec(out.h))
    torch.testing.assert_close(model.reconstruct(x), dec(model.code(x)))


def test_windows_and_per_step_against_a_hand_computed_example():
    x = np.arange(20.0).reshape(10, 2)  # T = 10, C = 2
    w, starts = windows(x, 4, 3)
    assert starts.tolist() == [0, 3, 6]
    np.testing.assert_array_equal(w[1], x[3:7])
    w, starts = windows(x, 4, 4)  # the stride skips the tail: a last window ends at step 10
    assert starts.tolist() == [0, 4, 6] and w.shape == (3, 4, 2)
    # one score per step of each window: step 5 lies in windows 1 (position 1) and 2 (never: 2 starts at 6)
    s = np.array([[1, 2, 3, 4], [10, 20, 30, 40], [100, 200, 300, 400]], dtype=float)
    want = [1, 2, 3, 4, 10, 20, (30 + 100) / 2, (40 + 200) / 2, 300, 400]
    np.testing.assert_allclose(per_step(s, starts, 10), want)
    # one score per window: spread over its steps
    np.testing.assert_allclose(per_step(np.array([1.0, 2.0, 4.0]), starts, 10), [1, 1, 1, 1, 2, 2, 3, 3, 4, 4])


def test_windows_refuse_what_cannot_be_cut():
    with pytest.raises(ValueError, match="window length 11 is longer than the series"):
        windows(np.zeros(10), 11)
    with pytest.raises(ValueError, match="stride must be an integer >= 1, got 0"):
        windows(np.zeros(10), 3, 0)
    with pytest.raises(ValueError, match="NaN or infinite values at 1 step.*step 4"):
        windows(np.r_[np.zeros(4), np.nan, np.zeros(5)], 3)
    with pytest.raises(ValueError, match=r"shape \(T,\) or \(T, C\)"):
        windows(np.zeros((2, 3, 4)), 2)
    with pytest.raises(ValueError, match="lies in no window"):
        per_step(np.ones((2, 2)), np.array([0, 5]), 8)


def test_whole_series_scores_and_reconstructions_equal_their_per_window_definitions():
    """series_errors and series_reconstruction, chunk by chunk, against windows cut at once and per_step."""
    from aekit.evaluation.metrics import reconstruct
    from aekit.evaluation.series import series_reconstruction

    x = np.c_[_sine(150), _sine(150, 1)]
    torch.manual_seed(0)
    model = create("lstm", (12, 2), hidden_size=8)
    w, starts = windows(x, 12, 1)
    e = step_errors(model, w)  # (N, 12)
    np.testing.assert_allclose(series_errors(model, x, chunk=7), per_step(e, starts, 150), rtol=1e-5)
    low = np.full(150, np.inf)
    for s0, row in zip(starts, e):
        low[s0:s0 + 12] = np.minimum(low[s0:s0 + 12], row)
    np.testing.assert_allclose(series_errors(model, x, how="min", chunk=7), low, rtol=1e-6)
    st, we = window_errors(model, x, stride=5, chunk=7)  # the last window ends at the last step
    w5, starts5 = windows(x, 12, 5)
    np.testing.assert_array_equal(st, starts5)
    np.testing.assert_allclose(we, step_errors(model, w5).mean(1), rtol=1e-5)
    r = reconstruct(model, w.reshape(len(w), -1)).reshape(w.shape)
    want = np.stack([per_step(r[:, :, c], starts, 150) for c in range(2)], 1)
    np.testing.assert_allclose(series_reconstruction(model, x, chunk=7), want, rtol=1e-5, atol=1e-6)


def test_standardizer_is_per_channel_and_fitted_on_training_data():
    train = np.c_[np.arange(100.0), 5 + 0 * np.arange(100.0)]
    s = standardizer(train)
    z = s.transform(train)
    np.testing.assert_allclose(z[:, 0].mean(), 0, atol=1e-6)
    np.testing.assert_allclose(z[:, 0].std(), 1, atol=1e-6)
    np.testing.assert_allclose(z[:, 1], 0)  # a constant channel is centred, not divided by zero


# ---------------------------------------------------------------------------- models


def _sine(T=600, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    return (np.sin(2 * np.pi * t / 25) + 0.05 * rng.normal(size=T)).astype(np.float32)


@pytest.mark.parametrize("preset, options", [*((p, {}) for p in SEQUENCE), ("lstm", {"teacher_forcing": 1.0})])
def test_a_spike_in_a_sine_is_found_at_its_step(preset, options):
    train, test = _sine(600, 0), _sine(300, 1)
    spike = 137
    test[spike] += 3.0
    w, _ = windows(train, 25, 1)
    torch.manual_seed(0)
    model = create(preset, (25, 1), **options)
    fit(model, w, epochs=8, batch_size=32, lr=3e-3, val_fraction=0, seed=0, progress=False)
    wt, starts = windows(test, 25, 1)
    score = per_step(step_errors(model, wt), starts, len(test))
    assert int(np.argmax(score)) == spike
    others = np.delete(score, spike)
    assert score[spike] > 5 * np.median(others)


@pytest.mark.parametrize("body", ["tcn", "lstm", "gru_forced", "transformer"])
def test_each_body_trains_with_the_denoising_sparse_contractive_and_vae_parts(body):
    shape, k = (12, 2), 4
    x = torch.from_numpy(windows(np.c_[_sine(200), _sine(200, 3)], 12, 2)[0].reshape(-1, 24))
    parts = {"denoising": dict(corruption=make_corruption("gaussian", 0.1)), "sparse": dict(penalties=[L1(1e-3)]),
             "contractive": dict(penalties=[Contractive(0.1)])}
    for name, extra in parts.items():
        enc, dec = _bodies(shape, k)[body]
        model = Autoencoder(enc, dec, Gaussian(), input_shape=shape, code_size=k, **extra)
        h = fit(model, x, epochs=3, batch_size=16, lr=3e-3, val_fraction=0, seed=0, progress=False)
        assert h.rows[-1]["train_loss"] < h.rows[0]["train_loss"], (body, name)
        if name == "contractive":
            assert model.penalties[0].method in ("stochastic", "exact")  # no closed form for a sequence body
    feat, dec = _bodies(shape, 6)[body][0], _bodies(shape, k)[body][1]
    vae = Autoencoder(GaussianEncoder(feat, 6, k), dec, Gaussian(), input_shape=shape, code_size=k,
                      penalties=[GaussianKL()])
    h = fit(vae, x, epochs=3, batch_size=16, lr=3e-3, val_fraction=0, seed=0, progress=False)
    assert vae.stochastic and h.rows[-1]["train_neg_elbo"] < h.rows[0]["train_neg_elbo"]


# scheduled sampling draws from the random stream in every training step: a resumed run must replay it
@pytest.mark.parametrize("preset, options", [*((p, {}) for p in SEQUENCE), ("lstm", {"teacher_forcing": 0.5})])
def test_sequence_presets_save_load_and_resume_exactly(preset, options, tmp_path):
    w = windows(_sine(200), 16, 4)[0]
    torch.manual_seed(0)
    model = create(preset, (16, 1), code_size=3, **options)
    path = save_model(model, tmp_path / "m")
    again = load_model(path)
    x = torch.from_numpy(w.reshape(len(w), -1))
    torch.testing.assert_close(again.reconstruct(x), model.reconstruct(x))
    # three epochs in one go equal one epoch, a stop, and a resumed run (from a fresh model)
    opts = dict(epochs=3, batch_size=8, lr=1e-3, val_fraction=0, seed=0, progress=False)
    torch.manual_seed(0)
    straight = create(preset, (16, 1), code_size=3, **options)
    fit(straight, w, **opts)

    def stop(epoch, row, model):
        if epoch == 1:
            raise KeyboardInterrupt

    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        fit(create(preset, (16, 1), code_size=3, **options), w, run_dir=tmp_path / "run", callbacks=[stop], **opts)
    resumed = create(preset, (16, 1), code_size=3, **options)
    fit(resumed, w, run_dir=tmp_path / "run", resume=True, **opts)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


# ---------------------------------------------------------------------------- the detector


def test_series_detector_scores_every_step_and_flags_the_anomalies(tmp_path):
    from sklearn.base import clone

    from aekit.estimators import SeriesOutlierDetector

    t = np.arange(800)
    train = np.c_[np.sin(2 * np.pi * t / 40), 10 + 5 * np.cos(2 * np.pi * t / 40)]  # channels on different scales
    det = SeriesOutlierDetector("tcn", window=40, stride=4, epochs=6, contamination=0.01, aggregate="min",
                                code_novelty=False, random_state=0).fit(train)  # "min": the anomaly stays at its steps
    assert det.n_features_in_ == 2 and det.model_.input_shape == (40, 2) and det.n_components_ == 9  # √80
    np.testing.assert_allclose(det.center_, train.mean(0), atol=1e-6)
    test = train[:300].copy()
    test[200:205, 1] += 10.0  # a level shift of one channel for five steps (two of its own σ)
    s = det.score_samples(test)
    assert s.shape == (300,)
    assert set(np.argsort(s)[:5]) <= set(range(195, 210))  # the lowest scores sit at the anomaly
    pred = det.predict(test)
    assert (pred[200:205] == -1).all() and (pred[10:190] == 1).mean() > 0.95  # the anomaly does not smear
    z, z_train = (((a - det.center_) / det.scale_).astype(np.float32) for a in (test, train))
    mean, offset = -series_errors(det.model_, z, how="mean"), np.percentile(-series_errors(det.model_, z_train), 1)
    assert (mean[10:190] < offset).mean() > 0.1  # the mean over windows smears it over the steps it shares windows with
    assert set(np.argsort(mean)[:5]) <= set(range(195, 210))  # yet ranks the anomaly's steps first too
    assert (det.decision_function(train) < 0).mean() == pytest.approx(0.01, abs=0.005)  # the contamination share
    starts, ws = det.score_windows(test, stride=7)  # one score per window: the mean error over its steps
    wt, want_starts = windows(z, 40, 7)
    np.testing.assert_array_equal(starts, want_starts)
    np.testing.assert_allclose(ws, -step_errors(det.model_, wt).mean(1), rtol=1e-6)
    worst = int(starts[np.argmin(ws)])
    assert worst <= 204 and worst + 39 >= 200  # the worst window holds anomalous steps
    with pytest.raises(ValueError, match="stride must be an integer >= 1, got 0"):
        det.score_windows(test, stride=0)
    again = SeriesOutlierDetector.load(det.save(tmp_path / "det"))
    np.testing.assert_array_equal(again.score_samples(test), s)
    assert clone(det).get_params() == det.get_params()


def test_series_detector_refuses_bad_input_with_the_reason():
    from aekit.estimators import SeriesOutlierDetector

    x = np.sin(np.arange(100.0))[:, None]
    det = SeriesOutlierDetector(window=20, epochs=1, random_state=0)
    with pytest.raises(ValueError, match="window must be an integer >= 1, got 0"):
        SeriesOutlierDetector(window=0).fit(x)
    with pytest.raises(ValueError, match="the series has 10 steps, fewer than window=20"):
        det.fit(x[:10])
    det.fit(x)
    with pytest.raises(ValueError, match="X has 2 features, but SeriesOutlierDetector is expecting 1"):
        det.score_samples(np.c_[x, x])
    with pytest.raises(ValueError, match="NaN"):
        det.score_samples(np.r_[x[:50], [[np.nan]], x[51:]])


# ---------------------------------------------------------------------------- command line


def _csv(path, x, labels=None, time=True):
    head = (["time"] if time else []) + [f"c{i}" for i in range(x.shape[1])] + (["label"] if labels is not None else [])
    lines = [",".join(head)]
    for i, row in enumerate(x):
        cells = ([f"2025-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}"] if time else []) + \
            [f"{v:.5f}" for v in row] + ([str(int(labels[i]))] if labels is not None else [])
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_trains_on_windows_of_a_csv_series_and_scores_each_step(tmp_path):
    from typer.testing import CliRunner

    from aekit.cli._app import app
    from aekit.store.series import read_series

    run = lambda *a: CliRunner().invoke(app, [str(v) for v in a])  # noqa: E731
    t = np.arange(1000)
    x = np.c_[np.sin(2 * np.pi * t / 25), 50 + 10 * np.cos(2 * np.pi * t / 25)]
    labels = np.zeros(1000, int)
    x[900:904, 1] += 40
    labels[900:904] = 1
    data = _csv(tmp_path / "s.csv", x, labels)
    f = read_series(data)
    assert f.names == ["c0", "c1"] and f.time[1] == "2025-01-01T00:00:01" and f.labels.sum() == 4
    res = run("train", "--preset", "tcn", "--data", data, "--window", 25, "--stride", 5, "--epochs", 8,
              "--channels", "16,16", "--out", tmp_path / "run", "--quiet")
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "run" / "data.json").read_text())
    assert meta["window"] == 25 and meta["stride"] == 5
    np.testing.assert_allclose(meta["center"], x[:800].mean(0), atol=1e-4)  # the first 80 % of the steps train
    res = run("score", tmp_path / "run", data, "--out", tmp_path / "scores.csv", "--plot", tmp_path / "s.png")
    assert res.exit_code == 0, res.output
    rows = (tmp_path / "scores.csv").read_text().splitlines()
    assert rows[0] == "time,score,label" and len(rows) == 1001
    score = np.array([float(r.split(",")[1]) for r in rows[1:]])
    assert set(np.argsort(-score)[:4]) == {900, 901, 902, 903}
    assert "ROC-AUC 1.0000" in res.output and "best range F1 1.0000" in res.output and (tmp_path / "s.png").stat().st_size > 10_000
    assert run("evaluate", tmp_path / "run").exit_code == 0  # the run's own split is rebuilt from data.json
    assert run("report", tmp_path / "run").exit_code == 0
    assert (tmp_path / "run" / "score_track.png").stat().st_size > 10_000  # the test part over its score track
    for args, message in [
        (("train", "--data", data, "--stride", 4), "--stride 4 has no effect here: it applies with --window"),
        (("train", "--data", data, "--window", 2000), "each part needs at least window=2000 steps"),
        (("score", tmp_path / "run", _csv(tmp_path / "one.csv", x[:, :1])), "has 1 channels; the run was trained on 2"),
        (("score", tmp_path / "run", data, "--aggregate", "max"), "--aggregate must be 'min' or 'mean', got 'max'"),
    ]:
        res = run(*args)
        assert res.exit_code == 2 and message in res.output, res.output
    np.save(tmp_path / "w.npy", np.zeros((5, 10, 2)))
    with pytest.raises(ValueError, match="not one series"):
        read_series(tmp_path / "w.npy")


def test_the_readme_says_how_a_step_gets_its_score_by_default():
    """Issue 37.11: the Time series intro must name the default aggregation; issue 39 made it the mean (chosen on
    real series), and the command line's --aggregate follows the estimator."""
    import inspect
    from pathlib import Path

    from aekit.cli.series import score
    from aekit.estimators import SeriesOutlierDetector

    readme = Path(__file__).resolve().parents[1].joinpath("README.md").read_text()
    intro = readme.split("## Time series", 1)[1].split("```", 1)[0]
    assert SeriesOutlierDetector().aggregate == "mean"
    assert inspect.signature(score).parameters["aggregate"].default == "mean"
    assert 'the windows that contain it by default\n(`aggregate="mean"`' in intro
    assert "best-reconstructed window by default" not in intro
