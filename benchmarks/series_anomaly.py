"""Anomalies in real labelled series, per time step: aekit's series detector against the baselines the field uses.

The series of ``../shared/data/series`` (``_series_data.py``): 81 NASA SMAP/MSL telemetry channels (the
telemetry value, or every column with ``--channels all``) and 4 UCR archive series, each a clean training part
and a labelled test part. Two protocols: ``clean`` fits on the training part and scores the test part (what
the data sets provide); ``unsupervised`` fits on the test part itself, anomalies included, and scores it. Each
fit sees its data standardised per channel with its own statistics.

Methods (every one fitted in the same run, on the same data): aekit's ``SeriesOutlierDetector`` at its
defaults (and any ``--aekit`` variants: ``name=option:value,...``); on sliding windows of the series' period
(the highest autocorrelation peak, as TSB-AD sizes its windows) with each window's score spread over its
steps: IsolationForest (scikit-learn), k-NN and PCA reconstruction (PyOD: TSB-AD's Sub-KNN and Sub-PCA,
the latter first on the TSB-AD-U leaderboard); aeon's KMeansAD and DWT-MLEAD; and a rolling z-score.

Measures per series: VUS-PR (aeon; buffers up to the period), ROC-AUC and average precision (scikit-learn),
the best range-based F1 over thresholds (aekit.evaluation.ranges); mean rank by VUS-PR (1 best) with a
Friedman test over all methods and Wilcoxon signed-rank tests of the default against each, Holm-corrected;
fit + score seconds per series.

    pip install -e ".[bench]"
    python benchmarks/series_anomaly.py [--protocol clean,unsupervised] [--limit N] [--seed 0]
        [--aekit "mean:aggregate=mean;w32:window=32"] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from collections.abc import Callable

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score

from _series_data import Series, period, smap_msl, spec, tsb_vus_pr, ucr, vus_pr
from aekit.estimators import SeriesOutlierDetector
from aekit.evaluation.ranges import best_range_f1
from aekit.evaluation.series import per_step, standardizer, windows

DEFAULT = "aekit SeriesOutlierDetector() (default)"
OLD = "aekit reconstruction, ~2,000 steps (default before)"  # the cached measures of an earlier default


def default_params() -> dict:
    """The default's parameters as JSON: cached measures of another default are moved aside, not reused."""
    return json.loads(json.dumps(SeriesOutlierDetector().get_params(), default=str))
Fit = Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]]  # fit(data) -> score(series) -> (T,)


def on_windows(make: Callable[[], object], length: int, how: str) -> Fit:
    """A window detector: fitted on the windows of ``length`` (every step), a series' step scored by the mean over
    the windows that contain it; ``how`` says how the model scores (sklearn's −score_samples, PyOD's
    decision_function)."""
    def fit(data: np.ndarray):
        w, _ = windows(data, length, max(1, len(data) // 20_000 + 1))  # at most ~20,000 training windows
        m = make().fit(w.reshape(len(w), -1))

        def score(x: np.ndarray) -> np.ndarray:
            wt, starts = windows(x, length, 1)
            flat = wt.reshape(len(wt), -1)
            return per_step(-m.score_samples(flat) if how == "sklearn" else m.decision_function(flat), starts, len(x))
        return score
    return fit


def aekit(options: dict, seed: int) -> Fit:
    def fit(data: np.ndarray):
        det = SeriesOutlierDetector(random_state=seed, **options).fit(data)
        return lambda x: -det.score_samples(x)
    return fit


def aeon(make: Callable[[], object]) -> Fit:
    """An aeon series detector: fitted on the data where it learns from a training series, else on the series
    it scores (``fit_predict``)."""
    def fit(data: np.ndarray):
        def score(x: np.ndarray) -> np.ndarray:
            d = make()
            series = x[:, 0] if x.shape[1] == 1 else x
            if d.get_tag("fit_is_empty"):
                return np.asarray(d.fit_predict(series), dtype=np.float64)
            return np.asarray(d.fit(data[:, 0] if x.shape[1] == 1 else data).predict(series), dtype=np.float64)
        return score
    return fit


def rolling_z(length: int) -> Fit:
    """|x − the mean of the previous ``length`` steps| / their standard deviation, summed over channels."""
    def fit(data: np.ndarray):
        import pandas as pd

        def score(x: np.ndarray) -> np.ndarray:
            f = pd.DataFrame(x)
            past = f.shift(1).rolling(length, min_periods=2)
            z = ((f - past.mean()) / past.std().replace(0, np.nan)).abs().fillna(0)
            return z.to_numpy().sum(1)
        return score
    return fit


def methods(length: int, seed: int, variants: dict[str, dict]) -> dict[str, Fit]:
    from aeon.anomaly_detection.series.distance_based import KMeansAD
    from aeon.anomaly_detection.series.distribution_based import DWT_MLEAD
    from pyod.models.knn import KNN
    from pyod.models.pca import PCA

    out = {DEFAULT: aekit({}, seed)}
    out.update({f"aekit {name}": aekit(opts, seed) for name, opts in variants.items()})
    out["Sub-PCA (PyOD PCA, windows)"] = on_windows(lambda: PCA(), length, "pyod")
    out["Sub-KNN (PyOD k-NN, windows)"] = on_windows(lambda: KNN(), length, "pyod")
    out["IsolationForest (windows)"] = on_windows(lambda: IsolationForest(random_state=seed), length, "sklearn")
    out["KMeansAD (aeon)"] = aeon(lambda: KMeansAD(window_size=length, random_state=seed))
    out["DWT-MLEAD (aeon)"] = aeon(lambda: DWT_MLEAD())
    out["rolling z-score"] = rolling_z(length)
    return out


def variants_of(text: str) -> dict[str, dict]:
    """``"mean:aggregate=mean,window=32;w16:window=16"`` → {"mean": {"aggregate": "mean", "window": 32}, ...}."""
    return dict(spec(item) for item in filter(None, text.split(";")))


def measure(s: Series, protocol: str, seed: int, variants: dict[str, dict], done: dict[str, dict]) -> dict[str, dict]:
    """Every method on one series under one protocol: {method: {measure: value}}; those in ``done`` are kept."""
    fit_on = s.train if protocol == "clean" else s.test
    scaler = standardizer(fit_on)
    data, test = (scaler.transform(p).astype(np.float32) for p in (fit_on, s.test))
    length = period(data)
    out = dict(done)
    for label, fit in methods(length, seed, variants).items():
        if label in out:
            continue
        t = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                score = np.asarray(fit(data)(test), dtype=np.float64)
        except Exception as e:  # a method that fails on a series is reported, not hidden
            out[label] = {"error": f"{type(e).__name__}: {str(e)[:120]}"}
            continue
        seconds = time.perf_counter() - t
        score = np.nan_to_num(score, nan=np.nanmin(score) if np.isfinite(score).any() else 0.0)
        out[label] = {"vus_pr": vus_pr(s.labels, score, length), "roc_auc": roc_auc_score(s.labels, score),
                      "ap": average_precision_score(s.labels, score), "range_f1": best_range_f1(s.labels, score)[0],
                      "seconds": seconds, "window": length,
                      **({"tsb_vus_pr": v} if (v := tsb_vus_pr(s.labels, score, length)) is not None else {})}
    return out


def table(results: dict[str, dict[str, dict]], default: str) -> str:
    """The markdown table of one protocol's ``results`` {series: {method: measures}}: mean rank by VUS-PR, the
    means of each measure, fit seconds, and the Holm-corrected Wilcoxon p of the default against each."""
    from scipy.stats import friedmanchisquare, rankdata, wilcoxon

    names = sorted(results)
    labels = [m for m in results[names[0]] if all("error" not in results[n].get(m, {"error": 1}) for n in names)]
    failed = sorted({m for n in names for m, r in results[n].items() if "error" in r})
    v = np.array([[results[n][m]["vus_pr"] for n in names] for m in labels])  # (methods, series)
    ranks = np.mean([rankdata(-v[:, j]) for j in range(v.shape[1])], axis=0)
    d = labels.index(default)
    p = {}
    for i in range(len(labels)):
        if i != d and len(names) >= 5 and np.any(v[i] != v[d]):
            p[i] = wilcoxon(v[d], v[i]).pvalue
    order = sorted(p, key=p.get)  # Holm: the k-th smallest p times (m − k + 1), kept monotone
    holm, running = {}, 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, p[i] * (len(order) - k)))
        holm[i] = running
    mean = lambda key, i: np.mean([results[n][labels[i]].get(key, np.nan) for n in names])  # noqa: E731
    tsb = all("tsb_vus_pr" in results[n][labels[0]] for n in names)
    head = "| method | mean rank | VUS-PR |" + (" VUS-PR (TSB-AD) |" if tsb else "") + \
           " ROC-AUC | AP | range F1 | s / series | Holm p vs default |"
    lines = [head, "|---" + "|---:" * (head.count("|") - 2) + "|"]
    for i in np.argsort(ranks):
        lines.append(f"| {labels[i]} | {ranks[i]:.2f} | {mean('vus_pr', i):.3f} |"
                     + (f" {mean('tsb_vus_pr', i):.3f} |" if tsb else "")
                     + f" {mean('roc_auc', i):.3f} | {mean('ap', i):.3f} | {mean('range_f1', i):.3f} |"
                     + f" {mean('seconds', i):.1f} | {'—' if i == d else f'{holm[i]:.3g}' if i in holm else 'n/a'} |")
    stat = friedmanchisquare(*v).pvalue if len(labels) >= 3 and len(names) >= 2 else float("nan")
    lines.append(f"\n{len(names)} series; Friedman p over the {len(labels)} methods = {stat:.3g}"
                 + (f"; failed on some series (left out above): {', '.join(failed)}" if failed else ""))
    return "\n".join(lines)


def leave_one_source_out(results: dict[str, dict[str, dict]], source: dict[str, str]) -> str:
    """Which aekit configuration each source's series would get if it were chosen on the other sources alone (by
    mean VUS-PR), and what it scores there: how a default chosen on some data does on data it never saw."""
    names = sorted(results)
    configs = [m for m in results[names[0]] if m.startswith("aekit ")
               and all("vus_pr" in results[n].get(m, {}) for n in names)]
    lines = ["| held out | chosen on the others | its VUS-PR there | best aekit there (in hindsight) |",
             "|---|---|---:|---:|"]
    for held in sorted(set(source.values())):
        rest = [n for n in names if source[n] != held]
        mine = [n for n in names if source[n] == held]
        if not rest or not mine:
            continue
        pick = max(configs, key=lambda m: np.mean([results[n][m]["vus_pr"] for n in rest]))
        there = {m: np.mean([results[n][m]["vus_pr"] for n in mine]) for m in configs}
        best = max(there, key=there.get)
        lines.append(f"| {held} ({len(mine)}) | {pick} | {there[pick]:.3f} | {best}: {there[best]:.3f} |")
    return "\n".join(lines)


def combined(runs: list[dict], protocols: list[str]) -> str:
    """The table of each protocol over several seeds' results: each measure the mean over the seeds that have
    it, for the series and methods that every seed measured."""
    out = []
    for protocol in protocols:
        parts = [r.get(protocol, {}) for r in runs]
        names = sorted(set.intersection(*(set(p) for p in parts)))
        if not names:
            continue
        mean = {}
        for n in names:
            labels = set.intersection(*(set(p[n]) for p in parts))
            mean[n] = {m: {k: float(np.mean([p[n][m][k] for p in parts])) for k in parts[0][n][m]
                           if all(isinstance(p[n][m].get(k), (int, float)) for p in parts)}
                       for m in labels if all("error" not in p[n][m] for p in parts)}
        out.append(f"### {protocol}: the mean of {len(runs)} seeds per series\n\n" + table(mean, DEFAULT))
    return "\n\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--protocol", default="clean,unsupervised")
    ap.add_argument("--channels", default="value", choices=["value", "all"])
    ap.add_argument("--limit", type=int, default=0, help="only the first N series of each source (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--aekit", default="", help="aekit variants: 'name:option=value,...;name2:...'")
    ap.add_argument("--json", default="", help="keep every measure here (and resume from it)")
    ap.add_argument("--combine", default="", help="files of --json from other seeds: the table of their means")
    args = ap.parse_args()
    if args.combine:
        return print(combined([json.load(open(f)) for f in args.combine.split(",")], args.protocol.split(",")))
    variants = variants_of(args.aekit)
    sources = [ucr(), smap_msl(args.channels)]
    series = [s for group in sources for s in (group[:args.limit] if args.limit else group)]
    kept = json.load(open(args.json)) if args.json and os.path.exists(args.json) else {}
    if kept and kept.get("default_params") != default_params():  # the default changed since these were measured
        for protocol in ("clean", "unsupervised"):
            for r in kept.get(protocol, {}).values():
                old = r.pop(DEFAULT, None)
                if old is not None and "default_params" not in kept:  # a file from before this record: OLD's
                    r.setdefault(OLD, old)
    kept["default_params"] = default_params()
    print(f"load average {os.getloadavg()[0]:.2f}; {len(series)} series "
          f"({sum(s.source == 'UCR' for s in series)} UCR, {sum(s.source != 'UCR' for s in series)} SMAP/MSL)",
          flush=True)
    for protocol in args.protocol.split(","):
        results = kept.setdefault(protocol, {})
        for s in series:
            wanted = {DEFAULT, *(f"aekit {v}" for v in variants)}
            if s.name not in results or not wanted <= set(results[s.name]):
                results[s.name] = measure(s, protocol, args.seed, variants, results.get(s.name, {}))
                if args.json:
                    with open(args.json, "w") as f:
                        json.dump(kept, f)
            best = max(results[s.name].items(), key=lambda kv: kv[1].get("vus_pr", -1))[0]
            print(f"{protocol:>12} {s.source:>4} {s.name:<20} {len(s.train):>6} train {len(s.test):>6} test; "
                  f"best VUS-PR: {best}", flush=True)
        mine = {s.name: results[s.name] for s in series}
        print(f"\n### {protocol}\n\n" + table(mine, DEFAULT) + "\n", flush=True)
        if variants:
            print(leave_one_source_out(mine, {s.name: s.source for s in series}) + "\n", flush=True)


if __name__ == "__main__":
    main()
