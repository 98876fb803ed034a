"""Anomalies injected into series: aekit's sequence presets against window and seasonal baselines, per anomaly type.

Series that ship inside statsmodels (offline): weekly CO2 at Mauna Loa (2,284 weeks, period 52), yearly
sunspots (309 years, period 11), monthly El Niño sea temperatures (61 years × 12 months, period 12) and three
quarterly US macro growth rates (202 quarters, period 4). Each series trains on its first 60 % (clean) and
is tested on the rest with one anomaly type of Lai et al. (2021, "Revisiting time series outlier detection")
injected with a fixed seed: global point, contextual point, shapelet, seasonal and trend. Every method is fitted
once per series on the same training part (standardised per channel with its statistics) and scores each test
variant; per-step ROC-AUC and average precision against the injected steps, the best range-based F1 over
thresholds (aekit.evaluation.ranges: Tatbul et al. 2018 with flat bias and reciprocal cardinality), ranks per task by
ROC-AUC (1 best), and the fit time per series.

Baselines in the same run: IsolationForest, LOF (novelty) and PyOD's k-NN on windows of the same length (a
window's score spread over its steps, the mean over the windows that contain a step), and a seasonal-residual
baseline: |residual| of a robust STL decomposition (statsmodels) of the test part with the series' period.
VUS-PR is not computed.

    pip install -e ".[bench]"
    python benchmarks/series_injected.py [--seeds 0,1] [--presets "tcn;lstm;lstm:teacher_forcing=1"]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.neighbors import LocalOutlierFactor

from _series_data import spec as preset_spec
from aekit.estimators import SeriesOutlierDetector
from aekit.evaluation.ranges import best_range_f1
from aekit.evaluation.series import per_step, standardizer, windows

TYPES = ("global point", "contextual point", "shapelet", "seasonal", "trend")


def series() -> dict[str, tuple[np.ndarray, int]]:
    """Name → (values (T, C), period), from statsmodels' bundled data."""
    import statsmodels.api as sm

    co2 = sm.datasets.co2.load_pandas().data["co2"].interpolate().bfill().to_numpy()
    sun = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy()
    nino = sm.datasets.elnino.load_pandas().data.drop(columns="YEAR").to_numpy().ravel()
    macro = sm.datasets.macrodata.load_pandas().data[["realgdp", "realcons", "realinv"]].to_numpy()
    growth = np.diff(np.log(macro), axis=0) * 100
    return {"co2 (weekly)": (co2[:, None], 52), "sunspots (yearly)": (sun[:, None], 11),
            "El Niño (monthly)": (nino[:, None], 12), "US macro growth (quarterly, 3 channels)": (growth, 4)}


def inject(x: np.ndarray, kind: str, period: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A copy of the test series ``x`` (T, C) with anomalies of ``kind`` (Lai et al. 2021) and their 0/1 labels."""
    x, T, C = x.copy(), len(x), x.shape[1]
    y = np.zeros(T, dtype=int)
    sd = x.std(0)
    length = max(4, period)  # subsequence anomalies last about one period

    def segments(n: int) -> list[int]:
        room = np.arange(period, T - length - period)
        return sorted(rng.choice(room, n, replace=False)) if len(room) >= n else [T // 2]

    if kind == "global point":  # beyond the series' range
        for t in rng.choice(np.arange(T), 3, replace=False):
            c = rng.integers(C)
            x[t, c] = x[:, c].mean() + rng.choice([-1, 1]) * (x[:, c].max() - x[:, c].mean() + 2 * sd[c])
            y[t] = 1
    elif kind == "contextual point":  # inside the range, far from its neighbours
        for t in rng.choice(np.arange(2, T - 2), 3, replace=False):
            c = rng.integers(C)
            local = np.median(x[t - 2:t + 3, c])
            x[t, c] = local + rng.choice([-1, 1]) * 1.5 * sd[c]
            y[t] = 1
    else:
        t0 = segments(1)[0]
        seg = slice(t0, t0 + length)
        c = rng.integers(C)
        if kind == "shapelet":  # the segment's shape replaced: a flat line at its mean plus a small sine
            x[seg, c] = x[seg, c].mean() + 0.5 * sd[c] * np.sin(np.linspace(0, 6 * np.pi, length))
        elif kind == "seasonal":  # the seasonality sped up: the next two periods squeezed into one
            src = x[t0:t0 + 2 * length, c]
            x[seg, c] = np.interp(np.linspace(0, len(src) - 1, length), np.arange(len(src)), src)
        elif kind == "trend":  # a drift over the segment, back after it
            x[seg, c] += np.linspace(0, 2 * sd[c], length)
        y[seg] = 1
    return x, y


# ---------------------------------------------------------------------------- methods: fit(train) -> score(test)

def on_windows(model_fn: Callable[[], object], length: int, kind: str):
    def fit(train: np.ndarray):
        w, _ = windows(train, length, 1)
        m = model_fn().fit(w.reshape(len(w), -1))

        def score(test: np.ndarray) -> np.ndarray:
            wt, starts = windows(test, length, 1)
            flat = wt.reshape(len(wt), -1)
            s = -m.score_samples(flat) if kind == "sklearn" else m.decision_function(flat)
            return per_step(s, starts, len(test))
        return score
    return fit


def aekit_method(spec: str, length: int, seed: int):
    preset, options = preset_spec(spec)

    def fit(train: np.ndarray):
        det = SeriesOutlierDetector(preset, window=length, stride=1, preset_options=options,
                                    random_state=seed).fit(train)
        return lambda test: -det.score_samples(test)
    return fit


def stl_method(period: int):
    def fit(train: np.ndarray):
        from statsmodels.tsa.seasonal import STL

        def score(test: np.ndarray) -> np.ndarray:
            r = [STL(test[:, c], period=max(period, 2) if period > 1 else 2, robust=True).fit().resid
                 for c in range(test.shape[1])]
            return np.abs(np.array(r)).sum(0)
        return score
    return fit


def methods(length: int, period: int, presets: list[str], seed: int) -> dict[str, Callable]:
    from pyod.models.knn import KNN

    out = {f"aekit {p}": aekit_method(p, length, seed) for p in presets}
    out["IsolationForest (windows)"] = on_windows(lambda: IsolationForest(random_state=seed), length, "sklearn")
    out["LOF (windows)"] = on_windows(lambda: LocalOutlierFactor(novelty=True), length, "sklearn")
    out["PyOD k-NN (windows)"] = on_windows(lambda: KNN(), length, "pyod")
    out["STL residual"] = stl_method(period)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--presets", default="tcn,lstm,transformer",
                    help="presets separated by ';' (or ',' when none has options), each with options as "
                         "name:option=value,option=value, e.g. 'lstm;lstm:teacher_forcing=1'")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    presets = args.presets.split(";" if ";" in args.presets or ":" in args.presets else ",")
    rows: dict[str, list[tuple[float, float]]] = {}
    times: dict[str, list[float]] = {}
    for name, (x, period) in series().items():
        cut = int(0.6 * len(x))
        scaler = standardizer(x[:cut])
        train, test = (scaler.transform(p).astype(np.float32) for p in (x[:cut], x[cut:]))
        length = int(min(64, max(16, 2 * period), cut // 4))
        for seed in seeds:
            variants = [(kind, *inject(test, kind, period, np.random.default_rng([seed, i])))
                        for i, kind in enumerate(TYPES)]
            for label, fit in methods(length, period, presets, seed).items():
                t = time.perf_counter()
                score = fit(train)
                times.setdefault(label, []).append(time.perf_counter() - t)
                for kind, xt, y in variants:
                    s = score(xt)
                    rows.setdefault(label, []).append((roc_auc_score(y, s), average_precision_score(y, s),
                                                       best_range_f1(y, s)[0]))
            print(f"{name}, seed {seed}: window {length}, {cut} training / {len(x) - cut} test steps", flush=True)
    labels = list(rows)
    auc = np.array([[r[0] for r in rows[m]] for m in labels])  # (methods, tasks)
    ap_ = np.array([[r[1] for r in rows[m]] for m in labels])
    rf1 = np.array([[r[2] for r in rows[m]] for m in labels])
    from scipy.stats import rankdata

    rank = np.mean([rankdata(-auc[:, j]) for j in range(auc.shape[1])], axis=0)
    n_tasks = auc.shape[1]
    print(f"\n{n_tasks} tasks (4 series × {len(TYPES)} anomaly types × {len(seeds)} seeds); per-step scores\n")
    print(f"{'method':<30} {'mean rank':>9} {'ROC-AUC':>8} {'AP':>7} {'range F1':>8}  " + "  ".join(f"{k[:8]:>8}" for k in TYPES)
          + f"  {'fit s/series':>12}")
    for i in np.argsort(rank):
        by_type = [auc[i, [j for j in range(n_tasks) if j % len(TYPES) == k]].mean() for k in range(len(TYPES))]
        print(f"{labels[i]:<30} {rank[i]:>9.2f} {auc[i].mean():>8.3f} {ap_[i].mean():>7.3f} {rf1[i].mean():>8.3f}  "
              + "  ".join(f"{v:>8.3f}" for v in by_type) + f"  {np.mean(times[labels[i]]):>12.1f}")
    print("\n(range F1: the best range-based F1 over thresholds, Tatbul et al. 2018, flat bias, reciprocal "
          "cardinality; the per-type columns are mean per-step ROC-AUC)")


if __name__ == "__main__":
    main()
