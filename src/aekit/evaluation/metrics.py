"""Measures of what an autoencoder learned, with the baselines to read them against."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from sklearn.decomposition import PCA

from .._checks import is_number
from ..core.corruption import Identity
from ..core.model import EVAL_BATCH, Autoencoder, batches_on, evaluating, seeded
from ..core.tensors import as_tensor
from ..parts.variational import elbo, log_likelihood
from ..store.rows import SubsetRows


@torch.no_grad()
def batched(fn, model: Autoencoder, x: np.ndarray | torch.Tensor, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """``fn(batch)`` over ``x`` (N, ·) in batches on the model's device, in eval mode, as one array."""
    w = next(model.parameters())
    xt = x if isinstance(x, torch.Tensor) else torch.as_tensor(
        np.asarray(x, dtype=np.float64 if w.dtype == torch.float64 else np.float32))
    out = None
    with evaluating(model):
        for i, xb in batches_on(model, xt, batch_size):
            r = fn(xb).cpu()
            if out is None:  # one result array, filled batch by batch: no list of parts to concatenate
                out = torch.empty((len(xt), *r.shape[1:]), dtype=r.dtype)
            out[i : i + len(r)] = r
    return out.numpy()


def reconstruct(model: Autoencoder, x: np.ndarray, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """Reconstructions (means of p(x | h)) of ``x`` (N, D), shape (N, D); ``x`` is validated like training data
    (numeric, finite, the model's width), a ``ValueError`` naming the problem otherwise.

    Example
    -------
    >>> from aekit import create
    >>> reconstruct(create("linear", (4,), code_size=2), np.zeros((3, 4))).shape
    (3, 4)
    """
    return batched(model.reconstruct, model, _checked(x, model), batch_size)


def _checked(x, model: Autoencoder) -> torch.Tensor:
    return as_tensor(x, model, "x")


def squared_error(x: np.ndarray, r: np.ndarray) -> float:
    """Mean over samples of the squared error **summed over dimensions** (Hinton & Salakhutdinov's measure).

    Example
    -------
    >>> squared_error(np.zeros((2, 3)), np.ones((2, 3)))
    3.0
    """
    x, r = np.asarray(x), np.asarray(r)
    x, r = x.reshape(len(x), -1), r.reshape(len(r), -1)
    step = max(1, 2**20 // max(1, x.shape[1]))  # float64 differences of 1 M values at a time, not of all the data
    total = sum(float(np.square(x[i : i + step].astype(np.float64) - r[i : i + step]).sum())
                for i in range(0, len(x), step))
    return total / len(x)


def mean_squared_error(x: np.ndarray, r: np.ndarray) -> float:
    """Squared error **averaged over samples and dimensions** (per-dimension mean; scikit-learn's MSE).

    Example
    -------
    >>> mean_squared_error(np.zeros((2, 3)), np.ones((2, 3)))
    1.0
    """
    x, r = np.asarray(x, dtype=np.float64), np.asarray(r, dtype=np.float64)
    return float(((x - r) ** 2).mean())


def roc_auc(is_anomaly: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` (higher = more anomalous) for 0/1 labels ``is_anomaly``.

    Example
    -------
    >>> roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(is_anomaly)
    if set(np.unique(y)) != {0, 1}:
        raise ValueError(f"ROC-AUC needs both classes among the 0/1 labels, got values {np.unique(y).tolist()}")
    return float(roc_auc_score(y, np.asarray(score)))


def likelihood_bounds(model: Autoencoder, x: np.ndarray, samples: int = 1000, allow_nonbinary: bool = False) -> dict[str, float]:
    """A stochastic model's test ELBO and its importance-weighted NLL over ``samples`` draws per row, in nats per sample (means).

    See :func:`aekit.parts.variational.elbo` and :func:`aekit.parts.variational.log_likelihood`.
    """
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    res = {key: float(v.mean()) for key, v in elbo(model, xt, allow_nonbinary=allow_nonbinary).items()}
    res["nll"] = -float(log_likelihood(model, xt, samples, allow_nonbinary=allow_nonbinary).mean())
    return res


def squared_error_stream(model: Autoencoder, rows) -> float:
    """:func:`squared_error` of ``model``'s reconstructions of rows streamed from storage (:mod:`aekit.store.rows`),
    chunk by chunk: memory bounded by a chunk, not by the data."""
    total = 0.0
    for _, x in rows.chunks():
        total += squared_error(x, reconstruct(model, x)) * len(x)
    return total / rows.n


def sample_rows(rows, n: int, seed: int = 0) -> np.ndarray:
    """Up to ``n`` rows drawn (seeded, without replacement) from streamed ``rows``, as float32 (n, D)."""
    idx = np.random.default_rng(seed).choice(rows.n, size=min(n, rows.n), replace=False)
    return next(iter(SubsetRows(rows, idx).chunks(rows=len(idx))))[1]


def pca_error_stream(train_rows, test_rows, code_size: int, fit_rows: int = 20_000) -> float:
    """:func:`pca_error` for streamed rows: PCA fitted on ``fit_rows`` training rows (seeded sample), its
    error over every test row, chunk by chunk."""
    pca = _pca(sample_rows(train_rows, fit_rows), code_size)
    total = sum(squared_error(x, pca.inverse_transform(pca.transform(x))) * len(x) for _, x in test_rows.chunks())
    return total / test_rows.n


def _pca(x: np.ndarray, code_size: int) -> PCA:
    """PCA with ``code_size`` components fitted on ``x``: from the D × D covariance when there are many more rows than
    features (scikit-learn's own choice there; the full SVD held a copy and an (N, D) factor of the data)."""
    x = np.asarray(x)
    from sklearn.decomposition import PCA  # here: 1.3 s of imports that commands without a PCA baseline skip

    solver = "covariance_eigh" if len(x) >= 10 * x.shape[1] else "full"
    # the covariance path never centres x in place: copy=False only spares scikit-learn's defensive copy of it
    return PCA(n_components=code_size, svd_solver=solver, copy=solver == "full").fit(x)


def pca_error(x_train: np.ndarray, x_test: np.ndarray, code_size: int) -> tuple[float, PCA]:
    """Squared error per sample (summed over dimensions) of PCA with ``code_size`` components fitted on ``x_train``.

    With many more rows than features PCA is fitted from the D × D covariance (``svd_solver="covariance_eigh"``,
    scikit-learn's own choice there): the full SVD held an (N, D) copy and factor of the data."""
    pca = _pca(x_train, code_size)
    x_test = np.asarray(x_test)
    step = max(1, 2**20 // x_test.shape[1])
    total = sum(squared_error(x, pca.inverse_transform(pca.transform(x))) * len(x)
                for x in (x_test[i : i + step] for i in range(0, len(x_test), step)))
    return total / len(x_test), pca


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles in degrees, ascending, between the column spaces of ``a`` (D, k) and ``b`` (D, l).

    Example
    -------
    >>> principal_angles(np.eye(3)[:, :1], np.eye(3)[:, 1:]).round(6).tolist()
    [90.0]
    """
    from scipy.linalg import subspace_angles

    # scipy takes small angles from sines (Björck & Golub), so equal subspaces give 0, not ~1e-6° as arccos does
    return np.sort(np.degrees(subspace_angles(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))))


def psnr(clean: np.ndarray, other: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB: 10·log10(range² / MSE), MSE over all values.

    Example
    -------
    >>> round(psnr(np.zeros(4), np.full(4, 0.1)), 6)
    20.0
    """
    mse = float(np.mean((np.asarray(clean, dtype=np.float64) - np.asarray(other, dtype=np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(data_range**2 / mse))


def sparsity(codes: np.ndarray, tol: float = 0.0) -> dict[str, float]:
    """``l0``: mean number of units with |h| > tol per sample; ``dead_fraction``: units never above tol.

    Example
    -------
    >>> sparsity(np.array([[0, 2.0, 0], [0, 1.0, 3.0]]))  # one unit of three never fires
    {'l0': 1.5, 'dead_fraction': 0.333...}
    """
    active = np.abs(np.asarray(codes)) > tol
    return {"l0": float(active.sum(1).mean()), "dead_fraction": float(1.0 - active.any(0).mean())}


def encode(model: Autoencoder, x: np.ndarray, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """Codes of ``x`` (N, D), shape (N, K); ``x`` is validated as in :func:`reconstruct`."""
    return batched(model.encode, model, _checked(x, model), batch_size)


def _probe(c: float, max_iter: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter))


def choose_c(train_codes: np.ndarray, y_train: np.ndarray, cs: Sequence[float], max_iter: int = 200,
             val_fraction: float = 0.1, seed: int = 0) -> float:
    """The inverse regularisation strength C of :func:`linear_probe` with the best accuracy on a
    held-out, stratified share ``val_fraction`` of the training codes (the test set never chooses).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(200, 5)), np.repeat([0, 1], 100)
    >>> choose_c(x, y, [0.01, 1.0]) in (0.01, 1.0)
    True
    """
    from sklearn.model_selection import train_test_split

    cs = list(cs)
    if not cs or any(not is_number(c) or c <= 0 for c in cs):
        raise ValueError(f"C values must be numbers > 0, got {cs}")
    a, b, ya, yb = train_test_split(train_codes, y_train, test_size=val_fraction, stratify=y_train, random_state=seed)
    scores = [_probe(c, max_iter).fit(a, ya).score(b, yb) for c in cs]
    return cs[int(np.argmax(scores))]


def linear_probe(train_codes: np.ndarray, y_train: np.ndarray, test_codes: np.ndarray, y_test: np.ndarray,
                 max_iter: int = 200, c: float = 1.0) -> float:
    """Test accuracy of a logistic regression (inverse regularisation ``c``) fitted on standardised train codes.

    Choose ``c`` on training data with :func:`choose_c`.
    """
    return float(_probe(c, max_iter).fit(train_codes, y_train).score(test_codes, y_test))


def regularised_metrics(model: Autoencoder, x: np.ndarray) -> dict[str, float]:
    """PSNR of corrupted and of denoised ``x`` against ``x`` for a corrupting model (seeded, so the same
    noisy set at every call), and L0 and dead units of the code (|h| > 0.01) for every model."""
    res = {}
    if not isinstance(model.corruption, Identity):
        dev = next(model.parameters()).device
        with seeded(0, dev):  # the same noisy set at every call
            noisy = model.corrupt(torch.from_numpy(np.asarray(x, dtype=np.float32)).to(dev))
        res["psnr_noisy"] = psnr(x, noisy.cpu().numpy())
        res["psnr_denoised"] = psnr(x, reconstruct(model, noisy.cpu().numpy()))
    res.update(sparsity(encode(model, x), tol=0.01))
    return res


def mmd2(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None) -> float:
    """Unbiased squared maximum mean discrepancy between samples ``x`` (N, D) and ``y`` (M, D) (Gretton et al.
    2012), Gaussian kernel exp(−‖a − b‖² / 2ℓ²); ℓ = ``bandwidth``, by default the median distance between
    the pooled points divided by √2 (so that 2ℓ² is the median squared distance: the median heuristic of
    exp(−‖a − b‖² / median)). Near 0 (either sign) when both come from one distribution.

    Example
    -------
    >>> a = np.array([[0.0], [1.0]]); b = np.array([[0.0], [2.0]])
    >>> round(mmd2(a, b, bandwidth=1.0), 4)  # k(1) + k(2) − 2·(k(0) + k(2) + 2·k(1))/4, k(d) = exp(−d²/2)
    -0.4323
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or len(x) < 2 or len(y) < 2:
        raise ValueError(f"mmd2 needs two samples (N, D) and (M, D) of at least 2 rows each, got shapes {x.shape} "
                         f"and {y.shape}")
    z = np.concatenate([x, y])
    sq = np.maximum((z * z).sum(1)[:, None] + (z * z).sum(1)[None] - 2 * z @ z.T, 0)
    if bandwidth is None:
        bandwidth = float(np.sqrt(np.median(sq[np.triu_indices(len(z), 1)]) / 2)) or 1.0
    k = np.exp(-sq / (2 * bandwidth**2))
    n, m = len(x), len(y)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2 * kxy.mean())
