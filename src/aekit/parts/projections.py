"""Hashers by a linear projection, fitted without labels: random-projection LSH (Charikar 2002), PCA + sign, and
ITQ (Gong & Lazebnik 2011) — the classical baselines of semantic hashing, and ITQ the rotation that
:class:`~aekit.parts.hashing.ITQCode` applies to a trained code. NumPy only.

Example
-------
>>> import numpy as np
>>> x = np.random.default_rng(0).normal(size=(100, 8))
>>> ITQ(4).fit(x).bits(x).shape
(100, 4)
"""

from __future__ import annotations

import numpy as np

from .._checks import integer

__all__ = ["ITQ", "LSH", "PCAHash"]


class _Projection:
    """Bits = 1[(x − mean) P > 0] for a projection P (D, B) that ``fit`` learns."""

    def __init__(self, bits: int, seed: int = 0) -> None:
        self.n_bits, self.seed = integer(bits, "bits"), seed

    def _center(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float64).reshape(len(x), -1) - self.mean_

    def bits(self, x: np.ndarray) -> np.ndarray:
        return self._center(x) @ self.proj_ > 0

    def _fit_mean(self, x: np.ndarray) -> None:
        self.mean_ = np.asarray(x, np.float64).reshape(len(x), -1).mean(0)

    def _pca(self, x: np.ndarray) -> np.ndarray:
        self._fit_mean(x)
        xc = self._center(x)
        if self.n_bits > min(xc.shape):
            raise ValueError(f"{self.n_bits} bits need at least {self.n_bits} samples and features, got {xc.shape}")
        _, _, vt = np.linalg.svd(xc, full_matrices=False)  # principal directions, largest first
        return vt[: self.n_bits].T  # (D, B)


class LSH(_Projection):
    """Random-hyperplane LSH (Charikar 2002): the signs of B Gaussian projections of the centred data."""

    def fit(self, x: np.ndarray) -> LSH:
        self._fit_mean(x)
        self.proj_ = np.random.default_rng(self.seed).normal(size=(self.mean_.size, self.n_bits))
        return self


class PCAHash(_Projection):
    """The signs of the top-B principal components."""

    def fit(self, x: np.ndarray) -> PCAHash:
        self.proj_ = self._pca(x)
        return self


class ITQ(_Projection):
    """Iterative quantisation (Gong & Lazebnik 2011): the top-B principal components turned by the rotation R
    that minimises ‖B − V R‖²_F over codes B ∈ {−1, 1} and orthogonal R, by ``iters`` alternations from a random
    rotation (each: B = sign(V R), then R from the SVD of Vᵀ B, the orthogonal Procrustes solution)."""

    def __init__(self, bits: int, iters: int = 50, seed: int = 0) -> None:
        super().__init__(bits, seed)
        self.iters = integer(iters, "iters", 0)

    def fit(self, x: np.ndarray) -> ITQ:
        pca = self._pca(x)
        v = self._center(x) @ pca  # (N, B)
        r, _ = np.linalg.qr(np.random.default_rng(self.seed).normal(size=(self.n_bits, self.n_bits)))
        for _ in range(self.iters):
            b = np.where(v @ r >= 0, 1.0, -1.0)
            u, _, wt = np.linalg.svd(v.T @ b)
            r = u @ wt
        self.proj_ = pca @ r
        return self
