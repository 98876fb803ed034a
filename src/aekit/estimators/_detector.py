"""An aekit autoencoder, or an ensemble of them, as a scikit-learn outlier detector, like IsolationForest."""


from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import OutlierMixin
from sklearn.utils import check_random_state

from .._checks import BOOL, Interval, OneOf
from ..core.model import fp32
from ..evaluation.metrics import batched
from ..store.rows import Rows
from . import _tails as tails
from ._base import _AutoencoderEstimator, _score
from ._density import AUTO_MAX_FEATURES, combine, fit_robust, parts
from ..evaluation.novelty import robust_scale
from ._robust import AUTO_MEMBERS, subsample
from ._scaling import ScaledRows, fit_scale, scaled


class AutoencoderOutlierDetector(OutlierMixin, _AutoencoderEstimator):
    """Anomaly detection by reconstruction (or ELBO, for a VAE): the contract of ``IsolationForest``.

    ``score_samples`` is higher for typical samples; ``offset_`` is the ``contamination``
    quantile of the training scores, ``decision_function = score_samples − offset_`` and
    ``predict`` is −1 (outlier) where it is negative, else +1. With ``code_density`` the score also
    counts how atypical a row's code is (:mod:`aekit.estimators._density`); by default for tables (at
    most 100 features), not for a VAE.

    Parameters
    ----------
    preset, n_components, ...
        As :class:`AutoencoderTransformer` (``n_components`` defaults to ``"auto"``).
    contamination
        Expected share of outliers in the training data, in (0, 0.5].
    n_estimators
        Autoencoders in the ensemble; with more than one, each trains on ``max_samples`` rows drawn
        without replacement with its own seed, and ``score_samples`` averages the members' scores, each
        standardised by the median and IQR of its scores on the training rows (:mod:`aekit.estimators._robust`).
        ``"auto"``: 5 for data of at most 100 features (tables, where it was measured to help most with
        anomalies among the training rows), else 1; ``n_estimators_`` is the number used.
    max_samples
        Rows each member trains on: a count, a share in (0, 1], or ``"auto"``: all rows for a single
        model, else min(n, 1024). Sizes, widths and epochs adapt to the rows a member sees.
    trim
        Share in [0, 0.5) of training rows, reconstructed worst after half the epochs, that the other half
        does not train on (0: none); robustness to anomalies among the training rows.
    code_density
        ``True``: score by the reconstruction's residuals, each feature's squared residual divided by
        its mean on the training rows, and by the code's Mahalanobis distance under a Gaussian fitted to
        the training rows' codes, each part standardised by its median and IQR on the training rows
        (DAGMM's idea, Zong et al. 2018); ``False``: reconstruction (or the ELBO) alone; ``"auto"``:
        ``True`` for data of at most 100 features, but not for a VAE, whose ELBO scores the code already
        (its KL term). Measured: it helps on tables, and hurt on MNIST's 784 pixels and on the VAE
        (:mod:`aekit.estimators._density`, ``benchmarks/tabular_anomaly.py``, ``benchmarks/anomaly.py``).
    tails
        ``True``: the score also counts how far out in each feature's own tails a row lies (ECOD's idea,
        Li et al. 2022: Σⱼ −log of the share of training rows at least as extreme in feature j), averaged
        with the autoencoder's score, both standardised by their median and IQR on the training rows
        (:mod:`aekit.estimators._tails`); ``"auto"``: ``True`` for data of at most 100 features. Measured:
        it finds what no autoencoder sees in tables with flags and counts (a value past a column's range).
    scale
        ``True``: centre each feature on its training mean and divide it by max(σⱼ, ½·σ̄), σ̄ the root mean
        square of the features' standard deviations (:mod:`aekit.estimators._scaling`); the model trains and
        scores in those units (``center_``, ``scale_``; ``None`` when off). ``"both"``: each member is
        trained twice, on the rows as they are and standardised so, and the two scores are averaged, each
        standardised by its median and IQR on the training rows (as an ensemble's members); twice the fit
        time. ``"auto"``: ``"both"`` for data of more than 100 features (images) with a Gaussian likelihood,
        else ``False``; ``units_`` says per model whether it reads standardised rows. On one-class image
        tasks (``benchmarks/anomaly.py``) each setting alone was far behind on one of MNIST and Fashion-MNIST,
        the pair on neither. Unlike a ``StandardScaler`` in a pipeline, the floor keeps near-constant features (an
        image's border) from dominating the score, and stored rows still stream.
    early_stopping
        Hold out 10 % of the rows (seeded) and stop when their reconstruction loss has not improved for
        5 epochs, keeping the best weights.

    Example
    -------
    >>> from sklearn.datasets import load_digits
    >>> X = load_digits().data / 16
    >>> det = AutoencoderOutlierDetector(contamination=0.05, epochs=2, random_state=0).fit(X)
    >>> sorted(set(det.predict(X).tolist()))  # −1: the 5 % least typical rows
    [-1, 1]
    """

    def __init__(
        self,
        preset: str = "undercomplete",
        n_components: int | str = "auto",
        *,
        contamination: float = 0.1,
        hidden: tuple[int, ...] | None = None,
        activation: str | None = None,
        likelihood: str | None = "gaussian",
        sigma: float | None = None,
        penalty: str | None = None,
        lam: float | None = None,
        rho: float | None = None,
        k: int | None = None,
        alpha: float | None = None,
        noise: str | None = None,
        level: float | None = None,
        beta: float | None = None,
        free_bits: float | None = None,
        preset_options: dict[str, Any] | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        optimizer: str | None = None,
        weight_decay: float | None = None,
        schedule: str | None = None,
        kl_warmup_epochs: float | None = None,
        precision: str | None = None,
        device: str = "cpu",
        shuffle_buffer: int | None = None,
        n_jobs: int | None = None,
        n_estimators: int | str = "auto",
        max_samples: int | float | str = "auto",
        trim: float = 0.0,
        code_density: bool | str = "auto",
        tails: bool | str = "auto",
        scale: bool | str = "auto",
        early_stopping: bool = False,
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
    ) -> None:
        self.preset, self.n_components, self.contamination = preset, n_components, contamination
        self.n_estimators, self.max_samples, self.trim = n_estimators, max_samples, trim
        self.early_stopping, self.code_density, self.tails = early_stopping, code_density, tails
        self.scale = scale
        self.hidden, self.activation, self.likelihood, self.sigma = hidden, activation, likelihood, sigma
        self.penalty, self.lam, self.rho, self.k, self.alpha = penalty, lam, rho, k, alpha
        self.noise, self.level, self.beta, self.free_bits = noise, level, beta, free_bits
        self.preset_options = preset_options
        self.epochs, self.batch_size, self.lr, self.optimizer = epochs, batch_size, lr, optimizer
        self.weight_decay, self.schedule, self.kl_warmup_epochs = weight_decay, schedule, kl_warmup_epochs
        self.precision, self.device, self.random_state, self.verbose = precision, device, random_state, verbose
        self.shuffle_buffer, self.n_jobs = shuffle_buffer, n_jobs

    _own_constraints = {
        **_AutoencoderEstimator._own_constraints,
        "contamination": [Interval(float, 0, 0.5, "right")],
        "n_estimators": [Interval(int, 1), OneOf("auto")],
        "max_samples": [Interval(int, 1), Interval(float, 0, 1, "right"), OneOf("auto")],
        "trim": [Interval(float, 0, 0.5, "left")],
        "code_density": [OneOf(True, False, "auto")],
        "tails": [OneOf(True, False, "auto")],
        "scale": [OneOf(True, False, "both", "auto")],
        "early_stopping": [BOOL],
    }

    def _validation(self) -> dict[str, Any]:
        return {"val_fraction": 0.1, "patience": 5} if self.early_stopping else {"val_fraction": 0.0}

    def _sample_size(self, n: int) -> int:
        m = self.max_samples
        if m == "auto":
            return n if self.n_estimators_ == 1 else min(n, 1024)
        return max(1, round(m * n)) if isinstance(m, float) else min(int(m), n)

    def fit(self, X: Any, y: Any = None) -> "AutoencoderOutlierDetector":
        """Train on ``X`` (mostly normal samples) and set ``offset_`` from the training scores."""
        data = self._fit_data(X)
        self.seed_ = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        rng = np.random.default_rng(self.seed_)
        wide = self.n_features_in_ > AUTO_MAX_FEATURES
        self.n_estimators_ = self.n_estimators if self.n_estimators != "auto" else 1 if wide else AUTO_MEMBERS
        gaussian = str(self.likelihood).startswith("gaussian")  # reads any real value, so standardised rows too
        mode = self.scale if self.scale != "auto" else "both" if wide and gaussian else False
        if mode and self.likelihood == "bernoulli":
            raise ValueError(f"scale={self.scale!r} standardises the features, out of the [0, 1] that the Bernoulli "
                             "likelihood reads; use likelihood='gaussian' or scale=False")
        units = [False, True] if mode == "both" else [bool(mode)]  # per sample drawn: raw and/or standardised
        self.center_, self.scale_ = fit_scale(data) if mode else (None, None)
        size = self._sample_size(len(data))
        views = {std: self._in_units(data, std) for std in units}  # an array standardised once, if at all
        self.models_, self.seeds_, self.units_, self.scales_ = [], [], [], []
        for i in range(self.n_estimators_):
            seed = self.seed_ if i == 0 else int(rng.integers(np.iinfo(np.int32).max))
            sample = subsample(data, size, rng)
            for std in units:
                part = views[std] if sample is data else self._in_units(sample, std)
                model, history = self._train(part, seed, self.trim)
                self.models_.append(model)
                self.seeds_.append(seed)
                self.units_.append(std)
                if len(self.models_) == 1:
                    self.model_, self.history_ = model, history
        # every member scores the training rows once: its scale (an ensemble's) and the offset come from them
        use = self.code_density if self.code_density != "auto" else not self.model_.stochastic and not wide
        self.densities_, raw = [], []
        with self._scoring_threads():
            for m, s, std in zip(self.models_, self.seeds_, self.units_):
                if use:
                    g, r = self._density(m, views[std])
                    self.densities_.append(g)
                else:
                    r = self._chunked(views[std], lambda x, m=m, s=s: _score(m, x, s))
                raw.append(r)
        self.scales_ = [robust_scale(r) for r in raw] if len(raw) > 1 else []
        train = self._averaged(raw)
        data = views[units[0]]  # the tails read the first member's units (ranks: the same in either)
        self.tails_ = {}
        if self.tails if self.tails != "auto" else self.n_features_in_ <= AUTO_MAX_FEATURES:
            sample = subsample(data, tails.MAX_ROWS, rng)
            self.tails_ = tails.fit(np.concatenate([_f32(x) for x in self._chunks(sample)]))
            t = self._chunked(data, self._surprise)
            self.tails_["scales"] = [robust_scale(train), robust_scale(t)]
            train = self._with_tails(train, t)
        self.offset_ = float(np.percentile(train, 100 * self.contamination))
        return self

    def _density(self, m, data) -> tuple[dict[str, Any], np.ndarray]:
        """Member ``m``'s Gaussians of the training rows' codes and residuals with the robust scales of both
        score parts (:func:`~.density.fit_robust`), and the training rows' scores."""
        if isinstance(data, Rows):  # stored rows: encoded again, chunk by chunk, on each of fit_robust's reads
            return fit_robust(lambda: (_split(m, x) for x in self._chunks(data)))
        whole = [_split(m, data)]  # an array: encoded once
        return fit_robust(lambda: whole)

    def _member(self, i: int, m, seed: int, X: np.ndarray) -> np.ndarray:
        """Member ``i`` (model ``m``)'s score of ``X``: reconstruction, or with the code's density if fitted."""
        densities = getattr(self, "densities_", [])  # none in a detector saved before code_density
        if not densities:
            return _score(m, X, seed)
        return combine(parts(*_split(m, X), densities[i]), densities[i])

    def _units(self) -> list[bool]:
        """Per model, whether it reads standardised rows (a detector saved before ``units_``: all or none)."""
        return getattr(self, "units_", None) or [getattr(self, "center_", None) is not None] * len(self._models())

    def _models(self) -> list:
        return getattr(self, "models_", [self.model_])  # a detector saved before ensembles has one model

    def _in_units(self, data: np.ndarray | Rows, std: bool) -> np.ndarray | Rows:
        """``data`` standardised by ``center_`` and ``scale_`` if ``std``, else as it is."""
        if not std:
            return data
        center, scale = np.asarray(self.center_, np.float32), np.asarray(self.scale_, np.float32)
        return ScaledRows(data, center, scale) if isinstance(data, Rows) else scaled(data, center, scale)

    def _score(self, X: np.ndarray) -> np.ndarray:
        units = self._units()
        views = {std: self._in_units(X, std) for std in set(units)}  # X standardised once, if at all
        seeds = getattr(self, "seeds_", [self.seed_])
        scores = [self._member(i, m, s, views[u]) for i, (m, s, u) in enumerate(zip(self._models(), seeds, units))]
        score = self._averaged(scores)
        if getattr(self, "tails_", {}):  # none in a detector saved before tails
            score = self._with_tails(score, self._surprise(views[units[0]]))
        return score

    def _averaged(self, scores: list[np.ndarray]) -> np.ndarray:
        """The members' scores as one: each standardised by its training median and IQR (``scales_``), averaged."""
        if len(scores) == 1:
            return scores[0]
        return np.mean([(r - loc) / scale for r, (loc, scale) in zip(scores, self.scales_)], axis=0)

    def _surprise(self, X: np.ndarray) -> np.ndarray:
        """The tails' surprise of rows ``X`` as the model reads them (float32), so a training row scores as in ``fit``."""
        return tails.surprise(_f32(X), self.tails_)

    def _with_tails(self, score: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The autoencoder's ``score`` and the tails' surprise ``t``, each standardised, averaged (higher is typical)."""
        (la, sa), (lt, st) = self.tails_["scales"]
        return ((score - la) / sa - (t - lt) / st) / 2

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) − offset_``: negative for outliers."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """+1 for inliers, −1 for outliers."""
        return np.where(self.decision_function(X) < 0, -1, 1)


def _f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _split(m, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Model ``m``'s codes h = f(x) (n, K) and residuals x − E[x | h] (n, D) of rows ``x``, in one pass."""
    def both(xb: torch.Tensor) -> torch.Tensor:
        h = m.code(xb)
        return torch.cat([fp32(h).flatten(1), (fp32(xb) - fp32(m.likelihood.mean(m.decoder(h)))).flatten(1)], 1)
    out = batched(both, m, x)
    return out[:, : m.code_size], out[:, m.code_size :]
