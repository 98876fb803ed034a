"""Anomaly scores that survive contaminated training data: ensembles on subsamples and trimmed refits.

In the unsupervised setting the training rows include the anomalies, and an autoencoder with capacity to
spare learns to reconstruct them too. :class:`~aekit.estimators.AutoencoderOutlierDetector` has two
defences, measured in ``benchmarks/tabular_anomaly.py``:

- **an ensemble on subsamples** (Chen et al. 2017, "Outlier detection with autoencoder ensembles"; the
  subsampling of Liu et al.'s isolation forest): ``n_estimators`` autoencoders, each trained on
  ``max_samples`` rows drawn without replacement with its own seed; each member's scores are
  standardised by the median and interquartile range of its scores on all training rows, and averaged;
- **trimming** (in the spirit of Zhou & Paffenroth's 2017 robust deep autoencoders, which split the data
  into a part the autoencoder reconstructs and a sparse part it need not): train half the epochs, drop
  the ``trim`` share of training rows reconstructed worst, and train the other half on the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..store.rows import Rows, SubsetRows

# n_estimators="auto" trains this many members on tables (at most AUTO_MAX_FEATURES features): a better mean rank
# in both settings of benchmarks/tabular_anomaly.py, for about five times the fit time
AUTO_MEMBERS = 5


def take(data: np.ndarray | Rows, idx: np.ndarray) -> np.ndarray | Rows:
    """Rows ``idx`` of an array (a copy) or of stored rows (read lazily, in sorted order)."""
    if isinstance(data, Rows):
        return SubsetRows(data, idx)
    return data[np.sort(idx)]


def subsample(data: np.ndarray | Rows, m: int, rng: np.random.Generator) -> np.ndarray | Rows:
    """``m`` rows of ``data`` drawn without replacement (all of them, in order, when ``m`` ≥ n)."""
    n = len(data)
    return data if m >= n else take(data, rng.choice(n, m, replace=False))


def trimmed_fit(train: Callable[[Any, int], None], score: Callable[[Any], np.ndarray], data: np.ndarray | Rows,
                epochs: int, trim: float) -> int:
    """Train ``epochs // 2`` epochs on ``data``, drop its ``trim`` share of lowest-scoring rows (the worst
    reconstructed), train the remaining epochs on the rest; returns the number of rows dropped.

    ``train(data, epochs)`` continues training the same model; ``score(data)`` is higher for typical rows.
    """
    first = max(1, epochs // 2)
    train(data, first)
    s = score(data)
    drop = int(trim * len(s))
    if drop == 0:
        train(data, max(1, epochs - first))
        return 0
    keep = np.argsort(s, kind="stable")[drop:]  # ascending: the lowest scores are the least typical rows
    train(take(data, keep), max(1, epochs - first))
    return drop
