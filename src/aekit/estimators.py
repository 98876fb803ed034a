"""scikit-learn estimators on aekit's model, presets and trainer (no second training loop).

:class:`AutoencoderTransformer` behaves like :class:`~sklearn.decomposition.PCA`;
:class:`AutoencoderOutlierDetector` like :class:`~sklearn.ensemble.IsolationForest`.
Every option left at ``None`` takes the preset's default (see ``aekit presets``).

Scaling: the estimators do not rescale ``X``. The default ``likelihood="gaussian"`` suits any
real-valued (e.g. standardised) data; ``likelihood="bernoulli"`` needs data in [0, 1] and says so
otherwise. With a VAE and grey-level data in [0, 1], ``score_samples`` is the ELBO under the
Bernoulli cross-entropy (a ranking score, not log p(x)).

Data larger than memory: wherever ``X`` is taken, it may also be a ``.npy`` path, a shard directory,
rows (:func:`aekit.rows.open_rows`, e.g. a Hugging Face dataset column) or an ``np.memmap``: ``fit``
streams it (``shuffle_buffer`` sets the shuffle window) and ``transform``/``score_samples``/``predict``
read it a chunk at a time (float32 out); only their output is held in memory.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, OutlierMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._checks import integer, number
from .checkpoint import load_model, save_model, write_json
from .metrics import batched
from .model import Autoencoder, fp32
from .presets import create, get_preset
from .rows import Rows, open_rows
from .sources import streamable
from .train import History, fit
from .variational import elbo

# constructor parameters that go to the preset, and those that go to the trainer
MODEL_PARAMS = ("hidden", "activation", "likelihood", "sigma", "penalty", "lam", "rho", "k", "alpha", "noise",
                "level", "beta", "free_bits")
TRAIN_PARAMS = ("epochs", "batch_size", "lr", "optimizer", "weight_decay", "schedule", "kl_warmup_epochs",
                "precision", "device", "shuffle_buffer")
SCORE_DRAWS = 16  # common random draws of h per sample in a VAE's score_samples
DTYPES = (np.float64, np.float32)


class _AutoencoderEstimator(BaseEstimator):
    """Interface shared by the two estimators: fit an aekit preset, encode, decode, score."""

    def _model_options(self, n_features: int) -> dict[str, Any]:
        accepted = get_preset(self.preset).options()
        n = integer(self.n_components, "n_components")
        if self.preset in ("undercomplete", "linear") and n >= n_features:
            raise ValueError(f"n_components={n} must be smaller than the number of features "
                             f"(n_features={n_features}) for preset {self.preset!r}")
        opts: dict[str, Any] = {"code_size": n}
        for name in MODEL_PARAMS:
            v = getattr(self, name)
            if v is None:
                continue
            if name not in accepted:
                if name == "likelihood":
                    continue  # a preset without the option has a fixed likelihood: checked in fit
                raise ValueError(f"{name}={v!r} does not apply to preset {self.preset!r}; "
                                 f"its options are {', '.join(accepted)}")
            opts[name] = list(v) if name == "hidden" else v
        return opts

    def fit(self, X: Any, y: Any = None) -> "_AutoencoderEstimator":
        """Train the preset on ``X`` (n_samples, n_features), in memory or streamed from storage; ``y`` is ignored."""
        rows = self._stored(X, reset=True)
        data = validate_data(self, X, dtype=DTYPES).astype(np.float32) if rows is None else rows
        self._validate_extra()
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        train = {k: getattr(self, k) for k in TRAIN_PARAMS if getattr(self, k) is not None}
        n_features = self.n_features_in_
        with torch.random.fork_rng(devices=[]):  # leave the caller's global torch RNG as it was
            torch.manual_seed(seed)
            model = create(self.preset, (n_features,), **self._model_options(n_features))
            if self.likelihood is not None and model.likelihood.name != self.likelihood:
                raise ValueError(f"preset {self.preset!r} has a fixed {model.likelihood.name!r} likelihood; "
                                 f"likelihood={self.likelihood!r} does not apply")
            self.history_: History = fit(model, data, seed=seed, val_fraction=0.0, progress=bool(self.verbose),
                                         **train)
        model.cpu().eval()
        self.model_: Autoencoder = model
        self.seed_ = seed
        self._n_features_out = model.code_size
        return self

    def _validate_extra(self) -> None:
        """Check the parameters a subclass adds."""

    def _stored(self, X: Any, reset: bool) -> Rows | None:
        """The rows of ``X`` when it is read from storage (a path, rows, a dataset, a memory map), else ``None``;
        sets (``reset``) or checks ``n_features_in_`` as ``validate_data`` does for arrays."""
        if not streamable(X):
            return None
        rows = open_rows(X)
        if rows.n == 0:
            raise ValueError(f"{rows.name} is empty (0 samples)")
        d = math.prod(rows.sample_shape)
        if reset:
            self.n_features_in_ = d
            self.__dict__.pop("feature_names_in_", None)  # a file has no column names
        elif d != self.n_features_in_:
            raise ValueError(f"X has {d} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input")
        return rows

    def _rowwise(self, X: Any, fn) -> np.ndarray:
        """``fn`` of ``X``'s rows: at once for an array, chunk by chunk (~8 MB stored) for stored data."""
        check_is_fitted(self)
        rows = self._stored(X, reset=False)
        if rows is None:
            return fn(validate_data(self, X, reset=False, dtype=DTYPES))
        return np.concatenate([fn(x) for _, x in rows.chunks()])

    def score_samples(self, X: Any) -> np.ndarray:
        """Per-sample score, higher is more typical: −(reconstruction NLL in nats), or the ELBO for a VAE.

        Deterministic, and each row's score depends on that row only: a VAE's ELBO is averaged over
        16 draws of the noise ε that are the same for every row (common random numbers).
        """
        return self._rowwise(X, self._score)

    def _score(self, X: np.ndarray) -> np.ndarray:
        m = self.model_
        if m.stochastic:
            eps = torch.randn(SCORE_DRAWS, m.code_size, generator=torch.Generator().manual_seed(self.seed_))
            return elbo(m, torch.from_numpy(X.astype(np.float32)), allow_nonbinary=True, eps=eps)["elbo"].numpy()
        # −log p(x | g(f(x))) alone: the penalties of the training loss are not part of the score
        return -batched(lambda xb: m.likelihood.nll(fp32(m.decoder(m.code(xb))), xb), m, X).astype(np.float64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

    # aekit checkpoints: safetensors weights + JSON, never pickle
    def save(self, path: str | Path) -> Path:
        """Write the fitted estimator to directory ``path`` (model.safetensors, model.json, estimator.json)."""
        check_is_fitted(self)
        path = save_model(self.model_, path)
        state = {k: v for k, v in vars(self).items() if k.endswith("_") and k not in ("model_", "history_")}
        state = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in state.items()}
        params = self.get_params()
        if not isinstance(params["random_state"], (int, type(None))):
            params["random_state"] = None  # a RandomState object is not JSON; seed_ keeps what it drew
        write_json(path / "estimator.json", {"class": type(self).__name__, "params": params,
                                             "fitted": state, "n_features_out": self._n_features_out})
        return path

    @classmethod
    def load(cls, path: str | Path) -> "_AutoencoderEstimator":
        """Read an estimator written by :meth:`save`."""
        path = Path(path)
        meta_path = path / "estimator.json"
        if not meta_path.is_file():
            raise ValueError(f"no estimator.json in {path}: not a saved {cls.__name__}")
        meta = json.loads(meta_path.read_text())
        if meta.get("class") != cls.__name__:
            raise ValueError(f"{path} was saved from {meta.get('class')}, not from {cls.__name__}")
        est = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["params"].items()})
        for k, v in meta["fitted"].items():
            setattr(est, k, np.asarray(v) if k == "feature_names_in_" else v)
        est.model_ = load_model(path, torch.device("cpu"))
        est._n_features_out = meta["n_features_out"]
        return est


class AutoencoderTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, _AutoencoderEstimator):
    """An aekit autoencoder as a scikit-learn transformer: codes out, reconstructions back.

    Parameters
    ----------
    preset
        Any registered preset (``aekit presets``), e.g. ``"undercomplete"``, ``"denoising"``, ``"vae"``.
    n_components
        Code size K.
    hidden, activation, likelihood, sigma, penalty, lam, rho, k, alpha, noise, level, beta, free_bits
        The preset's options (``None``: its default; an option the preset lacks is an error).
        ``likelihood`` defaults to ``"gaussian"`` for real-valued data.
    epochs, batch_size, lr, optimizer, weight_decay, schedule, kl_warmup_epochs, precision, device
        Training options (``None``: the preset's defaults).
    shuffle_buffer
        Rows in a shuffle window when ``X`` is streamed from storage (``None``: ~256 MB of stored data);
        an error with in-memory ``X``.
    random_state
        Seed of initialisation, shuffling and noise; the same seed gives identical codes.
    verbose
        Show the training progress bar.

    Attributes
    ----------
    model_ : Autoencoder
    history_ : History
    n_features_in_, feature_names_in_, seed_

    Example
    -------
    >>> from sklearn.datasets import load_digits
    >>> X = load_digits().data / 16
    >>> ae = AutoencoderTransformer(n_components=2, epochs=2, random_state=0).fit(X)
    >>> ae.transform(X[:3]).shape, ae.inverse_transform(ae.transform(X[:3])).shape
    ((3, 2), (3, 64))
    """

    def __init__(
        self,
        preset: str = "undercomplete",
        n_components: int = 2,
        *,
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
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
    ) -> None:
        self.preset, self.n_components = preset, n_components
        self.hidden, self.activation, self.likelihood, self.sigma = hidden, activation, likelihood, sigma
        self.penalty, self.lam, self.rho, self.k, self.alpha = penalty, lam, rho, k, alpha
        self.noise, self.level, self.beta, self.free_bits = noise, level, beta, free_bits
        self.epochs, self.batch_size, self.lr, self.optimizer = epochs, batch_size, lr, optimizer
        self.weight_decay, self.schedule, self.kl_warmup_epochs = weight_decay, schedule, kl_warmup_epochs
        self.precision, self.device, self.random_state, self.verbose = precision, device, random_state, verbose
        self.shuffle_buffer = shuffle_buffer

    def transform(self, X: Any) -> np.ndarray:
        """Codes of ``X``, (n_samples, n_components); the posterior mean for a VAE."""
        return self._rowwise(X, lambda x: batched(self.model_.encode, self.model_, x).astype(x.dtype, copy=False))

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Decoded reconstructions (means of p(x | h)) of codes ``X`` (n_samples, n_components)."""
        check_is_fitted(self)
        Z = check_array(X, dtype=DTYPES)
        if Z.shape[1] != self.model_.code_size:
            raise ValueError(f"X has {Z.shape[1]} features, but inverse_transform expects "
                             f"{self.model_.code_size} (n_components)")
        return batched(self.model_.decode, self.model_, Z).astype(Z.dtype, copy=False)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean of :meth:`score_samples` (like ``PCA.score``): what model selection maximises."""
        return float(np.mean(self.score_samples(X)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class AutoencoderOutlierDetector(OutlierMixin, _AutoencoderEstimator):
    """Anomaly detection by reconstruction (or ELBO, for a VAE): the contract of ``IsolationForest``.

    ``score_samples`` is higher for typical samples; ``offset_`` is the ``contamination``
    quantile of the training scores, ``decision_function = score_samples − offset_`` and
    ``predict`` is −1 (outlier) where it is negative, else +1.

    Parameters
    ----------
    preset, n_components, ...
        As :class:`AutoencoderTransformer` (``n_components`` defaults to 8).
    contamination
        Expected share of outliers in the training data, in (0, 0.5].

    Example
    -------
    >>> from sklearn.datasets import load_digits
    >>> X = load_digits().data / 16
    >>> det = AutoencoderOutlierDetector(contamination=0.05, epochs=2, random_state=0).fit(X)
    >>> sorted(set(det.predict(X[:50])) | {1})
    [-1, 1]
    """

    def __init__(
        self,
        preset: str = "undercomplete",
        n_components: int = 8,
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
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
    ) -> None:
        self.preset, self.n_components, self.contamination = preset, n_components, contamination
        self.hidden, self.activation, self.likelihood, self.sigma = hidden, activation, likelihood, sigma
        self.penalty, self.lam, self.rho, self.k, self.alpha = penalty, lam, rho, k, alpha
        self.noise, self.level, self.beta, self.free_bits = noise, level, beta, free_bits
        self.epochs, self.batch_size, self.lr, self.optimizer = epochs, batch_size, lr, optimizer
        self.weight_decay, self.schedule, self.kl_warmup_epochs = weight_decay, schedule, kl_warmup_epochs
        self.precision, self.device, self.random_state, self.verbose = precision, device, random_state, verbose
        self.shuffle_buffer = shuffle_buffer

    def _validate_extra(self) -> None:
        number(self.contamination, "contamination", 0, 0.5, low_open=True)

    def fit(self, X: Any, y: Any = None) -> "AutoencoderOutlierDetector":
        """Train on ``X`` (mostly normal samples) and set ``offset_`` from the training scores."""
        super().fit(X, y)
        self.offset_ = float(np.percentile(self.score_samples(X), 100 * self.contamination))
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) − offset_``: negative for outliers."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """+1 for inliers, −1 for outliers."""
        return np.where(self.decision_function(X) < 0, -1, 1)
