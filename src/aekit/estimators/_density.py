"""The code's density as part of an anomaly score: reconstruction alone misses what reconstructs well.

An autoencoder reconstructs an anomaly well when it lies near the learned manifold but where the
normal rows are rare (e.g. an extreme of a dominant direction); its code is then atypical although
its reconstruction error is not. DAGMM (Zong et al. 2018, "Deep autoencoding Gaussian mixture model
for unsupervised anomaly detection") scores such rows by the energy of a density fitted to the codes
together with the reconstruction error. :class:`~aekit.estimators.AutoencoderOutlierDetector` does so
with two Gaussians fitted (after training, by moments) to the training rows, one to their codes and
one, per feature, to their residuals:

    score = −(z_rec + z_code) / 2,   z_rec = robust z of Σⱼ eⱼ² / vⱼ,  e = x − E[x | f(x)],
                                              vⱼ = the training rows' mean eⱼ²
                                      z_code = robust z of (h − μ)ᵀ Σ⁻¹ (h − μ),  h = f(x)

each z standardised by the median and IQR of the training rows' values (:func:`~aekit.evaluation.novelty.robust_scale`),
so the two parts weigh the same whatever their units. The residual's part is the reconstruction NLL
under a Gaussian with a variance per feature, so a feature the model reconstructs poorly for every row
does not drown the others. The moments are fitted twice (:func:`fit_robust`): on all training rows,
then without the ``DROP`` share that scores worst, so that anomalies among the training rows (the
unsupervised setting) do not widen the Gaussians that should expose them (one reweighting step, as in
the reweighted MCD of Rousseeuw & Van Driessen 1999). Measured in ``benchmarks/tabular_anomaly.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..evaluation.novelty import robust_scale

RIDGE = 1e-6  # added to Σ's diagonal and to every vⱼ, relative to their mean: a constant unit stays invertible
# "auto" adds the density up to this many features. Measured (benchmarks/tabular_anomaly.py, anomaly.py): on
# the 22 tables (d ≤ 60) it lifted the undercomplete detector's mean rank, most where the anomalies are among
# the training rows; on MNIST (d = 784), where reconstruction alone separates the digits, it lowered ROC-AUC.
# No data between the two was measured.
AUTO_MAX_FEATURES = 100
# fit_robust refits without this share of the training rows (benchmarks/tabular_anomaly.py): it helps when anomalies
# are among the training rows and costs little on clean ones, where twice this share cost more
DROP = 0.05


def fit(chunks: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """The codes' mean and precision and the residuals' variance per feature, by float64 moments in one
    pass over chunks of (codes (m, K), residuals (m, D)).

    Example
    -------
    >>> h, e = np.array([[0.0, 1.0], [2.0, 1.0], [1.0, 4.0]]), np.array([[1.0], [-1.0], [2.0]])
    >>> g = fit([(h, e)])
    >>> g["mean"], [round(v, 4) for v in g["variance"]]  # variance: the mean e², plus RIDGE of itself
    ([1.0, 2.0], [2.0])
    """
    n, s, ss, se = 0, 0.0, 0.0, 0.0
    for h, e in chunks:
        h, e = (np.asarray(a, dtype=np.float64).reshape(len(a), -1) for a in (h, e))
        n, s, ss, se = n + len(h), s + h.sum(0), ss + h.T @ h, se + np.square(e).sum(0)
    mean = s / n
    cov = ss / n - np.outer(mean, mean)
    cov += (RIDGE * max(float(np.trace(cov)) / len(mean), 1e-12)) * np.eye(len(mean))
    var = se / n + RIDGE * max(float(np.mean(se / n)), 1e-12)
    return {"mean": mean.tolist(), "precision": np.linalg.pinv(cov, hermitian=True).tolist(), "variance": var.tolist()}


def mahalanobis(h: np.ndarray, g: dict[str, Any]) -> np.ndarray:
    """(h − μ)ᵀ Σ⁻¹ (h − μ) per row of ``h`` (n, K) under :func:`fit`'s ``g``, shape (n,).

    Example
    -------
    >>> g = {"mean": [0.0, 0.0], "precision": [[1.0, 0.0], [0.0, 0.25]]}
    >>> mahalanobis(np.array([[1.0, 2.0]]), g)
    array([2.])
    """
    c = np.asarray(h, dtype=np.float64).reshape(len(h), -1) - np.asarray(g["mean"])
    return np.einsum("ij,ij->i", c @ np.asarray(g["precision"]), c)  # a BLAS product first: the 3-operand einsum
    # loops in C over n·K² terms, 10× slower at n = 100,000


def energy(e: np.ndarray, g: dict[str, Any]) -> np.ndarray:
    """Σⱼ eⱼ² / vⱼ per row of the residuals ``e`` (n, D) under :func:`fit`'s ``g``, shape (n,)."""
    e = np.asarray(e, dtype=np.float64).reshape(len(e), -1)
    return (np.square(e) / np.asarray(g["variance"])).sum(1)


def parts(h: np.ndarray, e: np.ndarray, g: dict[str, Any]) -> np.ndarray:
    """The two parts of the score before standardising, (n, 2): residual energy and code distance."""
    return np.c_[energy(e, g), mahalanobis(h, g)]


def combine(p: np.ndarray, g: dict[str, Any]) -> np.ndarray:
    """−(z_rec + z_code) / 2 from :func:`parts` ``p`` (n, 2), with the robust scales ``g`` keeps."""
    (lr, sr), (lc, sc) = g["reconstruction"], g["code"]
    return -((p[:, 0] - lr) / sr + (p[:, 1] - lc) / sc) / 2


def fit_robust(chunks: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]],
               drop: float = DROP) -> tuple[dict[str, Any], np.ndarray]:
    """:func:`fit` and the robust scales of both parts, refitted without the ``drop`` share of rows that score
    worst; returns them with the rows' scores (higher is typical). ``chunks()`` yields (codes, residuals)
    afresh on every call (it is read four times).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> h, e = rng.normal(size=(200, 2)), rng.normal(size=(200, 3))
    >>> h[:5] += 50  # five far codes: left out of the refitted moments, and scored lowest
    >>> g, score = fit_robust(lambda: [(h, e)])
    >>> sorted(np.argsort(score)[:5].tolist())
    [0, 1, 2, 3, 4]
    """
    def scored(g: dict[str, Any], rows: np.ndarray | slice) -> np.ndarray:
        p = np.concatenate([parts(h, e, g) for h, e in chunks()])
        g.update(reconstruction=list(robust_scale(p[rows, 0])), code=list(robust_scale(p[rows, 1])))
        return combine(p, g)

    first = scored(fit(chunks()), slice(None))
    keep = first >= np.percentile(first, 100 * drop)

    def kept():
        i = 0
        for h, e in chunks():
            yield h[keep[i : i + len(h)]], e[keep[i : i + len(h)]]
            i += len(h)

    g = fit(kept())
    return g, scored(g, keep)
