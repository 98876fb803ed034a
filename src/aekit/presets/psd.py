"""Predictive sparse decomposition (Kavukcuoglu et al. 2008) as the preset ``psd``, registered on import."""

from __future__ import annotations

import math

from .._checks import integer
from ..core.likelihoods import Gaussian
from ..core.model import Autoencoder
from ..parts.psd import DictionaryDecoder, PredictionError, Predictor, PSDEncoder
from ..parts.sparse import L1
from ._common import Output
from ._registry import register


@register("psd", "predictive sparse decomposition: sparse codes by FISTA, and a fast predictor f(x) trained "
          "to match them (Kavukcuoglu et al. 2008)", epochs=30, lr=3e-3)
def psd(input_shape: tuple[int, ...], code_size: int = 0, lam: float = 0.1, gamma: float = 1.0,
        steps: int = 30, out: Output = Output(likelihood="gaussian")) -> Autoencoder:
    """A dictionary of ``code_size`` unit-norm columns (0: 2 × D), sparse codes of weight ``lam`` found by
    ``steps`` FISTA iterations, and f(x) pulled to them with weight ``gamma``."""
    if out.likelihood != "gaussian":
        raise ValueError(f"psd needs likelihood='gaussian' (its energy is a squared error), got {out.likelihood!r}")
    d = math.prod(input_shape)
    k = integer(code_size or 2 * d, "code_size")
    dec = DictionaryDecoder(k, d)
    enc = PSDEncoder(Predictor(d, k), dec, lam, gamma, steps, out.sigma)
    return Autoencoder(enc, dec, Gaussian(out.sigma), input_shape=input_shape, code_size=k,
                       penalties=[L1(lam), PredictionError(gamma)])

