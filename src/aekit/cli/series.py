"""``aekit score``: per-step anomaly scores of a series under a run trained on its windows (``--window``)."""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from .._checks import Interval, OneOf, check
from ..evaluation.ranges import best_range_f1
from ..store.atomic import atomic_write
from ..store.run import Run
from ..store.series import read_series
from ._app import ModelFn, Plugins, _fail, _plugins, _run_model, app, friendly, out, out_file, rows_like_run
from ._lazy import lazy_module

# heavy modules (torch), loaded on first use so that `aekit --help` and option checks stay fast
evaluation_metrics = lazy_module("aekit.evaluation.metrics")
evaluation_novelty = lazy_module("aekit.evaluation.novelty")
evaluation_series = lazy_module("aekit.evaluation.series")
report_series = lazy_module("aekit.report.series")
training_loop = lazy_module("aekit.training.loop")


@app.command()
@friendly
def score(
    run_dir: Annotated[Path, typer.Argument(help="A run directory: trained with --window (a score per step) or not (a score per row).")],
    data: Annotated[Path, typer.Argument(help="A series: .csv (a time column, numeric channels, an optional 0/1 label column) or .npy (T, C); for a run on rows, rows as in training (.npy, .npz with optional labels y, .csv).")],
    out_path: Annotated[Optional[Path], typer.Option("--out", help="Write the scores here (.csv: the time column or row, score, label).")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Also draw the scores (.png): a series and its score track, or rows by score and their histogram; labelled anomalies shaded.")] = None,
    aggregate: Annotated[str, typer.Option(help="A step's errors over the windows that contain it: mean (ranks real anomalies better: README, Benchmarks) or min (keeps an anomaly at its steps).")] = "mean",
    novelty: Annotated[bool, typer.Option("--novelty/--no-novelty", help="Add each window's code novelty (the distance of its code to the codes of the run's training windows: its --data read again, the training steps only), each part in units of its spread on the training steps; as SeriesOutlierDetector's code_novelty (README, Benchmarks). Without the training file: reconstruction alone, said.")] = True,
    top: Annotated[int, typer.Option(help="Print this many highest-scoring steps.")] = 10,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
    plugin: Plugins = None,
    model_fn: ModelFn = None,
) -> None:
    """Score every step of a series: the squared reconstruction error of the step (channels standardised as in
    training, summed), over the windows that contain it, plus (--novelty) the distance of those windows' codes to
    the training windows' codes, each in units of its spread on the training steps. Higher is more anomalous; with labels, ROC-AUC and
    average precision per step are printed too, and the best range-based F1 over thresholds (aekit.evaluation.ranges).
    For a run trained on rows (tables, images), each row's squared reconstruction error."""
    series_errors = evaluation_series.series_errors
    series_reconstruction = evaluation_series.series_reconstruction
    resolve_device = training_loop.resolve_device

    _plugins(plugin)
    check(aggregate, "--aggregate", OneOf("min", "mean"))
    check(top, "--top", Interval(int, 0))
    meta = Run(run_dir).data_spec()
    if out_path is not None:
        out_file(out_path, (".csv",), source=data)
    if plot is not None:
        out_file(plot, (".png",), "--plot", source=data)
    if meta["window"] is None:
        return _score_rows(_run_model(run_dir, resolve_device(device), model_fn), data, out_path, top, run_dir, plot)
    f = read_series(data, meta.get("drop_columns") or ())  # the columns the run left out, left out again
    center, scale = np.asarray(meta["center"]), np.asarray(meta["scale"])
    if f.x.shape[1] != len(center):
        _fail(f"{data} has {f.x.shape[1]} channels; the run was trained on {len(center)}")
    if len(f.x) < meta["window"]:
        _fail(f"{data} has {len(f.x)} steps, fewer than the run's window of {meta['window']}")
    model = _run_model(run_dir, resolve_device(device), model_fn)
    z = ((f.x - center) / scale).astype(np.float32)  # as in training
    train = _training_steps(run_dir, meta, center, scale) if novelty else None
    if train is None:
        s = series_errors(model, z, how=aggregate)
    else:
        codes, spread, _ = evaluation_novelty.reference(model, train, aggregate)
        s = evaluation_novelty.step_scores(model, z, evaluation_novelty.index(codes), spread, aggregate)
    when = f.time if f.time is not None else [str(i) for i in range(len(s))]
    order = np.argsort(-s)[:max(top, 0)]
    what = f"{aggregate} over windows" + (", + code novelty" if train is not None else "")
    out.print(f"{len(s)} steps scored (window {meta['window']}, {what}); highest:")
    for i in order:
        out.print(f"  step {i:>7}  {when[i]:>24}  {s[i]:.4g}", highlight=False)
    if _auc(f.labels, s, "steps"):
        f1, t = best_range_f1(f.labels, s)
        out.print(f"best range F1 {f1:.4f}, flagging scores ≥ {t:.4g}")
    if out_path is not None:
        _write_scores(out_path, "time" if f.time is not None else "step", when, s, f.labels)
    if plot is not None:
        series_scores = report_series.series_scores

        _write_plot(plot, series_scores(z, s, f.names, f.labels, recon=series_reconstruction(model, z)))


def _training_steps(run_dir: Path, meta: dict, center: np.ndarray, scale: np.ndarray) -> np.ndarray | None:
    """The run's training steps (T, C), standardised as in training: its --data read again, the first
    --train-steps (or 80 %) of the steps; None, said, when the file is gone or no longer the one trained on."""
    path = Path(meta["data"])
    if meta.get("stream") or not path.is_file():
        warnings.warn(f"the run's training series {path} is not here (scored from {Path.cwd()}): scores are the "
                      "reconstruction error alone; --no-novelty says so without this warning", stacklevel=2)
        return None
    with warnings.catch_warnings():  # its gaps and columns were reported when it was trained on
        warnings.simplefilter("ignore")
        f = read_series(path, meta.get("drop_columns") or ())
    cut = evaluation_series.train_cut(len(f.x), meta.get("train_steps"))  # as series_split cut it
    if f.x.shape[1] != len(center) or cut < meta["window"] + 1 or cut > len(f.x):
        _fail(f"{path} is no longer the series {run_dir} was trained on ({f.x.shape[1]} channels, {len(f.x)} "
              "steps); score with --no-novelty, or train again")
    return ((f.x[:cut] - center) / scale).astype(np.float32)


def _write_plot(path: Path, fig) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    out.print(f"wrote {path}")


def _auc(labels: np.ndarray | None, s: np.ndarray, what: str) -> bool:
    """Print ROC-AUC and average precision of the scores ``s`` for 0/1 ``labels`` with both classes present."""
    if labels is None or not 0 < np.sum(labels) < len(labels):
        return False
    from sklearn.metrics import average_precision_score, roc_auc_score

    out.print(f"labels: {int(np.sum(labels))} anomalous {what}; ROC-AUC {roc_auc_score(labels, s):.4f}, "
              f"average precision {average_precision_score(labels, s):.4f}")
    return True


def _write_scores(path: Path, key: str, keys, s: np.ndarray, labels: np.ndarray | None) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([key, "score", *(["label"] if labels is not None else [])])
    for i in range(len(s)):
        w.writerow([keys[i], f"{s[i]:.6g}", *([int(labels[i])] if labels is not None else [])])
    atomic_write(path, lambda tmp: Path(tmp).write_text(buf.getvalue()))
    out.print(f"wrote {len(s)} scores to {path}")


def _score_rows(model, data: Path, out_path: Path | None, top: int, run_dir: Path, plot: Path | None) -> None:
    """Each row's squared reconstruction error (summed over features), for a run trained on rows; read and
    standardised as in its training (a CSV's label column is the labels)."""
    reconstruct = evaluation_metrics.reconstruct

    x, y = rows_like_run(data, run_dir, model)
    s = ((x - reconstruct(model, x)) ** 2).sum(1)
    out.print(f"{len(s)} rows scored (squared reconstruction error); highest:")
    for i in np.argsort(-s, kind="stable")[:max(top, 0)]:
        out.print(f"  row {i:>7}  {s[i]:.4g}", highlight=False)
    labels = y.astype(np.int64) if y is not None and set(np.unique(y)) <= {0, 1} else None
    _auc(labels, s, "rows")
    if out_path is not None:
        _write_scores(out_path, "row", range(len(s)), s, labels)
    if plot is not None:
        row_scores = report_series.row_scores

        _write_plot(plot, row_scores(s, labels))
