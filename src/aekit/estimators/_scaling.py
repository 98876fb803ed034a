"""Per-feature standardisation with a floor: the outlier detector's ``scale`` option.

Each feature is centred on its mean over the training rows and divided by max(σⱼ, c·σ̄), where σ̄ is the root
mean square of the σⱼ (the data's overall scale, so the rule is unit-free) and c = :data:`FLOOR`. Without the
floor, a feature that hardly varies in training (an image's border pixels) is divided by a tiny σ and any
deviation from it dominates the reconstruction error: PyOD's AutoEncoder, which standardises so, falls well
behind aekit on raw pixels on MNIST's one-class tasks (``benchmarks/anomaly.py``; the README quotes the table). A constant feature (σ = 0 everywhere) is only centred.

Rows (an array, a file, shards) are measured in one pass, chunk by chunk, in float64; stored rows are read
through :class:`ScaledRows`, so training still streams.
"""

from __future__ import annotations

import numpy as np

from ..store.rows import Rows, as_float, moments

FLOOR = 0.5  # c: no feature's scale is below c times the root mean square of the features' standard deviations


def fit_scale(data: np.ndarray | Rows, floor: float = FLOOR) -> tuple[np.ndarray, np.ndarray]:
    """(center, scale), float32 of shape (D,): the features' means and max(σⱼ, ``floor``·σ̄) over ``data``'s rows.

    Example
    -------
    >>> x = np.array([[0.0, 10.0, 5.0], [2.0, 30.0, 5.0]])
    >>> center, scale = fit_scale(x, floor=0.5)
    >>> center.tolist(), [round(float(s), 3) for s in scale]  # σ = (1, 10, 0), σ̄ = √(101 / 3): floor 2.9
    ([1.0, 20.0, 5.0], [2.901, 10.0, 2.901])
    """
    mean, sd = moments(data)
    scale = np.maximum(sd, floor * np.sqrt((sd**2).mean()))
    scale[scale == 0] = 1.0  # every feature constant: nothing to scale by
    return np.asarray(mean, np.float32), scale.astype(np.float32)


def scaled(x: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Rows ``x`` (n, D) standardised: (x − center) / scale, float32."""
    return ((x - center) / scale).astype(np.float32, copy=False)


class ScaledRows(Rows):
    """Stored ``rows`` read standardised by ``center`` and ``scale``, float32: training streams them as they are."""

    def __init__(self, rows: Rows, center: np.ndarray, scale: np.ndarray) -> None:
        self.rows, self.center, self.scale = rows, center, scale
        self.n, self.sample_shape, self.name = rows.n, rows.sample_shape, rows.name
        self.dtype = np.dtype(np.float32)

    def read(self, lo: int, hi: int) -> np.ndarray:
        x = as_float(self.rows.read(lo, hi))
        return scaled(x, self.center, self.scale).reshape(len(x), *self.sample_shape)
