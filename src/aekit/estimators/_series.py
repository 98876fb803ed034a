"""Anomalies in a series, one score per time step, with scikit-learn's outlier-detector conventions."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import OutlierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .._checks import Interval, OneOf, check
from ..evaluation.novelty import index, reference, step_scores, window_scores
from ..evaluation.series import series_errors, standardizer, window_errors, windows
from ._base import DTYPES, _AutoencoderEstimator

STEPS = 400  # optimiser steps a fit aims at (batches of BATCH windows): chosen on real series, README
BATCH = 64


class SeriesOutlierDetector(OutlierMixin, _AutoencoderEstimator):
    """A sequence autoencoder as an outlier detector for a series: the rows of ``X`` are time steps.

    ``fit`` standardises each channel (on the training series), cuts windows of ``window`` steps every
    ``stride`` steps and trains a sequence preset on them (~400 optimiser steps of 64 windows unless
    ``epochs``/``batch_size`` say otherwise); ``score_samples`` scores every step of a series, so the scores
    line up with the rows of ``X``: −(the squared reconstruction error of the step, summed over channels,
    over the windows that contain it (:func:`aekit.evaluation.series.series_errors`), plus, with
    ``code_novelty``, the distance of those windows' codes to the training windows' codes), each part in
    units of its spread on the training series (:mod:`aekit.evaluation.novelty`).

    Parameters
    ----------
    preset
        A sequence preset: ``"tcn"``, ``"lstm"`` or ``"transformer"`` (or your own that reads (T, C)).
    n_components
        Code size K, or ``"auto"``: round(√(window · channels)) within [1, window · channels − 1].
    window, stride
        Steps per window, and steps between the starts of training windows (scoring uses every window).
    contamination
        Expected share of anomalous steps in the training series: sets ``offset_``.
    aggregate
        How a step's errors in the windows that contain it combine: ``"mean"`` (the default: chosen by
        leave-one-source-out on 85 real labelled series, where it doubled the mean VUS-PR of ``"min"``, 0.537
        against 0.334; README, Benchmarks) or ``"min"`` (its best reconstruction: an anomaly stays at its own
        steps instead of spreading over the windows it shares, but most normal steps score near 0 too).
    code_novelty
        Add each window's code novelty (its distance to the 5th nearest training window's code) to the
        reconstruction error: a new pattern that reconstructs well still scores high. Chosen on real series
        (README, Benchmarks); ``False`` scores by reconstruction alone.
    preset_options
        The preset's other options by name, e.g. ``{"channels": [16, 16]}`` or ``{"cell": "gru"}``.
    epochs, batch_size, lr, optimizer, weight_decay, schedule, precision, device
        Training options (``None``: the preset's defaults, adapted to the number of windows).
    n_jobs, random_state, verbose
        As :class:`AutoencoderOutlierDetector`'s.

    Attributes
    ----------
    model_, history_, n_components_, options_, seed_, n_features_in_ (channels)
    center_, scale_ : ndarray of shape (n_channels,)
        The per-channel standardisation fitted on the training series (a constant channel's scale is 1).
    offset_ : float
        ``score_samples`` of the training series at the ``contamination`` quantile.
    aggregate_ : str
        The ``aggregate`` of the last ``fit`` (scores and ``offset_`` use it).
    reference_codes_ : ndarray of shape (n_reference, n_components_) or None
        The codes of the training windows (at most 20,000, evenly spaced) that novelty is measured against
        (``code_novelty``), else None.
    spread_ : dict or None
        With ``code_novelty``, (median, scale) on the training series of the reconstruction error (``"step"``,
        ``"window"``) and of the novelty (``"novelty_step"``, ``"novelty_window"``); else None.

    Example
    -------
    >>> t = np.arange(600)
    >>> x = np.sin(2 * np.pi * t / 30)[:, None]
    >>> det = SeriesOutlierDetector(window=30, stride=3, epochs=5, random_state=0).fit(x)
    >>> y = x[:200].copy(); y[120] += 4
    >>> int(np.argmin(det.score_samples(y)))
    120
    """

    _own_constraints = {
        **_AutoencoderEstimator._own_constraints,
        "window": [Interval(int, 1)],
        "stride": [Interval(int, 1)],
        "contamination": [Interval(float, 0, 0.5, "right")],
        "aggregate": [OneOf("min", "mean")],
        "code_novelty": [OneOf(True, False)],
    }

    _budget = {"steps": STEPS, "batch_size": BATCH}

    def __init__(
        self,
        preset: str = "tcn",
        n_components: int | str = "auto",
        *,
        window: int = 64,
        stride: int = 1,
        contamination: float = 0.01,
        aggregate: str = "mean",
        code_novelty: bool = True,
        preset_options: dict[str, Any] | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        optimizer: str | None = None,
        weight_decay: float | None = None,
        schedule: str | None = None,
        precision: str | None = None,
        device: str = "cpu",
        n_jobs: int | None = None,
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
    ) -> None:
        self.preset, self.n_components, self.window, self.stride = preset, n_components, window, stride
        self.contamination, self.aggregate, self.preset_options = contamination, aggregate, preset_options
        self.code_novelty = code_novelty
        self.epochs, self.batch_size, self.lr, self.optimizer = epochs, batch_size, lr, optimizer
        self.weight_decay, self.schedule, self.precision, self.device = weight_decay, schedule, precision, device
        self.n_jobs, self.random_state, self.verbose = n_jobs, random_state, verbose

    def _input_shape(self) -> tuple[int, ...]:
        return (self.window, self.n_features_in_)

    def _series(self, X: Any, reset: bool) -> np.ndarray:
        """``X`` (T, C) validated and standardised (the scaler fitted when ``reset``), float32."""
        x = validate_data(self, _channels(X), reset=reset, dtype=DTYPES, ensure_min_samples=1)
        if reset:
            self._validate_params()
            scaler = standardizer(x)
            self.center_, self.scale_ = scaler.mean_, scaler.scale_
        if len(x) < self.window:
            raise ValueError(f"the series has {len(x)} steps, fewer than window={self.window}")
        return ((x - np.asarray(self.center_)) / np.asarray(self.scale_)).astype(np.float32)

    def fit(self, X: Any, y: Any = None) -> "SeriesOutlierDetector":
        """Train on the series ``X`` (n_steps, n_channels), mostly normal — ideally a stretch known to be normal,
        then score the rest; a 1-D array or a pandas Series is one channel, a DataFrame's columns must all be
        numeric channels (rows in time order). ``y`` is ignored."""
        z = self._series(X, reset=True)
        self.seed_ = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        w, _ = windows(z, self.window, self.stride)
        self.model_, self.history_ = self._train(w.reshape(len(w), -1), self.seed_)
        self.aggregate_ = self.aggregate  # what offset_ was measured with; set_params takes effect at fit
        with self._scoring_threads():
            if self.code_novelty:
                self.reference_codes_, self.spread_, train = reference(self.model_, z, self.aggregate_)
                train = -train
            else:
                self.reference_codes_ = self.spread_ = None
                train = self._steps(z)
        self.offset_ = float(np.percentile(train, 100 * self.contamination))
        return self

    def _index(self):
        """The k-NN index of ``reference_codes_``, built once (again after ``load``)."""
        if getattr(self, "_nn", None) is None or self._nn.n_samples_fit_ != len(self.reference_codes_):
            self._nn = index(np.asarray(self.reference_codes_, dtype=np.float32))
        return self._nn

    def _steps(self, z: np.ndarray) -> np.ndarray:
        """Per-step scores of the standardised series ``z``, higher is more typical."""
        if getattr(self, "reference_codes_", None) is None:  # one saved before code novelty too
            return -series_errors(self.model_, z, how=self.aggregate_)
        return -step_scores(self.model_, z, self._index(), self.spread_, self.aggregate_)

    def score_samples(self, X: Any) -> np.ndarray:
        """Per-step score of the series ``X`` (n_steps,), higher is more typical: −(the step's squared error
        in standardised units, summed over channels, combined over the windows that contain it by
        ``aggregate_``); with ``code_novelty``, −(that error's robust z + the robust z of the mean code
        novelty of those windows), each z in units of the training series' spread."""
        check_is_fitted(self)
        z = self._series(X, reset=False)
        with self._scoring_threads():
            return self._steps(z)

    def score_windows(self, X: Any, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Per-window scores of the series ``X``: the first step of each window of ``window`` steps, every
        ``stride`` steps (the last ending at the last step), shape (n_windows,), and its score, higher is
        more typical: −(the mean over its steps of their squared error summed over channels); with
        ``code_novelty``, −(that error's robust z + the robust z of the window's code novelty)."""
        check_is_fitted(self)
        check(stride, "stride", Interval(int, 1))
        z = self._series(X, reset=False)
        with self._scoring_threads():
            if getattr(self, "reference_codes_", None) is None:  # one saved before code novelty too
                starts, error = window_errors(self.model_, z, stride)
            else:
                starts, error = window_scores(self.model_, z, self._index(), self.spread_, stride)
        return starts, -error

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) − offset_``: negative for anomalous steps."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """+1 for typical steps, −1 for anomalous ones."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


def _channels(X: Any) -> Any:
    """``X`` with one column per channel: a 1-D array or a pandas Series is one channel; a DataFrame's columns
    must all hold numbers (a time or text column is named in a one-line error, not a numpy exception)."""
    if getattr(X, "ndim", None) == 1 and hasattr(X, "to_frame"):  # a pandas Series: its name stays the channel's
        return X.to_frame()
    dtypes = getattr(X, "dtypes", None)
    if dtypes is not None and hasattr(X, "columns"):
        for name, dtype in zip(X.columns, dtypes):
            if getattr(dtype, "kind", "O") not in "biuf":
                raise ValueError(f"column {name!r} holds {dtype} values, not numbers: a series' rows are its time "
                                 "steps in order and its columns its channels; drop it (X.drop(columns=...)), "
                                 "after sorting the rows by it if it is the time")
        return X
    return np.asarray(X).reshape(-1, 1) if np.ndim(X) == 1 else X

