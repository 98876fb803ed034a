"""How long the series detector takes on a 10,000-step univariate series at its defaults, and where the time goes.

A noisy sine of 10,000 steps (period 50) is fitted and then scored whole, as a user would (``fit(x)`` then
``score_samples(x)``), by aekit's ``SeriesOutlierDetector()`` at its defaults, by the default before it
(reconstruction alone, epochs aimed at ~2,000 steps of 128 windows), and by two baselines of
``series_anomaly.py``: IsolationForest on windows of the period and aeon's DWT-MLEAD. Imports and data outside
the timed regions; the contenders' order alternates between repetitions; median and range of ``--repeats``
runs; the load average printed. The default's fit is split into its parts (training; the training series'
errors, reference codes and novelty) with the same clock.

    python benchmarks/series_speed.py [--steps 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
from sklearn.ensemble import IsolationForest

from aekit.estimators import SeriesOutlierDetector
from aekit.evaluation.series import per_step, windows


def aekit_default(x: np.ndarray, parts: dict[str, list[float]]) -> None:
    det = SeriesOutlierDetector(random_state=0)
    train = det._train  # the training alone, timed inside the fit
    t: dict[str, float] = {}

    def timed_train(*a, **k):
        t0 = time.perf_counter()
        out = train(*a, **k)
        t["train"] = time.perf_counter() - t0
        return out

    det._train = timed_train
    t0 = time.perf_counter()
    det.fit(x)
    t["fit, after training (errors, codes, novelty of the training series)"] = time.perf_counter() - t0 - t["train"]
    t0 = time.perf_counter()
    det.score_samples(x)
    t["score every step"] = time.perf_counter() - t0
    for k, v in t.items():
        parts.setdefault(k, []).append(v)


def old_default(x: np.ndarray) -> None:
    det = SeriesOutlierDetector(code_novelty=False, batch_size=128, epochs=26, random_state=0)  # ~2,000 steps
    det.fit(x).score_samples(x)


def isolation_forest(x: np.ndarray) -> None:
    w, starts = windows(x, 50, 1)
    flat = w.reshape(len(w), -1)
    per_step(-IsolationForest(random_state=0).fit(flat).score_samples(flat), starts, len(x))


def dwt_mlead(x: np.ndarray) -> None:
    from aeon.anomaly_detection.series.distribution_based import DWT_MLEAD

    DWT_MLEAD().fit_predict(x[:, 0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    t = np.arange(args.steps)
    x = (np.sin(2 * np.pi * t / 50) + 0.1 * np.random.default_rng(0).normal(size=args.steps))[:, None]
    x = x.astype(np.float32)
    parts: dict[str, list[float]] = {}
    contenders = {"aekit SeriesOutlierDetector() (default)": lambda: aekit_default(x, parts),
                  "aekit, the default before (reconstruction, ~2,000 steps)": lambda: old_default(x),
                  "IsolationForest (windows of 50)": lambda: isolation_forest(x),
                  "DWT-MLEAD (aeon)": lambda: dwt_mlead(x)}
    dwt_mlead(x[:2000])  # aeon's first call compiles its numba kernels: set-up, not the method's time
    seconds: dict[str, list[float]] = {k: [] for k in contenders}
    loads = []
    for r in range(args.repeats):
        loads.append(os.getloadavg()[0])
        for name in (list(contenders) if r % 2 == 0 else list(contenders)[::-1]):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                contenders[name]()
                seconds[name].append(time.perf_counter() - t0)
    ours = np.median(seconds["aekit SeriesOutlierDetector() (default)"])
    print(f"{args.steps:,} steps, one channel; {args.repeats} runs; load average {min(loads):.2f}–{max(loads):.2f}; "
          f"{os.cpu_count()} CPUs\n")
    print("| method | fit + score s, median | range | / aekit default |\n|---|---:|---:|---:|")
    for name, s in seconds.items():
        print(f"| {name} | {np.median(s):.2f} | {min(s):.2f}–{max(s):.2f} | {np.median(s) / ours:.2f} |")
    print("\n| the default's parts | s, median | range |\n|---|---:|---:|")
    for name, s in parts.items():
        print(f"| {name} | {np.median(s):.2f} | {min(s):.2f}–{max(s):.2f} |")


if __name__ == "__main__":
    main()
