"""Defaults that adapt to the data: every preset works with its defaults on any table, small or large."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aekit.training import autosize
from aekit.training.autosize import STEPS, adapt, auto_code_size
from aekit.estimators import AutoencoderOutlierDetector
from aekit.presets._registry import PRESETS

# conv takes (C, H, W) images and the sequence presets windows (T, C) of a series, not rows
TABULAR = sorted(p for p in PRESETS if p not in ("conv", "tcn", "lstm", "transformer"))
# the overcomplete presets warn, by design, that an unregularised code as large as x can copy it
pytestmark = pytest.mark.filterwarnings("ignore:the code .* is at least as large as the input")


def test_auto_code_size_by_hand():
    assert [auto_code_size(d) for d in (1, 2, 3, 8, 300, 784, 10_000)] == [1, 1, 2, 3, 17, 28, 100]


def test_adapt_fills_only_what_is_unset():
    model, train = adapt("undercomplete", 300, 6, {"code_size": "auto"}, {})
    # width capped at 2·d = 12 → 16 (the floor); batch n // 8; 9 steps an epoch → the preset's 60 epochs
    assert model == {"code_size": 2, "hidden": [16]} and train == {"batch_size": 37, "epochs": 60}
    model, train = adapt("undercomplete", 300, 6, {"code_size": 4, "hidden": [64]}, {"epochs": 3, "batch_size": 8})
    assert model == {"code_size": 4, "hidden": [64]} and train == {"epochs": 3, "batch_size": 8}
    model, train = adapt("vae", 60_000, 784, {"code_size": "auto"}, {})  # MNIST: the preset's own network
    assert model == {"code_size": 28, "hidden": [200, 200]} and train == {"batch_size": 100, "epochs": 4}
    assert train["epochs"] * math.ceil(60_000 / 100) >= STEPS
    model, _ = adapt("ksparse", 100, 2, {"code_size": "auto"}, {})  # 2·d = 4 code units: k = 1, not 25
    assert model == {"k": 1}
    model, _ = adapt("sae-topk", 100, 2, {"code_size": "auto"}, {})  # 16·d = 32 latents
    assert model == {"k": 8, "aux_k": 16}


@pytest.mark.parametrize("preset", TABULAR)
@pytest.mark.parametrize("d", [2, 3, 8, 300])
def test_every_preset_works_with_its_defaults_on_small_tables(preset, d):
    X = np.random.default_rng(d).normal(size=(20, d))
    det = AutoencoderOutlierDetector(preset, random_state=0).fit(X)
    s = det.score_samples(X)
    assert s.shape == (20,) and np.isfinite(s).all()
    assert set(det.predict(X)) <= {-1, 1} and (det.predict(X) == -1).any()
    assert 1 <= det.n_components_ and (det.n_components_ < d or PRESETS[preset].options().get("code_size") == 0
                                       or preset == "vae")


@pytest.mark.parametrize("preset", TABULAR)
def test_defaults_on_a_large_table_train_about_steps_not_epochs(preset, monkeypatch):
    """The epoch rule aims at a number of optimiser steps, not epochs; shown with a tenth of the default's steps (the
    default's own number on MNIST is in ``test_adapt_fills_only_what_is_unset``) to keep the fits short."""
    monkeypatch.setattr(autosize, "STEPS", STEPS // 10)
    n = 100_000
    X = np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32)
    det = AutoencoderOutlierDetector(preset, random_state=0).fit(X)
    rows = det._sample_size(n)  # the rows each member of the default ensemble trains on
    assert rows == (n if det.n_estimators_ == 1 else 1024)
    per_epoch = math.ceil(rows / det.options_["train"]["batch_size"])
    steps = det.options_["train"]["epochs"] * per_epoch
    assert steps < STEPS // 10 + per_epoch and len(det.history_.rows) == det.options_["train"]["epochs"]
    assert np.isfinite(det.score_samples(X[:1000])).all()


def test_scores_are_higher_for_normal_rows_and_offset_is_the_contamination_quantile():
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(400, 2)) @ np.array([[1.0, 0.9], [0.0, 0.3]])  # a correlated pair
    far = rng.normal(size=(20, 2)) * 0.3 + np.array([3.0, -3.0])  # off the line, far from the mass
    X = np.concatenate([normal, far])
    det = AutoencoderOutlierDetector(contamination=20 / 420, random_state=0).fit(X)
    s = det.score_samples(X)
    assert s[400:].mean() < s[:400].mean()
    assert det.offset_ == pytest.approx(np.percentile(s, 100 * 20 / 420))
    assert abs((det.predict(X) == -1).sum() - 20) <= 1
    again = AutoencoderOutlierDetector(contamination=20 / 420, random_state=0).fit(X).score_samples(X)
    np.testing.assert_array_equal(s, again)  # the same random_state: identical scores
