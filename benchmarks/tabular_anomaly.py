"""Anomaly detection on real tables: aekit's detectors at their defaults against scikit-learn and PyOD.

Tasks (``benchmarks/_tabular.py``, ADBench's recipe on the 22 tables of ``../shared/data/tabular``): one
class normal and the other subsampled to 5 % anomalies (``--seeds`` seeds, both classes in turn), and
the four synthetic anomaly types generated from the larger class (``--synthetic-seeds``), each in two
settings: *unsupervised* (fit on the contaminated rows, score them) and *semi-supervised* (fit on 70 % of
the normal rows, score the rest mixed with anomalies).

Every detector runs at its defaults with a seed: IsolationForest, LOF, OneClassSVM (scikit-learn); k-NN,
ECOD, AutoEncoder, VAE, DeepSVDD (PyOD, ``pip install -e ".[bench]"``); and aekit's
``AutoencoderOutlierDetector`` (``--aekit``: one variant per spec, ``default`` or options such as
``preset=vae`` or ``preset=undercomplete,epochs=20``). Reported per setting: mean ROC-AUC, mean average
precision, mean rank by ROC-AUC (1 = best; ties share), mean fit time, the tasks where a detector falls
below 0.5 ROC-AUC while the best baseline is above 0.8, and a critical-difference summary (Friedman test,
Nemenyi's CD at α = 0.05, Demšar 2006).

    python benchmarks/tabular_anomaly.py [--seeds 3] [--synthetic-seeds 1] [--only Ecoli] [--cache results.jsonl]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy.stats import friedmanchisquare, rankdata, studentized_range
from sklearn.metrics import average_precision_score, roc_auc_score
from threadpoolctl import threadpool_limits

from _tabular import tasks

HERE = Path(__file__).resolve().parent
# (x_fit, x_score, same rows?, seed) -> anomaly score of each row of x_score, higher = more anomalous
Detector = Callable[[np.ndarray, np.ndarray, bool, int], np.ndarray]


def sklearn_detectors() -> dict[str, Detector]:
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor
    from sklearn.svm import OneClassSVM

    def iforest(x, z, same, seed):
        return -IsolationForest(random_state=seed).fit(x).score_samples(z)

    def lof(x, z, same, seed):
        if same:  # the rows it was fitted on: their own outlier factors (a row is not its own neighbour)
            return -LocalOutlierFactor().fit(x).negative_outlier_factor_
        return -LocalOutlierFactor(novelty=True).fit(x).score_samples(z)

    def ocsvm(x, z, same, seed):
        return -OneClassSVM().fit(x).score_samples(z)

    return {"IsolationForest": iforest, "LOF": lof, "OneClassSVM": ocsvm}


def pyod_detectors() -> dict[str, Detector]:
    def wrap(make):
        def run(x, z, same, seed):
            m = make(x, seed)
            m.fit(x)
            return m.decision_scores_ if same else m.decision_function(z)

        return run

    from pyod.models.auto_encoder import AutoEncoder
    from pyod.models.deep_svdd import DeepSVDD
    from pyod.models.ecod import ECOD
    from pyod.models.knn import KNN
    from pyod.models.vae import VAE

    return {
        "PyOD k-NN": wrap(lambda x, s: KNN()),
        "PyOD ECOD": wrap(lambda x, s: ECOD()),
        "PyOD AutoEncoder": wrap(lambda x, s: AutoEncoder(random_state=s, verbose=0)),
        "PyOD VAE": wrap(lambda x, s: VAE(random_state=s, verbose=0)),
        "PyOD DeepSVDD": wrap(lambda x, s: DeepSVDD(n_features=x.shape[1], random_state=s, verbose=0)),
    }


def aekit_detector(spec: str) -> tuple[str, Detector]:
    """``"default"`` or ``"preset=vae,epochs=20"`` → (row name, detector); values parsed as JSON where they can be."""
    from aekit.estimators import AutoencoderOutlierDetector

    opts = {}
    for pair in filter(None, spec.split(",")):
        if pair == "default":
            continue
        key, _, value = pair.partition("=")
        try:
            opts[key] = json.loads(value)
        except json.JSONDecodeError:
            opts[key] = value
    opts = {k: tuple(v) if isinstance(v, list) else v for k, v in opts.items()}

    def run(x, z, same, seed):
        return -AutoencoderOutlierDetector(**opts, random_state=seed).fit(x).score_samples(z)

    name = "aekit (defaults)" if not opts else "aekit " + ", ".join(f"{k}={v}" for k, v in opts.items())
    return name, run


def nemenyi_cd(k: int, n: int) -> float:
    """Nemenyi's critical difference of mean ranks for ``k`` detectors on ``n`` tasks, α = 0.05."""
    return float(studentized_range.ppf(0.95, k, 1e6) / np.sqrt(2) * np.sqrt(k * (k + 1) / (6 * n)))


def summarise(setting: str, rows: list[dict], names: list[str], baselines: list[str]) -> None:
    tasks_ = sorted({(r["task"], r["seed"]) for r in rows})
    by = {(r["task"], r["seed"], r["detector"]): r for r in rows}
    auc = np.array([[by[t + (d,)]["auc"] for d in names] for t in tasks_])
    ap = np.array([[by[t + (d,)]["ap"] for d in names] for t in tasks_])
    fit_s = np.array([[by[t + (d,)]["fit_s"] for d in names] for t in tasks_])
    errors = np.array([[bool(by[t + (d,)]["error"]) for d in names] for t in tasks_])
    ranks = np.array([rankdata(-a) for a in auc])  # 1 = highest ROC-AUC; ties share the mean rank
    base = [names.index(b) for b in baselines]
    hard = auc[:, base].max(1) > 0.8 if base else np.zeros(len(tasks_), bool)  # --no-baselines: none to beat
    mean_rank = ranks.mean(0)
    print(f"\n### {setting}: {len(tasks_)} tasks ({len({t[0].split('/')[0] for t in tasks_})} data sets)\n")
    print("| detector | mean rank | mean ROC-AUC | mean AP | < 0.5 where the best baseline > 0.8 | mean fit time "
          "| errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for i in np.argsort(mean_rank):
        low = int(((auc[:, i] < 0.5) & hard).sum())
        print(f"| {names[i]} | {mean_rank[i]:.2f} | {auc[:, i].mean():.4f} | {ap[:, i].mean():.4f} | {low} | "
              f"{fit_s[:, i].mean():.2f} s | {int(errors[:, i].sum())} |")
    if len(tasks_) > 1 and len(names) > 2:
        p = friedmanchisquare(*auc.T).pvalue
        cd = nemenyi_cd(len(names), len(tasks_))
        best = int(np.argmin(mean_rank))
        tied = [names[i] for i in np.argsort(mean_rank) if i != best and mean_rank[i] - mean_rank[best] < cd]
        print(f"\nFriedman p = {p:.2g}; Nemenyi CD (α = 0.05) = {cd:.2f} ranks. Best mean rank: {names[best]}; "
              f"not significantly different from it: {', '.join(tied) or 'none'}.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3, help="seeds of the real (class-vs-rest) tasks")
    ap.add_argument("--synthetic-seeds", type=int, default=1, help="seeds of the synthetic-anomaly tasks")
    ap.add_argument("--settings", nargs="+", default=["unsupervised", "semi-supervised"])
    ap.add_argument("--max-rows", type=int, default=5000, help="normal rows kept per task (seeded subsample)")
    ap.add_argument("--only", default="", help="data sets whose name contains this")
    ap.add_argument("--aekit", nargs="+", default=["default", "preset=undercomplete", "preset=vae"])
    ap.add_argument("--no-baselines", action="store_true", help="aekit's detectors only (for tuning)")
    ap.add_argument("--data-dir", type=Path, default=HERE.parent.parent / "shared" / "data" / "tabular")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for every detector (1: these fits are "
                    "small, one thread each is fastest; run settings in parallel processes to use more cores)")
    ap.add_argument("--cache", type=Path, help="JSON lines of results: read, results found there are not run "
                    "again, new ones appended (to resume, or to tune aekit against baselines run once)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)  # BLAS/OpenMP of NumPy and scikit-learn too
    baselines = {} if args.no_baselines else {**sklearn_detectors(), **pyod_detectors()}
    detectors = {**dict(aekit_detector(s) for s in args.aekit), **baselines}
    rows: list[dict] = []
    done = {}
    if args.cache and args.cache.exists():
        for line in args.cache.read_text().splitlines():
            r = json.loads(line)
            done[(r["task"], r["setting"], r["seed"], r["n"], r["detector"])] = r
    cache = args.cache.open("a") if args.cache else None
    t0 = time.perf_counter()
    for task in tasks(args.data_dir, args.seeds, args.synthetic_seeds, tuple(args.settings), args.max_rows,
                      args.only):
        same = task.setting == "unsupervised"
        line = []
        for name, det in detectors.items():
            key = (task.name, task.setting, task.seed, len(task.x_fit), name)
            if key in done:
                rows.append(done[key])
                line.append(f"{done[key]['auc']:.3f}")
                continue
            torch.manual_seed(task.seed)
            t = time.perf_counter()
            try:
                score = np.asarray(det(task.x_fit, task.x_score, same, task.seed), dtype=np.float64)
                error = ""
            except Exception as e:  # noqa: BLE001 — a detector that fails on a task scores chance there, counted
                score, error = np.zeros(len(task.x_score)), f"{type(e).__name__}: {e}"
            fit_s = time.perf_counter() - t
            score = np.nan_to_num(score, nan=0.0, posinf=1e300, neginf=-1e300)  # a failed score ranks as chance
            auc = roc_auc_score(task.y_score, score)
            rows.append({"task": task.name, "setting": task.setting, "seed": task.seed, "detector": name,
                         "auc": auc, "ap": average_precision_score(task.y_score, score), "fit_s": fit_s,
                         "n": len(task.x_fit), "d": task.x_fit.shape[1], "error": error})
            if cache:
                cache.write(json.dumps(rows[-1]) + "\n")
                cache.flush()
            line.append("error" if error else f"{auc:.3f}")
        print(f"[{time.perf_counter() - t0:6.0f} s] {task.setting:15s} {task.name:34s} seed {task.seed} "
              f"n {len(task.x_fit):5d} d {task.x_fit.shape[1]:3d}  " + " ".join(line), flush=True)
    names = list(detectors)
    print(f"\ndetectors (ROC-AUC columns above, in order): {', '.join(names)}; "
          f"{torch.get_num_threads()} torch threads; {time.perf_counter() - t0:.0f} s in all")
    for setting in args.settings:
        summarise(setting, [r for r in rows if r["setting"] == setting], names, list(baselines))


if __name__ == "__main__":
    main()
