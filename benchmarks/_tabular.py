"""Anomaly-detection tasks built from the classification tables in ``../shared/data/tabular`` (ADBench's recipe).

Real tasks: one class is normal, the other is subsampled to 5 % of the rows as anomalies (seeded), for
each class that has enough rows. Synthetic tasks: the rows of the larger class are normal, and anomalies
of ADBench's four types (Han et al. 2022, §3.3) are generated from them, in the normal rows' min-max
space: *local* (a Gaussian mixture fitted to the normals, covariances × 5), *cluster* (its means × 5),
*global* (uniform in the normals' bounding box widened by 10 %) and *dependency* (each feature drawn
independently from its normal marginal, breaking the features' dependence).

Settings: *unsupervised* fits on all rows (anomalies included, no labels) and scores the same rows;
*semi-supervised* fits on 70 % of the normal rows and scores the other 30 % mixed with anomalies (the
same 5 % share). Features are standardised with the statistics of the rows a detector is fitted on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.mixture import GaussianMixture

SHARE = 0.05  # anomalies among the scored rows
MIN_ANOMALIES = 5
SYNTHETIC = ("local", "cluster", "global", "dependency")


@dataclass
class Task:
    name: str  # data set and what is anomalous, e.g. "Ecoli/class 1" or "Ecoli/local"
    setting: str  # "unsupervised" or "semi-supervised"
    seed: int
    x_fit: np.ndarray  # standardised rows the detector is fitted on
    x_score: np.ndarray  # standardised rows it scores
    y_score: np.ndarray  # 1 = anomaly, for the rows scored


def _n_anomalies(n_normal: int) -> int:
    return max(MIN_ANOMALIES, round(SHARE * n_normal / (1 - SHARE)))


def _standardise(fit: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mu, sd = fit.mean(0), fit.std(0)
    sd[sd < 1e-12] = 1.0  # a constant feature stays constant (0) instead of dividing by zero
    return [((a - mu) / sd).astype(np.float64) for a in (fit, *others)]


def _settings(name: str, seed: int, normal: np.ndarray, anomalies: np.ndarray, settings: tuple[str, ...]
              ) -> Iterator[Task]:
    rng = np.random.default_rng([seed, 1])
    if "unsupervised" in settings:
        k = _n_anomalies(len(normal))
        x = np.concatenate([normal, anomalies[rng.permutation(len(anomalies))[:k]]])
        y = np.r_[np.zeros(len(normal)), np.ones(k)].astype(int)
        order = rng.permutation(len(x))
        (xs,) = _standardise(x[order])
        yield Task(name, "unsupervised", seed, xs, xs, y[order])
    if "semi-supervised" in settings:
        order = rng.permutation(len(normal))
        n_fit = int(0.7 * len(normal))
        fit, held = normal[order[:n_fit]], normal[order[n_fit:]]
        k = _n_anomalies(len(held))
        test = np.concatenate([held, anomalies[rng.permutation(len(anomalies))[:k]]])
        y = np.r_[np.zeros(len(held)), np.ones(k)].astype(int)
        fit_s, test_s = _standardise(fit, test)
        yield Task(name, "semi-supervised", seed, fit_s, test_s, y)


def synthetic(normal: np.ndarray, kind: str, n: int, seed: int) -> np.ndarray:
    """``n`` anomalies of ADBench type ``kind`` for the rows ``normal`` (returned in their original units)."""
    rng = np.random.default_rng([seed, 2])
    lo, hi = normal.min(0), normal.max(0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    z = (normal - lo) / span  # min-max space of the normals
    if kind == "global":
        a = rng.uniform(-0.05, 1.05, size=(n, z.shape[1]))  # the box widened by 10 % (ADBench's α = 1.1)
    elif kind == "dependency":
        a = np.stack([rng.choice(z[:, j], n) for j in range(z.shape[1])], 1)
        a += rng.normal(0, 0.01, a.shape)  # not exact copies of a normal value
    else:
        gm = _mixture(z, seed)
        means = gm.means_ * (5.0 if kind == "cluster" else 1.0)
        covs = gm.covariances_ * (5.0 if kind == "local" else 1.0)
        comp = rng.choice(len(means), n, p=gm.weights_)
        a = np.stack([rng.multivariate_normal(means[c], covs[c]) for c in comp])
    return lo + a * span


def _mixture(z: np.ndarray, seed: int) -> GaussianMixture:
    """The Gaussian mixture (1–5 components, full covariance) with the lowest BIC on ``z``."""
    fits = [GaussianMixture(c, covariance_type="full", reg_covar=1e-4, random_state=seed).fit(z)
            for c in range(1, 6) if c * 5 <= len(z)]
    return min(fits, key=lambda g: g.bic(z))


def tasks(data_dir: Path, seeds: int, synthetic_seeds: int, settings: tuple[str, ...], max_rows: int,
          only: str = "") -> Iterator[Task]:
    """Every task of every data set in ``data_dir`` whose file name contains ``only``."""
    for path in sorted(data_dir.glob("*.npz")):
        if only not in path.stem:
            continue
        with np.load(path) as f:
            x, y = f["x"].astype(np.float64), f["y"].astype(int)
        for seed in range(seeds):
            rng = np.random.default_rng([seed, 0])
            for c in (0, 1):
                normal, other = x[y == c], x[y != c]
                if len(normal) < 45 or len(other) < MIN_ANOMALIES:
                    continue  # too few rows for a 5 % task with at least 5 anomalies
                normal = normal[rng.permutation(len(normal))[:max_rows]]
                yield from _settings(f"{path.stem}/class {c}", seed, normal, other, settings)
        big = int(np.bincount(y).argmax())
        for seed in range(synthetic_seeds):
            normal = x[y == big]
            normal = normal[np.random.default_rng([seed, 3]).permutation(len(normal))[:max_rows]]
            for kind in SYNTHETIC:
                anomalies = synthetic(normal, kind, _n_anomalies(len(normal)), seed)
                yield from _settings(f"{path.stem}/{kind}", seed, normal, anomalies, settings)
