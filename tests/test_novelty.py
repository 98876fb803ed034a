"""Code novelty in series scores: the distance of a window's code to the training windows' codes, added to the
reconstruction error in units of each part's spread on the training series (aekit.evaluation.novelty), in the
estimator and in ``aekit score``."""

import json

import numpy as np
import pytest
import torch

from aekit.evaluation.series import per_step, series_errors, step_errors, windows


def robust_z(v, ref):
    q1, m, q3 = np.percentile(ref, [25, 50, 75])
    return (v - m) / ((q3 - q1) / 1.349)


def test_code_novelty_is_the_distance_to_the_training_codes_in_units_of_its_training_spread(tmp_path):
    from sklearn.neighbors import NearestNeighbors

    from aekit.estimators import SeriesOutlierDetector

    rng = np.random.default_rng(0)
    t = np.arange(700)
    train = np.c_[np.sin(2 * np.pi * t / 35), np.cos(2 * np.pi * t / 50)] + 0.05 * rng.normal(size=(700, 2))
    det = SeriesOutlierDetector(window=30, stride=2, epochs=2, random_state=0).fit(train)
    test = train[:250] + 0.3 * rng.normal(size=(250, 2))
    z, z_train = (((a - det.center_) / det.scale_).astype(np.float32) for a in (test, train))
    codes = lambda x: det.model_.encode(torch.from_numpy(windows(x, 30, 1)[0].reshape(-1, 60))).detach().numpy()
    ref = codes(z_train)
    np.testing.assert_allclose(det.reference_codes_, ref, rtol=1e-5, atol=1e-6)  # every training window: 671 < 20,000
    nn = NearestNeighbors(n_neighbors=6).fit(ref)
    own = nn.kneighbors(ref)[0][:, 5]  # the 5th nearest other window (the nearest is the window itself)
    new = nn.kneighbors(codes(z))[0][:, 4]

    spread = lambda v, T: per_step(v, np.arange(len(v)), T)  # the mean over the windows that hold a step
    rec, rec_train = series_errors(det.model_, z), series_errors(det.model_, z_train)
    want = -(robust_z(rec, rec_train) + robust_z(spread(new, 250), spread(own, 700)))
    np.testing.assert_allclose(det.score_samples(test), want, rtol=1e-4, atol=1e-4)
    # the training series' own scores, from fit's one pass, are score_samples' (its windows meet themselves)
    assert det.offset_ == pytest.approx(np.percentile(det.score_samples(train), 1), rel=1e-5, abs=1e-5)
    starts, ws = det.score_windows(test, stride=1)
    wrec = step_errors(det.model_, windows(z, 30, 1)[0]).mean(1)
    wrec_train = step_errors(det.model_, windows(z_train, 30, 1)[0]).mean(1)
    np.testing.assert_allclose(ws, -(robust_z(wrec, wrec_train) + robust_z(new, own)), rtol=1e-4, atol=1e-4)
    again = SeriesOutlierDetector.load(det.save(tmp_path / "det"))  # the reference codes as tensors, not JSON
    assert (tmp_path / "det" / "fitted.safetensors").is_file()
    np.testing.assert_array_equal(again.score_samples(test), det.score_samples(test))
    det.set_params(code_novelty=False).fit(train).save(tmp_path / "det")
    assert not (tmp_path / "det" / "fitted.safetensors").exists()  # the earlier save's reference is gone
    assert SeriesOutlierDetector.load(tmp_path / "det").reference_codes_ is None


def test_code_novelty_finds_a_new_pattern_that_reconstructs_well():
    """A sine stretch in a square wave: smooth, so reconstructed well, but its codes lie far from the training
    windows' codes (the SMAP channels where reconstruction alone ranked anomalies at chance look like this)."""
    from sklearn.metrics import roc_auc_score

    from aekit.estimators import SeriesOutlierDetector

    rng = np.random.default_rng(0)
    square = lambda t: np.sign(np.sin(2 * np.pi * t / 40))
    train = square(np.arange(2000)) + 0.05 * rng.normal(size=2000)
    test = square(np.arange(1000)) + 0.05 * rng.normal(size=1000)
    test[600:680] = np.sin(2 * np.pi * np.arange(600, 680) / 40)
    label = (np.arange(1000) >= 600) & (np.arange(1000) < 680)
    auc = {novelty: roc_auc_score(label, -SeriesOutlierDetector(window=32, code_novelty=novelty, random_state=0)
                                  .fit(train).score_samples(test)) for novelty in (False, True)}
    assert auc[True] > 0.98 and auc[False] < 0.95, auc


def test_aekit_score_adds_the_code_novelty_against_the_runs_training_steps(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from aekit.cli._app import app
    from aekit.evaluation.novelty import index, reference, step_scores
    from aekit.training.checkpoint import load_model

    run = lambda *a: CliRunner().invoke(app, [str(v) for v in a])  # noqa: E731
    monkeypatch.chdir(tmp_path)
    t = np.arange(900)
    x = np.sign(np.sin(2 * np.pi * t / 30)) + 0.05 * np.random.default_rng(0).normal(size=900)
    x[700:760] = np.sin(2 * np.pi * t[700:760] / 30)  # a new pattern after the training steps
    np.save("s.npy", x[:, None].astype(np.float32))
    res = run("train", "--preset", "tcn", "--data", "s.npy", "--window", 24, "--train-steps", 600, "--epochs", 3,
              "--out", "run", "--quiet")
    assert res.exit_code == 0, res.output
    model = load_model("run")
    meta = json.loads((tmp_path / "run" / "data.json").read_text())
    z = ((x[:, None] - meta["center"]) / np.asarray(meta["scale"])).astype(np.float32)
    codes, spread, _ = reference(model, z[:600])  # the training steps only
    want = step_scores(model, z, index(codes), spread)
    got = {}
    for flag in ("--novelty", "--no-novelty"):
        res = run("score", "run", "s.npy", flag, "--out", f"{flag}.csv")
        assert res.exit_code == 0, res.output
        got[flag] = np.loadtxt(f"{flag}.csv", delimiter=",", skiprows=1)[:, 1]
    assert "+ code novelty" in run("score", "run", "s.npy").output
    np.testing.assert_allclose(got["--novelty"], want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got["--no-novelty"], series_errors(model, z), rtol=1e-4, atol=1e-6)
    assert set(np.argsort(-got["--novelty"])[:30]) <= set(range(690, 770))
    (tmp_path / "s.npy").rename(tmp_path / "moved.npy")  # the training file gone: said, reconstruction alone
    res = run("score", "run", "moved.npy", "--out", "gone.csv")
    assert res.exit_code == 0 and "s.npy is not here" in res.output, res.output
    np.testing.assert_allclose(np.loadtxt("gone.csv", delimiter=",", skiprows=1)[:, 1], got["--no-novelty"])


def test_a_long_training_series_keeps_every_s_th_window_as_the_reference(monkeypatch):
    import aekit
    from aekit.evaluation import novelty

    torch.manual_seed(0)
    z = np.sin(np.arange(700) / 4.0)[:, None].astype(np.float32) + 0.1 * np.random.default_rng(0).normal(size=(700, 1))
    z = z.astype(np.float32)
    model = aekit.create("tcn", (20, 1))
    monkeypatch.setattr(novelty, "REFERENCE", 50)  # 681 windows → every 14th, and the last
    codes, spread, own_scores = novelty.reference(model, z)
    every = model.encode(torch.from_numpy(windows(z, 20, 1)[0].reshape(-1, 20))).detach().numpy()
    keep = np.r_[np.arange(0, 681, 14), 680]
    np.testing.assert_allclose(codes, every[keep], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(own_scores, novelty.step_scores(model, z, novelty.index(codes), spread), rtol=1e-5,
                               atol=1e-5)  # the training series' own scores are what step_scores gives it
