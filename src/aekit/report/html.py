"""A run at a glance: matplotlib figures and one self-contained ``report.html`` (images embedded).

Every run gets its loss curves, originals vs reconstructions, the code map and its config and
metrics; denoising runs add noisy vs denoised, sparse runs the unit activity, contractive runs the
tangent directions, VAE runs samples and interpolations.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..core.corruption import Identity  # noqa: E402
from ..core.model import Autoencoder, CodeConstraint, seeded  # noqa: E402
from ..evaluation.manifold import tangent_directions, vector_field
from ..evaluation.measures import readable, warnings_for  # noqa: E402
from ..evaluation.metrics import encode, reconstruct, sample_rows  # noqa: E402
from ..evaluation.series import series_errors, series_reconstruction
from ..parts.denoising import chain
from ..parts.sae import SAEEncoder  # noqa: E402
from ..parts.variational import interpolate, sample  # noqa: E402
from ..store.atomic import atomic_write  # noqa: E402
from ..store.data import Split  # noqa: E402
from ..store.rows import Rows
from ..store.run import Run  # noqa: E402
from ..training.checkpoint import load_model
from .sae import sae_sections
from .series import series_scores

N_SHOW = 10  # images per row in the grids


def _image_shape(model: Autoencoder) -> tuple[int, ...] | None:
    """(H, W) or (H, W, 3) when a sample is an image imshow can draw, else None."""
    s = model.input_shape
    if len(s) == 3 and s[0] in (1, 3):
        return (s[1], s[2]) if s[0] == 1 else (s[1], s[2], 3)
    return None


def _show_rows(rows: list[tuple[str, np.ndarray]], shape: tuple[int, ...] | None, title: str,
               steps: int | None = None) -> Figure:
    """Rows of images (or of line plots for non-image data: one line per channel of a window of ``steps``
    steps), one labelled row per array (n, D)."""
    n = max(len(a) for _, a in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.2 * n, 1.35 * len(rows) + 0.5), squeeze=False)
    for i, (label, arr) in enumerate(rows):
        for j in range(n):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(arr):
                ax.axis("off")
                continue
            if shape is not None:
                img = arr[j].reshape(shape[-1], *shape[:2]).transpose(1, 2, 0) if len(shape) == 3 else arr[j].reshape(shape)
                ax.imshow(np.clip(img, 0, 1), cmap="gray", vmin=0, vmax=1)
            else:
                ax.plot(arr[j].reshape(steps, -1) if steps else arr[j], lw=0.8)
        axes[i, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


_TITLES = {  # what is optimised and what is only logged, for a VAE whose objective is not −ELBO
    "loss": "loss (the objective)",
    "kl": "kl term of the objective (β, free bits)",
    "kl_divergence": "KL(q‖p), logged (not optimised)",
    "neg_elbo": "−ELBO (β = 1), logged (not optimised)",
}


def loss_curves(rows: list[dict[str, Any]]) -> Figure:
    """One panel per loss term: train (and validation) against epoch."""
    from matplotlib.ticker import MaxNLocator

    terms = [k[len("train_"):] for k in rows[0] if k.startswith("train_")]
    if "reconstruction" in terms and all(r["train_reconstruction"] == r["train_loss"] for r in rows):
        terms.remove("reconstruction")  # no penalty: the loss is the reconstruction term, one panel shows both
    fig, axes = plt.subplots(1, len(terms), figsize=(4 * len(terms), 3.2), squeeze=False)
    epochs = [r["epoch"] for r in rows]
    for ax, t in zip(axes[0], terms):
        ax.plot(epochs, [r[f"train_{t}"] for r in rows], label="train")
        if f"val_{t}" in rows[0]:
            ax.plot(epochs, [r[f"val_{t}"] for r in rows], label="validation")
        ax.set_title(_TITLES.get(t, t.replace("_", " ")))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("nats per sample" if t in ("loss", "reconstruction", "kl", "kl_divergence", "neg_elbo") else "value")
        ax.legend()
    fig.suptitle("loss per term")
    fig.tight_layout()
    return fig


def feature_scatter(x: np.ndarray, r: np.ndarray, n: int = 12, names: list[str] | None = None,
                    units: tuple[np.ndarray, np.ndarray] | None = None) -> Figure:
    """Tabular data: for the ``n`` features reconstructed worst (lowest R²), each test row's reconstruction
    against its value (on the diagonal when perfect). ``names``: the features' (a CSV header); ``units``: the
    (center, scale) the rows were standardised with, so that both axes are in the data's own units."""
    if units is not None:
        x, r = x * units[1] + units[0], r * units[1] + units[0]
    var = x.var(0)
    r2 = np.where(var > 0, 1 - ((x - r) ** 2).mean(0) / np.where(var > 0, var, 1), np.nan)
    top = np.sort(np.argsort(np.nan_to_num(r2, nan=np.inf), kind="stable")[:n])
    cols = min(4, len(top))
    rows_ = -(-len(top) // cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(3 * cols, 2.8 * rows_), squeeze=False)
    for ax in axes.flat[len(top):]:
        ax.axis("off")
    for ax, j in zip(axes.flat, top):
        lo, hi = float(min(x[:, j].min(), r[:, j].min())), float(max(x[:, j].max(), r[:, j].max()))
        ax.plot([lo, hi], [lo, hi], color="black", lw=0.8, ls="--")
        ax.scatter(x[:, j], r[:, j], s=3, alpha=0.5)
        name = names[j] if names is not None and j < len(names) else f"feature {j}"
        ax.set_title(f"{name}: R² {r2[j]:.2f}", fontsize=9)
        ax.set_xlabel("value (data units)" if units is not None else "value", fontsize=8)
        ax.set_ylabel("reconstruction", fontsize=8)
    fig.suptitle(f"test rows: reconstruction against value, the {len(top)} of {x.shape[1]} features reconstructed "
                 "worst")
    fig.tight_layout()
    return fig


MAX_CLASSES = 20  # more distinct labels than this are coloured on a continuous scale


def code_map(codes: np.ndarray, labels: np.ndarray | None) -> Figure:
    """The codes in 2-D (the codes themselves if K = 2, else their first two principal components)."""
    from sklearn.decomposition import PCA

    k = codes.shape[1]
    if k == 2:
        xy, what = codes, ("h₁", "h₂")
    elif k == 1:
        xy, what = np.column_stack([codes[:, 0], np.zeros(len(codes))]), ("h₁", "")
    else:
        xy, what = PCA(2, random_state=0).fit_transform(codes), ("PC 1 of the codes", "PC 2 of the codes")
    fig, ax = plt.subplots(figsize=(6, 5))
    classes = np.unique(labels) if labels is not None else []
    if 0 < len(classes) <= MAX_CLASSES:  # class labels: one colour each, named in a legend (not a colour bar)
        colours = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20").colors
        for c, colour in zip(classes, colours):
            on = labels == c
            ax.scatter(xy[on, 0], xy[on, 1], s=4, color=colour, alpha=0.7, label=str(c))
        ax.legend(title="label", markerscale=3, fontsize="small", loc="best")
    elif labels is not None:  # a continuous target, or too many classes to tell apart
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=labels, s=4, cmap="viridis", alpha=0.7)
        fig.colorbar(sc, ax=ax, label="label")
    else:
        ax.scatter(xy[:, 0], xy[:, 1], s=4, alpha=0.7)
    ax.set_xlabel(what[0])
    ax.set_ylabel(what[1])
    ax.set_title(f"test codes ({k}-D{'' if k <= 2 else ', PCA projection'})")
    fig.tight_layout()
    return fig


def unit_activity(codes: np.ndarray, tol: float = 0.01) -> Figure:
    """Histogram over code units of the fraction of samples in which each unit is active (|h| > tol)."""
    active = (np.abs(codes) > tol).mean(0)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(active, bins=50, color="tab:green")
    ax.set_xlabel(f"fraction of test samples with |h_j| > {tol}")
    ax.set_ylabel("number of code units")
    ax.set_title(f"unit activity: {int((active == 0).sum())} of {len(active)} units never active")
    fig.tight_layout()
    return fig


def field_plot(model: Autoencoder, data: np.ndarray, n: int = 25) -> Figure:
    """2-D data: the reconstruction vector field r(x) − x on a grid, over the training points."""

    lo, hi = data.min(0) - 0.3, data.max(0) + 0.3
    g = np.stack(np.meshgrid(np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)), -1).reshape(-1, 2)
    v = vector_field(model, g)
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(data[:2000, 0], data[:2000, 1], s=2, c="tab:gray", alpha=0.5, label="training data")
    q = ax.quiver(g[:, 0], g[:, 1], v[:, 0], v[:, 1], np.linalg.norm(v, axis=1), angles="xy", cmap="viridis")
    fig.colorbar(q, ax=ax, label="‖r(x) − x‖")
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.set_aspect("equal")
    ax.set_title("reconstruction vector field r(x) − x")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def chain_figure(model: Autoencoder, start: np.ndarray, shape: tuple[int, ...] | None) -> Figure:
    """The denoising model's Markov chain (:func:`aekit.parts.denoising.chain`, seeded): for 2-D data, where 1,000 chains
    started at data points are after 200 steps, over the data; for images, its means every 10 steps from 3 images."""

    if shape is None:  # 2-D points
        with seeded(0):
            draws, _ = chain(model, start[:1000], steps=200, every=200)
        fig, ax = plt.subplots(figsize=(6, 6))
        ax.scatter(start[:2000, 0], start[:2000, 1], s=2, c="tab:gray", alpha=0.5, label="data")
        d = draws[-1].cpu().numpy()
        ax.scatter(d[:, 0], d[:, 1], s=3, c="tab:orange", alpha=0.7, label="chain after 200 steps")
        ax.set_aspect("equal")
        ax.legend(loc="upper right")
        ax.set_title("samples of the corrupt–reconstruct Markov chain")
        fig.tight_layout()
        return fig
    with seeded(0):
        _, means = chain(model, start[:3], steps=100, every=10)  # (10, 3, D)
    rows = [(f"chain {i}", np.concatenate([start[i : i + 1], means[:, i].cpu().numpy()])) for i in range(len(start[:3]))]
    return _show_rows(rows, shape, "the corrupt–reconstruct Markov chain: a test image, then its mean every 10 steps")


def _png(fig: Figure, path: Path) -> str:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return base64.b64encode(path.read_bytes()).decode("ascii")


def _array(x: Any, n: int) -> np.ndarray:
    """``x`` itself, or a seeded sample of ``n`` rows when it is streamed from storage (:mod:`aekit.store.rows`)."""

    return sample_rows(x, n) if isinstance(x, Rows) else x


def figures(model: Autoencoder, split: Split, rows: list[dict[str, Any]]) -> dict[str, Callable[[], Figure]]:
    """Name → figure builder for everything this run's model has to show."""

    x = _array(split.test.x, 5000)
    shape = _image_shape(model)
    steps = model.input_shape[0] if len(model.input_shape) == 2 else None  # windows (T, C) of a series
    show = x[:N_SHOW]
    codes = encode(model, x[:5000])
    out: dict[str, Callable[[], Figure]] = {}
    if rows:
        out["loss_curves"] = lambda: loss_curves(rows)
    if shape is None and steps is None:  # tabular: each feature's reconstruction against its value
        out["reconstructions"] = lambda: feature_scatter(x[:2000], reconstruct(model, x[:2000]),
                                                         names=split.test.columns, units=split.test.units)
    else:
        out["reconstructions"] = lambda: _show_rows(
            [("original", show), ("reconstruction", reconstruct(model, show))], shape,
            f"test {'images' if shape else 'samples'} and their reconstructions", steps)
    if not isinstance(model.corruption, Identity):
        with seeded(0):  # the same noisy images in every report
            noisy = model.corrupt(torch.from_numpy(show)).numpy()
        out["denoising"] = lambda: _show_rows(
            [("clean", show), ("corrupted", noisy), ("denoised", reconstruct(model, noisy))], shape,
            f"denoising: {model.corruption.name} noise", steps)
        if shape is not None or model.input_size == 2:
            start = show if shape is not None else _array(split.train.x, 20_000)
            out["chain"] = lambda: chain_figure(model, start, shape)
    labels = split.test.y[:5000] if split.test.y is not None else None
    out["code_map"] = lambda: code_map(codes, labels)
    names = {p.name for p in model.penalties}
    constrained = any(isinstance(m, CodeConstraint) for m in model.encoder.modules())
    if names & {"l1", "kl_sparsity"} or constrained:
        out["unit_activity"] = lambda: unit_activity(codes)
    if "contractive" in names:
        def tangents() -> Figure:
            d, s = tangent_directions(model, show[:3], n=5)
            d = 0.5 + 0.5 * d / np.abs(d).max(axis=2, keepdims=True)  # each direction scaled to [0, 1]
            rows_ = [(f"x{i}, σ={', '.join(f'{v:.2g}' for v in s[i])}", np.concatenate([show[i : i + 1], d[i]]))
                     for i in range(len(d))]
            return _show_rows(rows_, shape, "tangent directions: leading right-singular vectors of ∂f/∂x (first: x)")

        out["tangents"] = tangents
    test_series = getattr(split, "series", None)  # a run on windows of one series (aekit train --window)
    if test_series is not None and len(test_series.x) >= model.input_shape[0]:
        def score_track() -> Figure:
            return series_scores(test_series.x, series_errors(model, test_series.x, how="mean"), test_series.names,
                                 test_series.labels, recon=series_reconstruction(model, test_series.x))

        out["score_track"] = score_track
    if model.input_size == 2:
        out["vector_field"] = lambda: field_plot(model, _array(split.train.x, 20_000))
    if model.stochastic:
        def samples() -> Figure:
            with seeded(0):  # the same draws in every report, whatever ran before
                return _show_rows([(f"row {i}", sample(model, N_SHOW).cpu().numpy()) for i in range(3)], shape,
                                  "samples from the prior, decoded")

        out["samples"] = samples
        out["interpolations"] = lambda: _show_rows(
            [(f"{i}→{i + 1}", interpolate(model, torch.from_numpy(show[i]), torch.from_numpy(show[i + 1]), N_SHOW).cpu().numpy())
             for i in range(3)], shape, "interpolations between posterior means")
    return out


def write_report(run_dir: str | Path, split: Split, model: Autoencoder | None = None) -> Path:
    """Write ``report.html`` and one PNG per figure into ``run_dir``; return the HTML path.

    Example
    -------
    >>> from aekit import create, fit, load
    >>> d = load("digits")
    >>> ae = create("undercomplete", d.train.shape, code_size=2)
    >>> _ = fit(ae, d.train.x, epochs=2, run_dir="runs/doc-report", progress=False)
    >>> write_report("runs/doc-report", d).name
    'report.html'
    """

    run = Run(run_dir)
    model = model if model is not None else load_model(run.path)
    rows = run.metrics()
    images = {name: _png(build(), run.file(f"{name}.png")) for name, build in figures(model, split, rows).items()}
    sae_measures, contexts = {}, ""
    if isinstance(model.encoder, SAEEncoder):  # a sparse autoencoder on activations: its own page

        sae_measures, figs, contexts = sae_sections(model, split.test.x)
        images.update({name: _png(fig, run.file(f"{name}.png")) for name, fig in figs.items()})
    config = {"model": model.config, "resolved": {"code_size": model.code_size, "input_shape": model.input_shape}}
    if run.file(Run.TRAIN).is_file():
        config["train"] = run.train_meta()["train"]
    res = run.evaluation()
    metrics = readable({**res, **sae_measures}, model.code_size, model.input_size)
    if rows:
        metrics.update({f"last epoch: {k.replace('_', ' ')}": v for k, v in rows[-1].items()
                        if k.startswith(("train_", "val_"))})
    x = _array(split.test.x, 2000)
    spread = float(x.var(0).sum())
    alerts = warnings_for(res, float(reconstruct(model, x).var(0).sum()) / spread if spread > 0 else None)
    title = f"aekit report: {model.config['preset'] if model.config else 'model'} on {split.test.name}"
    body = [f"<h1>{html.escape(title)}</h1>",
            *[f"<p class=\"warn\">⚠ {html.escape(a)}</p>" for a in alerts], "<h2>metrics</h2>", _table(metrics)]
    for name, b64 in images.items():
        body.append(f"<h2>{name.replace('_', ' ')}</h2><img alt=\"{name}\" src=\"data:image/png;base64,{b64}\">")
    if contexts:
        body.append("<h2>top-activating contexts</h2><p>tokens shaded by the latent's activation; the top token "
                    "boxed; hover for values</p>" + contexts)
    body += ["<details><summary><b>config</b> (the model's and the training options; click to open)</summary>"
             f"<pre>{html.escape(json.dumps(config, indent=2))}</pre></details>"]
    page = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>" + html.escape(title) + "</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}img{max-width:100%}"
            "td,th{padding:2px 10px;text-align:left}tr:nth-child(even){background:#f3f3f3}"
            ".warn{background:#fff3cd;border-left:4px solid #e0a800;padding:6px 10px}</style></head><body>"
            + "\n".join(body) + "</body></html>")
    run.write_text(Run.REPORT, page)
    return run.file(Run.REPORT)


def _table(d: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else html.escape(str(v))

    return "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{fmt(v)}</td></tr>" for k, v in d.items()) + "</table>"
