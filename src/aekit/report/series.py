"""A series' figure: its channels, the per-step anomaly score, and labelled anomalies shaded."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def series_scores(x: np.ndarray, score: np.ndarray, names: Sequence[str] = (), labels: np.ndarray | None = None,
                  threshold: float | None = None, recon: np.ndarray | None = None, max_channels: int = 6) -> Figure:
    """The channels of ``x`` (T, C) above (at most ``max_channels``, standardised; their reconstruction
    ``recon`` (T, C) dashed, in the same units), the score track (T,) below with the ``threshold`` as a line;
    steps labelled 1 in ``labels`` shaded in both."""
    x = np.asarray(x, dtype=np.float64)
    t = np.arange(len(x))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 4.5), sharex=True, height_ratios=(3, 2))
    mu, sd = x.mean(0), np.where(x.std(0) > 0, x.std(0), 1)
    z = (x - mu) / sd
    for c in range(min(x.shape[1], max_channels)):
        line, = top.plot(t, z[:, c] + 3 * c, lw=0.8, label=names[c] if c < len(names) else f"x{c}")
        if recon is not None:
            top.plot(t, (recon[:, c] - mu[c]) / sd[c] + 3 * c, lw=0.8, ls="--", color=line.get_color(), alpha=0.7)
    top.set_yticks([])
    top.legend(loc="upper right", fontsize=7, ncols=min(x.shape[1], max_channels))
    top.set_title("series (standardised, offset per channel" + (", reconstruction dashed)" if recon is not None else ")") + (
        f"; {x.shape[1] - max_channels} more channels not shown" if x.shape[1] > max_channels else ""))
    bottom.plot(t, score, lw=0.8, color="crimson")
    if threshold is not None:
        bottom.axhline(threshold, color="k", lw=0.6, ls="--", label="threshold")
        bottom.legend(loc="upper right", fontsize=7)
    bottom.set_ylabel("anomaly score")
    bottom.set_xlabel("step")
    if labels is not None:
        on = np.flatnonzero(np.diff(np.r_[0, np.asarray(labels, dtype=int), 0]))  # run starts and ends
        for a, b in zip(on[::2], on[1::2]):
            for ax in (top, bottom):
                ax.axvspan(a - 0.5, b - 0.5, color="orange", alpha=0.3, lw=0)
    fig.tight_layout()
    return fig


def row_scores(score: np.ndarray, labels: np.ndarray | None = None) -> Figure:
    """Rows' anomaly scores (N,): by row (labelled rows, where given, in orange) and their distribution."""
    score = np.asarray(score, dtype=np.float64)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5), width_ratios=(3, 2))
    bad = np.zeros(len(score), bool) if labels is None else np.asarray(labels).astype(bool)
    left.scatter(np.flatnonzero(~bad), score[~bad], s=4, color="#4477aa", label="rows")
    if bad.any():
        left.scatter(np.flatnonzero(bad), score[bad], s=8, color="orange", label="labelled anomalous")
        left.legend(loc="upper right", fontsize=7)
    left.set_xlabel("row")
    left.set_ylabel("anomaly score (squared reconstruction error)")
    right.hist([score[~bad], score[bad]] if bad.any() else score, bins=50, color=["#4477aa", "orange"][: 1 + bad.any()],
               stacked=True)
    right.set_xlabel("anomaly score")
    right.set_ylabel("rows")
    fig.tight_layout()
    return fig

