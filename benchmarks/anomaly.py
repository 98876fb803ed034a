"""One-class anomaly detection on MNIST: one digit is normal, train on it, score the full test set.

For each digit d, every detector is fitted on the training images of d only and scores all
10,000 test images; the anomalies are the test images of the other nine digits. Reported per
digit and as the mean: ROC-AUC and average precision (anomalies as the positive class, so a
random ranking scores ~0.90 AP), and the fit time.

Detectors: :class:`aekit.estimators.AutoencoderOutlierDetector` with the undercomplete,
denoising and VAE presets (the estimators' default Gaussian likelihood, so the score is the
squared reconstruction error, or the ELBO; a Bernoulli score ranks images by how much grey
they have and does worse); scikit-learn's IsolationForest; one-class PCA reconstruction error
at the same code size and at twice it; PyOD's AutoEncoder (its defaults and preprocessing;
``pip install -e ".[bench]"`` installs it — if it is missing the row says so).

    python benchmarks/anomaly.py [--digits 0 1 ... 9] [--n-components 16] [--data-dir ../shared/data/mnist]
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
from sklearn.metrics import average_precision_score

from aekit import load
from aekit.metrics import roc_auc
from aekit.estimators import AutoencoderOutlierDetector

HERE = Path(__file__).resolve().parent


def detectors(k: int) -> dict[str, Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]]]:
    """name → fit(X_train) returning score(X) with higher = more anomalous."""

    def ours(preset: str, **opts):
        def fit(x):
            det = AutoencoderOutlierDetector(preset, n_components=k, random_state=0, **opts)
            det.fit(x)
            return lambda z: -det.score_samples(z)

        return fit

    def iforest(x):
        f = IsolationForest(n_estimators=200, random_state=0, n_jobs=-1).fit(x)
        return lambda z: -f.score_samples(z)

    def pca(n):
        def fit(x):
            p = PCA(n, random_state=0).fit(x)
            return lambda z: ((z - p.inverse_transform(p.transform(z))) ** 2).sum(1)

        return fit

    def pyod(x):
        from pyod.models.auto_encoder import AutoEncoder

        m = AutoEncoder(random_state=0, verbose=0)
        m.fit(x)
        return m.decision_function

    return {
        "aekit undercomplete": ours("undercomplete", hidden=(256,), epochs=30),
        "aekit denoising (masking 0.25)": ours("denoising", hidden=(256,), noise="masking", level=0.25, epochs=30),
        "aekit vae (σ=0.1)": ours("vae", hidden=(256,), sigma=0.1, epochs=60),
        "IsolationForest (200 trees)": iforest,
        f"PCA-{k} reconstruction error": pca(k),
        f"PCA-{2 * k} reconstruction error": pca(2 * k),
        "PyOD AutoEncoder (defaults)": pyod,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--digits", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--n-components", type=int, default=16, help="code size of the autoencoders and of PCA")
    ap.add_argument("--data-dir", type=Path, default=HERE.parent.parent / "shared" / "data" / "mnist")
    args = ap.parse_args()

    s = load("mnist", data_dir=args.data_dir)
    x_tr, y_tr, x_te, y_te = s.train.x, s.train.y, s.test.x, s.test.y
    methods = detectors(args.n_components)
    res: dict[str, dict[int, tuple[float, float, float]]] = {m: {} for m in methods}
    missing: dict[str, str] = {}
    for d in args.digits:
        normal = x_tr[y_tr == d]
        is_anomaly = (y_te != d).astype(int)
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
            res[name][d] = (roc_auc(is_anomaly, a), average_precision_score(is_anomaly, a), fit_s)
            print(f"digit {d}  {name:34s} ROC-AUC {res[name][d][0]:.4f}  AP {res[name][d][1]:.4f}  fit {fit_s:.1f} s",
                  flush=True)

    print(f"\nMNIST one-class: normal = one digit (its ~6,000 training images), scored on all 10,000 test images; "
          f"code size {args.n_components}; {torch.get_num_threads()} threads\n")
    head = " ".join(str(d) for d in args.digits)
    print(f"| detector | mean ROC-AUC | mean AP | mean fit time | ROC-AUC per digit ({head}) |")
    print("|---|---:|---:|---:|---|")
    means = {}
    for name in methods:
        if name in missing:
            print(f"| {name} | {missing[name]} | | | |")
            continue
        r = np.array([res[name][d] for d in args.digits])
        means[name] = r[:, 0].mean()
        per = " ".join(f"{res[name][d][0]:.3f}" for d in args.digits)
        print(f"| {name} | {r[:, 0].mean():.4f} | {r[:, 1].mean():.4f} | {r[:, 2].mean():.1f} s | {per} |")
    best = max(means, key=means.get)
    print(f"\nhighest mean ROC-AUC: {best} ({means[best]:.4f})")


if __name__ == "__main__":
    main()
