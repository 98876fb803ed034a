"""The real labelled series of ``../shared/data/series`` and the measures the field reports on them.

- NASA SMAP and MSL telemetry (Hundman et al. 2018): 82 channels, each an anomaly-free training part and a
  labelled test part; column 0 is the telemetry value, the rest one-hot commands.
- The UCR anomaly archive (Wu & Keogh 2021): four InternalBleeding series, a clean start of TRAINEND steps and
  one labelled anomaly [BEGIN, END] (1-based, inclusive) after it.

VUS-PR, the headline measure of TSB-AD (Liu & Paparrizos 2024), comes from aeon
(``range_pr_vus_score``: Paparrizos et al. 2022's volume under the range-precision/recall surface over buffer
sizes 0 … L). TSB-AD's and vus's own implementations (their ``generate_curve``, version "opt") are not
installable here beside numpy 2 (both pin numpy < 2 or older stacks) and give other values for the same
input (their surface uses a different buffer and threshold grid); when ``TSB_AD`` is importable (``pip install
--no-deps TSB-AD``), :func:`tsb_vus_pr` gives theirs too, so a table can carry both.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "series"


@dataclass
class Series:
    """One benchmark series: a clean training part, a test part with 0/1 labels per step, and its source."""

    name: str
    source: str  # "SMAP", "MSL" or "UCR"
    train: np.ndarray  # (T_train, C) float32
    test: np.ndarray  # (T_test, C) float32
    labels: np.ndarray  # (T_test,) 0/1


def smap_msl(channels: str = "value") -> list[Series]:
    """The 82 SMAP/MSL channels; ``channels="value"`` keeps the telemetry value (column 0), ``"all"`` every
    column (the one-hot command channels too, as TSB-AD-M does)."""
    root = DATA / "smap_msl"
    with open(root / "labeled_anomalies.csv", newline="") as f:
        craft = {r["chan_id"]: r["spacecraft"] for r in csv.DictReader(f)}
    out = []
    for path in sorted(root.glob("*.npz")):
        z = np.load(path)
        keep = slice(0, 1) if channels == "value" else slice(None)
        out.append(Series(path.stem, craft.get(path.stem, "?"), z["train"][:, keep].astype(np.float32),
                          z["test"][:, keep].astype(np.float32), z["test_labels"].astype(np.int64)))
    return out


def ucr() -> list[Series]:
    """The UCR archive's series: rows [0, TRAINEND) train, the rest test; the anomaly [BEGIN, END] is 1-based."""
    out = []
    for path in sorted((DATA / "ucr").glob("*.txt")):
        m = re.match(r"(\d+)_UCR_Anomaly_(\w+?)_(\d+)_(\d+)_(\d+)$", path.stem)
        end, begin, stop = (int(g) for g in m.groups()[2:])
        x = np.loadtxt(path, dtype=np.float64).reshape(-1, 1).astype(np.float32)
        y = np.zeros(len(x), np.int64)
        y[begin - 1:stop] = 1  # 1-based and inclusive
        out.append(Series(m[2], "UCR", x[:end], x[end:], y[end:]))
    return out


def period(x: np.ndarray, low: int = 8, high: int = 512) -> int:
    """The dominant period of a series (its first channel): the lag of the highest autocorrelation peak in
    [``low``, ``high``] (statsmodels' ACF, scipy's peak finder), as TSB-AD picks its windows; ``low`` when
    there is none."""
    from scipy.signal import find_peaks
    from statsmodels.tsa.stattools import acf

    v = np.asarray(x, dtype=np.float64)[:, 0]
    high = min(high, len(v) // 3)
    if high <= low or np.std(v) == 0:
        return low
    r = acf(v, nlags=high, fft=True)
    peaks, _ = find_peaks(r[low:])
    if not len(peaks):
        return low
    return int(low + peaks[np.argmax(r[low:][peaks])])


def spec(text: str) -> tuple[str, dict]:
    """``"lstm:teacher_forcing=1,cell=gru"`` → ``("lstm", {"teacher_forcing": 1, "cell": "gru"})``: a name and its
    options, each value read as JSON where it parses."""
    name, _, rest = text.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return name, options


def vus_pr(labels: np.ndarray, scores: np.ndarray, buffer: int) -> float:
    """VUS-PR by aeon (``range_pr_vus_score``) over buffer sizes 0 … ``buffer``; higher scores are more anomalous."""
    from aeon.benchmarking.metrics.anomaly_detection import range_pr_vus_score

    return float(range_pr_vus_score(np.asarray(labels, dtype=bool), np.asarray(scores, dtype=np.float64),
                                    max_buffer_size=int(buffer)))


def tsb_vus_pr(labels: np.ndarray, scores: np.ndarray, window: int) -> float | None:
    """TSB-AD's VUS-PR (``generate_curve``, version "opt", 250 thresholds), or None without TSB_AD."""
    try:
        from TSB_AD.evaluation.basic_metrics import generate_curve
    except ImportError:
        return None
    return float(generate_curve(np.asarray(labels, dtype=int), np.asarray(scores, dtype=np.float64), int(window),
                                "opt", 250)[-1])
