"""An aekit autoencoder as a scikit-learn transformer, like PCA."""


from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted

from ..evaluation.metrics import batched
from ._base import DTYPES, _AutoencoderEstimator


class AutoencoderTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, _AutoencoderEstimator):
    """An aekit autoencoder as a scikit-learn transformer: codes out, reconstructions back.

    Parameters
    ----------
    preset
        Any registered preset (``aekit presets``), e.g. ``"undercomplete"``, ``"denoising"``, ``"vae"``.
    n_components
        Code size K, or ``"auto"``: round(√d) within [1, d − 1] (an overcomplete preset keeps its own).
    hidden, activation, likelihood, sigma, penalty, lam, rho, k, alpha, noise, level, beta, free_bits
        The preset's options (``None``: its default; an option the preset lacks is an error).
        ``likelihood`` defaults to ``"gaussian"`` for real-valued data.
    preset_options
        Any other option of the preset, by name (``aekit presets`` lists them), e.g. ``{"tied": True}``,
        ``{"aux_k": 32}`` or ``{"channels": [16, 32]}``; one the preset lacks, or one that has a parameter
        above, is an error.
    epochs, batch_size, lr, optimizer, weight_decay, schedule, kl_warmup_epochs, precision, device
        Training options (``None``: the preset's defaults).
    shuffle_buffer
        Rows in a shuffle window when ``X`` is streamed from storage (``None``: ~256 MB of stored data);
        an error with in-memory ``X``.
    n_jobs
        CPU threads torch uses while fitting and scoring, the caller's setting restored after: ``None``
        (automatic: one for a small model, where more only wait on each other; else torch's setting), -1 for
        every core, or a count. Results do not depend on it.
    random_state
        Seed of initialisation, shuffling and noise; the same seed gives identical codes.
    verbose
        Show the training progress bar.

    Attributes
    ----------
    model_ : Autoencoder
    history_ : History
    n_components_ : int
        The code size used.
    options_ : dict
        The preset's and the trainer's options used, defaults adapted to the data included.
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
        n_components: int | str = 2,
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
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
    ) -> None:
        self.preset, self.n_components = preset, n_components
        self.hidden, self.activation, self.likelihood, self.sigma = hidden, activation, likelihood, sigma
        self.penalty, self.lam, self.rho, self.k, self.alpha = penalty, lam, rho, k, alpha
        self.noise, self.level, self.beta, self.free_bits = noise, level, beta, free_bits
        self.preset_options = preset_options
        self.epochs, self.batch_size, self.lr, self.optimizer = epochs, batch_size, lr, optimizer
        self.weight_decay, self.schedule, self.kl_warmup_epochs = weight_decay, schedule, kl_warmup_epochs
        self.precision, self.device, self.random_state, self.verbose = precision, device, random_state, verbose
        self.shuffle_buffer, self.n_jobs = shuffle_buffer, n_jobs

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
