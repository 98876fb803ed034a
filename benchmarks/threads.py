"""CPU threads: fit times of aekit's detector with one thread, every core, and the automatic choice.

For each case the same seeded fit runs with ``n_jobs=1``, ``n_jobs=-1`` (every core: torch's default) and
``n_jobs=None`` (automatic, the default: one thread for a small model); the scores of the three fits are
compared (they agree to float rounding). Then two fits at once, as ``GridSearchCV(n_jobs=2)`` runs them
(joblib's process pool), with every core per fit against the automatic choice.

    python benchmarks/threads.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from joblib import Parallel, delayed

from aekit.estimators import AutoencoderOutlierDetector
from aekit.store.data import load
from aekit.training.threads import threads_for

TABULAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "tabular"


def table(name: str) -> np.ndarray:
    x = np.load(TABULAR / f"{name}.npz")["x"]
    return ((x - x.mean(0)) / (x.std(0) + 1e-12)).astype(np.float32)


def cases() -> list[tuple[str, np.ndarray, dict]]:
    mnist = load("mnist", data_dir=TABULAR.parents[0] / "mnist").train.x[:10_000].reshape(10_000, -1)
    return [("Ecoli 336×7, undercomplete", table("Ecoli"), {}),
            ("Ecoli 336×7, vae", table("Ecoli"), {"preset": "vae"}),
            ("pollen 3848×5, vae", table("pollen"), {"preset": "vae"}),
            ("Spambase 4601×57, undercomplete", table("Spambase_spam"), {}),
            ("Spambase 4601×57, vae", table("Spambase_spam"), {"preset": "vae"}),
            ("MNIST 10,000×784, undercomplete 256-unit hidden, 3 epochs", mnist,
             {"n_components": 32, "hidden": (256,), "epochs": 3, "likelihood": "bernoulli"})]


def fit_seconds(x: np.ndarray, opts: dict, n_jobs: int | None) -> tuple[float, np.ndarray, int]:
    """Seconds to fit, the scores of the first 500 rows, and the threads the fit used."""
    t = time.perf_counter()
    det = AutoencoderOutlierDetector(random_state=0, n_jobs=n_jobs, **opts).fit(x)
    used = threads_for(det._threads(), det.model_, det.options_["train"].get("batch_size", 128))
    return time.perf_counter() - t, det.score_samples(x[:500]), used


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="best of this many fits per setting")
    args = ap.parse_args()
    cores = threads_for(-1)
    print(f"{cores} cores; torch's default {torch.get_num_threads()} threads\n")
    print("| fit | 1 thread | every core | automatic (threads) | every core ÷ automatic | max score difference |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, x, opts in cases():
        res = {}
        for n_jobs in (1, -1, None):
            runs = [fit_seconds(x, opts, n_jobs) for _ in range(args.repeats)]
            res[n_jobs] = (min(r[0] for r in runs), runs[0][1], runs[0][2])
        auto = res[None][2]
        diff = max(float(np.abs(res[j][1] - res[1][1]).max()) for j in (-1, None))
        print(f"| {name} | {res[1][0]:.2f} s | {res[-1][0]:.2f} s | {res[None][0]:.2f} s ({auto}) | "
              f"{res[-1][0] / res[None][0]:.1f}× | {diff:.1e} |", flush=True)

    x, opts = table("Spambase_spam"), {"preset": "vae"}
    print("\nTwo fits at once (joblib processes, as GridSearchCV(n_jobs=2)): Spambase, vae\n")
    print("| threads per fit | wall time |")
    print("|---|---:|")
    for label, n_jobs in (("every core", -1), ("automatic", None)):
        t = time.perf_counter()
        Parallel(n_jobs=2, backend="loky")(delayed(fit_seconds)(x, opts, n_jobs) for _ in range(2))
        print(f"| {label} | {time.perf_counter() - t:.2f} s |", flush=True)


if __name__ == "__main__":
    main()
