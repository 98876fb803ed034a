"""Measures of what an autoencoder learned, with the baselines to read them against."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA

from .model import Autoencoder


@torch.no_grad()
def reconstruct(model: Autoencoder, x: np.ndarray, batch_size: int = 2048) -> np.ndarray:
    """Reconstructions (means of p(x | h)) of ``x`` (N, D), computed in batches on the model's device."""
    model.eval()
    dev = next(model.parameters()).device
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    parts = [model.reconstruct(xt[i : i + batch_size].to(dev)).cpu() for i in range(0, len(xt), batch_size)]
    return torch.cat(parts).numpy()


def squared_error(x: np.ndarray, r: np.ndarray) -> float:
    """Mean over samples of the squared error **summed over dimensions** (Hinton & Salakhutdinov's measure).

    Example
    -------
    >>> squared_error(np.zeros((2, 3)), np.ones((2, 3)))
    3.0
    """
    x, r = np.asarray(x, dtype=np.float64), np.asarray(r, dtype=np.float64)
    return float(((x - r) ** 2).reshape(len(x), -1).sum(1).mean())


def pca_error(x_train: np.ndarray, x_test: np.ndarray, k: int) -> tuple[float, PCA]:
    """Squared error per sample (summed over dimensions) of PCA with ``k`` components fitted on ``x_train``."""
    pca = PCA(n_components=k, svd_solver="full").fit(x_train)
    return squared_error(x_test, pca.inverse_transform(pca.transform(x_test))), pca


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles in degrees, ascending, between the column spaces of ``a`` (D, k) and ``b`` (D, l).

    Example
    -------
    >>> principal_angles(np.eye(3)[:, :1], np.eye(3)[:, 1:]).round(6).tolist()
    [90.0]
    """
    qa, _ = np.linalg.qr(np.asarray(a, dtype=np.float64))
    qb, _ = np.linalg.qr(np.asarray(b, dtype=np.float64))
    s = np.linalg.svd(qa.T @ qb, compute_uv=False).clip(-1.0, 1.0)
    return np.sort(np.degrees(np.arccos(s)))
