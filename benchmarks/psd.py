"""Predictive sparse decomposition on MNIST: the fast predictor f(x) against the sparse code it predicts.

One run. aekit's ``psd`` preset learns a dictionary of ``--k`` unit-norm atoms and the predictor f; scikit-learn's
``MiniBatchDictionaryLearning`` learns a dictionary of the same size for the same lasso objective
(½‖x − W h‖² + λ‖h‖₁, the same λ) as the baseline. On the test images, each code is scored by:

- relative error ‖x − W h‖² / ‖x − x̄‖² (the share of variance left), and the lasso energy per image;
- sparsity: the share of code entries that are non-zero (|h| > 0.01 for f(x), whose tanh is never exactly 0);
- encode time for all test images (one thread count: torch's and NumPy's defaults).

Rows: f(x) (one matrix product); h* = FISTA on aekit's dictionary (``optimal_code``, 500 iterations at most);
scikit-learn's codes on its dictionary (``transform``, coordinate descent).

    python benchmarks/psd.py [--train 10000] [--k 256] [--lam 0.5] [--epochs 10] [--data-dir ../shared/data/mnist]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import MiniBatchDictionaryLearning

from aekit import create, fit, load
from aekit.parts.psd import optimal_code

HERE = Path(__file__).resolve().parent


def score(x: np.ndarray, w: np.ndarray, h: np.ndarray, lam: float) -> dict[str, float]:
    """Relative error, lasso energy and share of non-zero entries of codes ``h`` (N, K) on dictionary ``w`` (D, K)."""
    r = h @ w.T
    err = ((x - r) ** 2).sum(1)
    return {"rel": float(err.sum() / ((x - x.mean(0)) ** 2).sum()),
            "energy": float((0.5 * err + lam * np.abs(h).sum(1)).mean()),
            "nonzero": float((np.abs(h) > 1e-2).mean())}


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=10_000)
    ap.add_argument("--test", type=int, default=10_000)
    ap.add_argument("--k", type=int, default=256)
    ap.add_argument("--lam", type=float, default=0.5)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--data-dir", type=Path, default=HERE.parents[1] / "shared" / "data" / "mnist")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    data = load("mnist", data_dir=args.data_dir)
    x, xt = data.train.x[: args.train].reshape(args.train, -1), data.test.x[: args.test].reshape(args.test, -1)
    xt64 = xt.astype(np.float64)
    torch.manual_seed(args.seed)
    model = create("psd", (x.shape[1],), code_size=args.k, lam=args.lam)
    _, fit_s = timed(lambda: fit(model, x, epochs=args.epochs, batch_size=256, val_fraction=0,
                                 seed=args.seed, progress=False))
    model.eval()
    w = model.decoder.weight.detach().double().numpy()
    xt_t = torch.from_numpy(xt)
    with torch.no_grad():
        f, f_s = timed(lambda: model.code(xt_t).double().numpy())
        hs, h_s = timed(lambda: optimal_code(model, xt_t).double().numpy())

    sk = MiniBatchDictionaryLearning(n_components=args.k, alpha=args.lam, batch_size=256, max_iter=args.epochs,
                                     transform_algorithm="lasso_cd", transform_alpha=args.lam, random_state=args.seed)
    _, sk_fit_s = timed(lambda: sk.fit(x.astype(np.float64)))
    hk, k_s = timed(lambda: sk.transform(xt64))

    rows = [("aekit psd: f(x), the predictor", score(xt64, w, f, args.lam), f_s, fit_s),
            ("aekit psd: h* by FISTA on its dictionary", score(xt64, w, hs, args.lam), h_s, None),
            ("scikit-learn MiniBatchDictionaryLearning", score(xt64, sk.components_.T, hk, args.lam), k_s, sk_fit_s)]
    print(f"\nMNIST, {args.train:,} training and {args.test:,} test images; {args.k} atoms, λ = {args.lam}, "
          f"{args.epochs} epochs each\n")
    print("| code | relative error | lasso energy | non-zero share | encode time (test set) | fit time |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, s, enc_s, fit_time in rows:
        fit_txt = f"{fit_time:.1f} s" if fit_time is not None else ""
        print(f"| {name} | {s['rel']:.4f} | {s['energy']:.2f} | {s['nonzero']:.3f} | {enc_s:.3f} s | {fit_txt} |")
    gap = float(((f - hs) ** 2).sum() / (hs ** 2).sum())
    print(f"\n‖f(x) − h*‖² / ‖h*‖² = {gap:.3f}; f(x) encodes {h_s / f_s:.0f}× faster than FISTA and "
          f"{k_s / f_s:.0f}× faster than scikit-learn's coordinate descent")


if __name__ == "__main__":
    main()
