"""One-class anomaly detection on MNIST or Fashion-MNIST: one class is normal, train on it, score the test set.

For each class c, every detector is fitted on the training images of c only and scores all
10,000 test images; the anomalies are the test images of the other nine classes. Reported per
class and as the mean: ROC-AUC, average precision (anomalies as the positive class, so a
random ranking scores ~0.90 AP), the mean rank by ROC-AUC (1 = best) and the fit time.

Detectors: :class:`aekit.estimators.AutoencoderOutlierDetector` **at its defaults** (what a user gets with
no options: the undercomplete preset, or ``vae``; sizes and epochs adapted to the data; on images, a model on
the raw pixels and one on standardised pixels, their scores averaged: ``scale="auto"``), the defaults with one
option — ``scale=False`` (the raw pixels only) or ``scale=True`` (each pixel standardised, its scale floored at
half the pixels' RMS spread) — and configurations tuned for MNIST on the raw pixels, labelled "tuned" with their
options (the estimators' Gaussian likelihood: the score is the
squared reconstruction error, or the ELBO; a Bernoulli score ranks images by how much grey they have and does
worse); scikit-learn's IsolationForest; one-class PCA reconstruction error at code sizes 16 and 32; PyOD's
AutoEncoder, VAE and k-NN at their defaults (``pip install -e ".[bench]"``; if PyOD is missing the rows say so).

    python benchmarks/anomaly.py [--data mnist] [--classes 0 1 ... 9] [--data-dir ../shared/data/mnist]

Fashion-MNIST cannot be downloaded everywhere: point ``--data-dir`` at a directory holding its four IDX files
(``--data fashion-mnist --data-dir DIR``); without one the loader downloads them.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score

from aekit import load
from aekit.evaluation.metrics import roc_auc
from aekit.estimators import AutoencoderOutlierDetector

HERE = Path(__file__).resolve().parent


def detectors() -> dict[str, Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]]]:
    """name → fit(X_train) returning score(X) with higher = more anomalous."""

    def ours(preset: str, **opts):
        def fit(x):
            det = AutoencoderOutlierDetector(preset, random_state=0, **opts)
            det.fit(x)
            return lambda z: -det.score_samples(z)

        return fit

    def iforest(x):
        f = IsolationForest(random_state=0).fit(x)
        return lambda z: -f.score_samples(z)

    def pca(n):
        def fit(x):
            p = PCA(n, random_state=0).fit(x)
            return lambda z: ((z - p.inverse_transform(p.transform(z))) ** 2).sum(1)

        return fit

    def pyod(name: str):
        def fit(x):
            from pyod.models.auto_encoder import AutoEncoder
            from pyod.models.knn import KNN
            from pyod.models.vae import VAE

            m = {"AutoEncoder": lambda: AutoEncoder(random_state=0, verbose=0), "KNN": KNN,
                 "VAE": lambda: VAE(random_state=0, verbose=0)}[name]()
            m.fit(x)
            return m.decision_function

        return fit

    return {
        "aekit (defaults)": ours("undercomplete"),
        "aekit `vae` (defaults)": ours("vae"),
        "aekit, defaults + scale=False (raw pixels only)": ours("undercomplete", scale=False),
        "aekit `vae`, defaults + scale=False (raw pixels only)": ours("vae", scale=False),
        "aekit, defaults + scale=True (features standardised, floored)": ours("undercomplete", scale=True),
        # tuned on raw pixels (before scale="auto" existed), so kept on them
        "aekit `undercomplete`, tuned: code 16, hidden 256, 30 epochs, scale=False": ours(
            "undercomplete", n_components=16, hidden=(256,), epochs=30, scale=False),
        "aekit `undercomplete`, tuned as above, with the code's density (code_density=True)": ours(
            "undercomplete", n_components=16, hidden=(256,), epochs=30, scale=False, code_density=True),
        "aekit `denoising`, tuned: code 16, hidden 256, masking 0.25, 30 epochs, scale=False": ours(
            "denoising", n_components=16, hidden=(256,), noise="masking", level=0.25, epochs=30, scale=False),
        "aekit `vae`, tuned: code 16, hidden 256, σ=0.1, 60 epochs, scale=False": ours(
            "vae", n_components=16, hidden=(256,), sigma=0.1, epochs=60, scale=False),
        "IsolationForest (defaults)": iforest,
        "PCA-16 reconstruction error": pca(16),
        "PCA-32 reconstruction error": pca(32),
        "PyOD AutoEncoder (defaults)": pyod("AutoEncoder"),
        "PyOD VAE (defaults)": pyod("VAE"),
        "PyOD k-NN (defaults)": pyod("KNN"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", choices=("mnist", "fashion-mnist"), default="mnist")
    ap.add_argument("--classes", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--data-dir", type=Path, help="the data set's IDX files (default for mnist: ../shared/data/mnist)")
    ap.add_argument("--only", default="", help="detectors whose name contains one of these (comma-separated)")
    args = ap.parse_args()

    data_dir = args.data_dir or (HERE.parent.parent / "shared" / "data" / "mnist" if args.data == "mnist" else None)
    s = load(args.data, data_dir=data_dir)
    x_tr, y_tr, x_te, y_te = (a.reshape(len(a), -1) if i % 2 == 0 else a
                              for i, a in enumerate((s.train.x, s.train.y, s.test.x, s.test.y)))
    methods = {k: v for k, v in detectors().items() if any(o in k for o in args.only.split(","))}
    res: dict[str, dict[int, tuple[float, float, float]]] = {m: {} for m in methods}
    missing: dict[str, str] = {}
    for c in args.classes:
        normal = x_tr[y_tr == c]
        is_anomaly = (y_te != c).astype(int)
        for name, fit in methods.items():
            if name in missing:
                continue
            torch.manual_seed(0)
            t = time.perf_counter()
            try:
                score = fit(normal)
            except ImportError as e:
                missing[name] = f"not installed ({e.name}); pip install -e '.[bench]'"
                continue
            fit_s = time.perf_counter() - t
            a = score(x_te)
            res[name][c] = (roc_auc(is_anomaly, a), average_precision_score(is_anomaly, a), fit_s)
            print(f"class {c}  {name:34s} ROC-AUC {res[name][c][0]:.4f}  AP {res[name][c][1]:.4f}  fit {fit_s:.1f} s",
                  flush=True)

    names = [m for m in methods if m not in missing]
    auc = np.array([[res[m][c][0] for m in names] for c in args.classes])
    ranks = dict(zip(names, np.array([rankdata(-a) for a in auc]).mean(0)))
    print(f"\n{args.data} one-class: normal = one class (its ~6,000 training images), scored on all 10,000 test "
          f"images; {torch.get_num_threads()} torch threads\n")
    head = " ".join(str(c) for c in args.classes)
    print(f"| detector | mean rank | mean ROC-AUC | mean AP | mean fit time | ROC-AUC per class ({head}) |")
    print("|---|---:|---:|---:|---:|---|")
    for name in sorted(methods, key=lambda m: ranks.get(m, np.inf)):
        if name in missing:
            print(f"| {name} | {missing[name]} | | | | |")
            continue
        r = np.array([res[name][c] for c in args.classes])
        per = " ".join(f"{res[name][c][0]:.3f}" for c in args.classes)
        print(f"| {name} | {ranks[name]:.2f} | {r[:, 0].mean():.4f} | {r[:, 1].mean():.4f} | {r[:, 2].mean():.1f} s "
              f"| {per} |")

if __name__ == "__main__":
    main()
