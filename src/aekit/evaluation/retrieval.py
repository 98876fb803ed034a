"""Search by Hamming distance over binary codes, and its measures.

Codes are packed 64 bits to a ``uint64`` word, (N, ⌈B/64⌉); the distance is the popcount of the XOR
(``np.bitwise_count``), computed in blocks of queries so memory stays bounded. A :class:`HammingIndex` encodes a
corpus once with any *hasher* — an object with ``bits(X) -> (N, B) bool`` — and answers top-k queries. Hashers:
a trained ``hashing`` model (:class:`ModelHasher`), or the classical baselines of :mod:`aekit.parts.projections`
(random-projection LSH, PCA + sign, ITQ), each fitted on the corpus without labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._checks import integer
from ..core.model import EVAL_BATCH, Autoencoder
from .metrics import encode

__all__ = ["HammingIndex", "ModelHasher", "hamming", "mean_average_precision", "pack", "precision_at_k"]

_BLOCK = 1 << 24  # entries of a (queries, items) distance block: 16 M int16 = 32 MB


def pack(bits: np.ndarray) -> np.ndarray:
    """(N, B) booleans → (N, ⌈B/64⌉) ``uint64`` words, bit j of a row in word j // 64.

    Example
    -------
    >>> pack(np.array([[1, 0, 1]], bool))
    array([[5]], dtype=uint64)
    """
    bits = np.asarray(bits).astype(bool)
    if bits.ndim != 2:
        raise ValueError(f"bits must be a 2-D array (N, B), got shape {bits.shape}")
    n, b = bits.shape
    padded = np.zeros((n, -(-b // 64) * 64), bool)
    padded[:, :b] = bits
    return np.packbits(padded.reshape(n, -1, 8), axis=2, bitorder="little").reshape(n, -1).view("<u8")


def hamming(q: np.ndarray, db: np.ndarray) -> np.ndarray:
    """Hamming distances between packed codes ``q`` (Q, W) and ``db`` (N, W), (Q, N) ``int16``.

    Example
    -------
    >>> hamming(pack(np.array([[1, 1, 0]], bool)), pack(np.array([[1, 1, 0], [0, 0, 1]], bool)))
    array([[0, 3]], dtype=int16)
    """
    if q.ndim != 2 or db.ndim != 2 or q.shape[1] != db.shape[1]:
        raise ValueError(f"packed codes of different widths: {q.shape} and {db.shape}")
    out = np.zeros((len(q), len(db)), np.int16)
    for w in range(q.shape[1]):
        out += np.bitwise_count(q[:, None, w] ^ db[None, :, w])
    return out


def precision_at_k(retrieved: np.ndarray, labels: np.ndarray) -> float:
    """Mean over queries of the share of the k retrieved items (Q, k labels) with the query's label (Q,)."""
    return float((np.asarray(retrieved) == np.asarray(labels)[:, None]).mean())


def mean_average_precision(dist: np.ndarray, q_labels: np.ndarray, db_labels: np.ndarray) -> float:
    """mAP of the full rankings by distance (Q, N), ties in corpus order; relevant: the same label.

    Example
    -------
    >>> round(mean_average_precision(np.array([[0, 1, 2]]), np.array([1]), np.array([1, 0, 1])), 4)  # (1 + 2/3)/2
    0.8333
    """
    aps = []
    for d, y in zip(dist, q_labels):
        rel = db_labels[np.argsort(d, kind="stable")] == y
        hits = np.cumsum(rel)
        aps.append(float((hits[rel] / (np.flatnonzero(rel) + 1)).mean()) if hits[-1] else 0.0)
    return float(np.mean(aps))


class ModelHasher:
    """The bits of a trained autoencoder with a binary code (preset ``hashing``): its features, 0/1 per code unit
    (1[a > 0] of a trained binary code; ITQ's bits of a real-valued one)."""

    def __init__(self, model: Autoencoder, batch_size: int = EVAL_BATCH) -> None:
        self.model, self.batch_size = model, integer(batch_size, "batch_size")

    def fit(self, x: np.ndarray) -> ModelHasher:
        return self  # trained already

    def bits(self, x: np.ndarray) -> np.ndarray:
        return encode(self.model, x, self.batch_size) > 0.5  # validated, batched, in eval mode; codes are 0/1


class HammingIndex:
    """A corpus encoded once to packed bits, searched by Hamming distance.

    Parameters
    ----------
    hasher
        Anything with ``bits(X) -> (N, B) bool``: :class:`ModelHasher`, :class:`LSH`, :class:`PCAHash`,
        :class:`ITQ` (fitted), or your own.

    Example
    -------
    >>> from aekit.parts.projections import ITQ
    >>> x = np.random.default_rng(0).normal(size=(100, 8))
    >>> index = HammingIndex(ITQ(4).fit(x)).add(x)
    >>> dist, idx = index.search(x[:3], n=5)
    >>> dist.shape, idx[:, 0].tolist(), dist[:, 0].tolist()  # each item is its own nearest code
    ((3, 5), [0, 1, 2], [0, 0, 0])
    """

    def __init__(self, hasher) -> None:
        self.hasher = hasher
        self.codes = np.zeros((0, 0), np.uint64)
        self.labels: np.ndarray | None = None

    def add(self, x: np.ndarray, labels: np.ndarray | None = None) -> HammingIndex:
        """Encode the rows ``x`` and append them (with their ``labels``, if any) to the index."""
        codes = pack(self.hasher.bits(x))
        self.codes = codes if not len(self.codes) else np.concatenate([self.codes, codes])
        if labels is not None:
            self.labels = np.asarray(labels) if self.labels is None else np.concatenate([self.labels, labels])
        return self

    def search(self, q: np.ndarray, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` nearest items to each query row: (distances, indices), each (Q, n), nearest first, ties in
        corpus order."""
        if not len(self.codes):
            raise ValueError("the index is empty: add items first")
        k = min(integer(n, "n"), len(self.codes))  # (k below: the neighbours kept)
        qc = pack(self.hasher.bits(q))
        dist, idx = [], []
        n = len(self.codes)
        step = max(1, _BLOCK // n)
        for i in range(0, len(qc), step):
            # distance·N + index: distinct keys ordered by distance, then by corpus order, so a linear-time
            # partition finds the same k as a stable sort would
            key = hamming(qc[i : i + step], self.codes).astype(np.int64) * n + np.arange(n)
            top = np.argpartition(key, k - 1, axis=1)[:, :k] if k < n else np.broadcast_to(np.arange(n), key.shape)
            top = np.take_along_axis(top, np.argsort(np.take_along_axis(key, top, 1), axis=1), 1)
            dist.append((np.take_along_axis(key, top, 1) // n).astype(np.int16))
            idx.append(top)
        return np.concatenate(dist), np.concatenate(idx)

    def distances(self, q: np.ndarray) -> np.ndarray:
        """Hamming distances from each query row to every item, (Q, N) ``int16``."""
        return hamming(pack(self.hasher.bits(q)), self.codes)

    def save(self, path: str | Path) -> Path:
        """The packed codes (and labels) as a ``.npz`` file; the hasher is not stored."""
        path = Path(path)
        arrays = {"codes": self.codes, **({"labels": self.labels} if self.labels is not None else {})}
        with open(path, "wb") as f:
            np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path, hasher) -> HammingIndex:
        """An index saved by :meth:`save`, searched with ``hasher`` (the one that built it)."""
        with np.load(Path(path), allow_pickle=False) as z:
            index = cls(hasher)
            index.codes, index.labels = z["codes"], z["labels"] if "labels" in z else None
        return index
