"""The commands that use a trained run: evaluate, encode, reconstruct, report, compare, presets."""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.table import Table

from .._checks import OneOf, check, integer
from ..evaluation.measures import RATIO, readable, warnings_for
from ..store.atomic import atomic_write
from ..store.files import csv_columns
from ..store.rows import ArrayRows, Rows, open_rows
from ..store.run import Run, lock
from ..store.series import read_series
from ..training.progress import progress
from ._app import (
    MAX_IW,
    ModelFn,
    Plugins,
    _fail,
    _ints,
    _load_split,
    _plugins,
    _run_data,
    _run_data_path,
    _run_model,
    app,
    err,
    friendly,
    out,
    out_file,
    read_like_run,
    run_columns,
    run_meta,
    run_scaler,
)
from ._lazy import lazy_module

# heavy modules (torch), loaded on first use so that `aekit --help` and option checks stay fast
cli_interp = lazy_module("aekit.cli.interp")
core_model = lazy_module("aekit.core.model")
core_tensors = lazy_module("aekit.core.tensors")
evaluation_deploy = lazy_module("aekit.evaluation.deploy")
evaluation_metrics = lazy_module("aekit.evaluation.metrics")
evaluation_series = lazy_module("aekit.evaluation.series")
parts_variational = lazy_module("aekit.parts.variational")
presets__registry = lazy_module("aekit.presets._registry")
report_compare = lazy_module("aekit.report.compare")
report_html = lazy_module("aekit.report.html")
training_evaluate = lazy_module("aekit.training.evaluate")
training_loop = lazy_module("aekit.training.loop")


def _report(model, split, rows: list[tuple[str, str]] | None = None, iw_samples: int = 1000,
            known: dict | None = None) -> dict[str, float]:
    """Test-set reconstruction error next to PCA's at the same code size (and the ELBO and an
    importance-weighted NLL for a stochastic model); printed and returned."""
    pca_error = evaluation_metrics.pca_error
    pca_error_stream = evaluation_metrics.pca_error_stream
    regularised_metrics = evaluation_metrics.regularised_metrics
    sample_rows = evaluation_metrics.sample_rows
    squared_error_stream = evaluation_metrics.squared_error_stream
    as_tensor = core_tensors.as_tensor
    evaluate = training_evaluate.evaluate
    is_sae = cli_interp.is_sae

    x_te = split.test.x
    streamed = isinstance(x_te, Rows)  # on disk: every measure streams, or uses a sample where it says so
    res = {"test_loss": evaluate(model, x_te if streamed else as_tensor(x_te, model, "test data"))["loss"]}
    if not np.isfinite(res["test_loss"]):
        raise FloatingPointError(f"the model's test loss is {res['test_loss']}: its weights are finite but its outputs "
                                 "are not (training diverged); it is not usable — lower lr or set grad_clip")
    # chunk by chunk for an array too: reconstructing the whole test set at once held a second copy of it
    res["test_squared_error"] = squared_error_stream(model, x_te if streamed else ArrayRows(x_te))
    if model.code_size < model.input_size:
        res["pca_squared_error"] = pca_error_stream(split.train.x, x_te, model.code_size) if streamed else \
            pca_error(split.train.x, x_te, model.code_size)[0]
    note = " (streamed; PCA fitted on ≤20,000 training rows, sample measures on ≤10,000 test rows)" if streamed else ""
    x_te = sample_rows(x_te, 10_000) if streamed else x_te
    t = Table(title=f"test set: {len(split.test)} samples of {split.test.name}{note}")
    t.add_column("measure")
    t.add_column("value", justify="right")
    for k, v in rows or []:
        t.add_row(k, v)
    if model.stochastic:
        res.update(_stochastic_metrics(model, x_te, iw_samples, known))
    elif model.is_regularised and not is_sae(model):  # an SAE's sparsity measures come in ``rows``
        res.update(regularised_metrics(model, x_te))
    for name, v in readable(res, model.code_size, model.input_size).items():
        t.add_row(name, f"{v:.2f}" if name.startswith(("test ELBO", "  of which", "test NLL")) else
                  f"{v:.3f}" if name == RATIO else f"{v:.4f}")
    for w in warnings_for(res):
        warnings.warn(w)
    out.print(t)
    return res


def _stochastic_metrics(model, x: np.ndarray, k: int, known: dict | None = None) -> dict[str, float]:
    """Test ELBO and the k-sample importance-weighted NLL, in nats per sample: ``known`` (the run's own
    evaluation.json, computed after training on the same data) when it holds them for this k, else computed in
    chunks of test rows behind their own progress (k = 1000 takes minutes)."""
    import torch

    likelihood_bounds = evaluation_metrics.likelihood_bounds
    seeded = core_model.seeded
    nonbinary_bernoulli = parts_variational.nonbinary_bernoulli

    if known and known.get("iw_samples") == k and {"elbo", "kl", "nll"} <= set(known):
        out.print(f"ELBO and NLL (k={k}) as computed after training (the run's evaluation.json)", markup=False)
        return {key: known[key] for key in ("elbo", "kl", "nll", "iw_samples")}

    grey = nonbinary_bernoulli(model, torch.from_numpy(x))
    if grey:
        warnings.warn("the test data is not binary, so the Bernoulli ELBO and NLL below are cross-entropies, not "
                      "log-likelihoods, and not comparable with published numbers; train with --binarize for those")
    chunks = np.array_split(np.arange(len(x)), max(1, -(-len(x) // NLL_CHUNK)))
    parts = []
    with seeded(0, next(model.parameters()).device), progress(True, len(chunks)) as bar:  # the same estimate each time
        task = bar.add_task("nll", total=len(chunks), completed=0, loss="")
        for i, idx in enumerate(chunks):
            parts.append((len(idx), likelihood_bounds(model, x[idx], k, allow_nonbinary=grey)))
            bar.update(task, completed=i + 1, description=f"test NLL, k={k} importance samples", loss="")
    return {**{key: sum(n * r[key] for n, r in parts) / len(x) for key in parts[0][1]}, "iw_samples": k}


NLL_CHUNK = 250  # test rows per step of the NLL estimate (its progress)


@app.command()
@friendly
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `aekit train`.")],
    data: Annotated[Optional[str], typer.Option(help="Evaluate on this data instead of the run's.")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Directory of IDX files for --data.")] = None,
    binarize: Annotated[bool, typer.Option(help="Stochastically binarise --data (seeded), for a VAE's likelihood.")] = False,
    iw_samples: Annotated[int, typer.Option(help="Importance samples k of the NLL estimate (stochastic models).")] = 1000,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
    lm: Annotated[Optional[Path], typer.Option(help="SAE runs: the model the activations came from (a "
                                               "save_pretrained directory), for the CE loss recovered.")] = None,
    contexts: Annotated[int, typer.Option(help="Contexts of the capture scored with --lm.")] = 64,
    plugin: Plugins = None,
    model_fn: ModelFn = None,
) -> None:
    """Evaluate a trained model on the test split of its data (or of --data); an SAE also by FVU, L0, dead and
    dense latents, and with --lm by the CE loss recovered when spliced into the model."""
    resolve_device = training_loop.resolve_device
    ce_rows = cli_interp.ce_rows
    is_sae = cli_interp.is_sae
    sae_rows = cli_interp.sae_rows

    _plugins(plugin)
    integer(iw_samples, "--iw-samples", high=MAX_IW)
    integer(contexts, "--contexts")
    dev = resolve_device(device)
    model = _run_model(run_dir, dev, model_fn)
    if lm is not None and not is_sae(model):
        _fail("--lm applies to sparse autoencoders on activations (the sae-* presets)")
    split = _run_data(run_dir, data, data_dir, binarize)
    extra: list[tuple[str, str]] = []
    if is_sae(model):
        _, extra = sae_rows(model, split.test.x)
        if lm is not None:
            extra += ce_rows(model, data or _run_data_path(run_dir), lm, contexts, str(dev))[1]
    _report(model, split, extra, iw_samples=iw_samples, known=_evaluation_of(run_dir) if data is None else None)


def _evaluation_of(run_dir: Path) -> dict | None:
    """The run's evaluation.json if it is newer than its model (so it measured these weights), else None."""

    run = Run(run_dir)
    ev, model = run.file(Run.EVALUATION), run.file(Run.MODEL)
    if not ev.is_file() or not model.is_file() or ev.stat().st_mtime < model.stat().st_mtime:
        return None
    return run.evaluation()


def _apply(run_dir: Path, input_path: Path, out_path: Path, device: str, what: str, plugin: list[str] | None,
           model_fn: str | None) -> None:
    encode = evaluation_metrics.encode
    reconstruct = evaluation_metrics.reconstruct
    as_tensor = core_tensors.as_tensor
    resolve_device = training_loop.resolve_device

    _plugins(plugin)
    out_file(out_path, (".npy", ".csv"), source=input_path)
    model = _run_model(run_dir, resolve_device(device), model_fn)
    scaler = run_scaler(run_dir)

    def fn(model, x):  # in the units the run was trained in (standardised), answered in the data's own
        if scaler is None:
            return (encode if what == "codes" else reconstruct)(model, x)
        z = (x - scaler[0]) / scaler[1]
        return encode(model, z) if what == "codes" else reconstruct(model, z) * scaler[1] + scaler[0]

    if input_path.suffix == ".npy" or input_path.is_dir():  # streamed: memory bounded by a chunk, not the file

        rows = open_rows(input_path)
        if rows.n == 0:
            _fail(f"{input_path} is empty (0 samples)")
        if math.prod(rows.sample_shape) != model.input_size:
            _fail(f"{input_path} has {math.prod(rows.sample_shape)} features per sample but the model expects "
                  f"{model.input_size}")
        n = rows.n

        def outputs():
            for _, x in rows.chunks():
                yield np.ascontiguousarray(fn(model, x), dtype="<f4")
    else:
        x, _, _ = read_like_run(input_path, run_dir)
        n = len(x)

        def outputs():
            yield np.ascontiguousarray(fn(model, as_tensor(x, model, str(input_path)).numpy()), dtype="<f4")
    shape = (n, model.code_size if what == "codes" else model.input_size)
    header = [f"{'h' if what == 'codes' else 'x'}{j}" for j in range(shape[1])]
    if what != "codes" and input_path.suffix == ".csv":  # reconstructions keep the input's column names

        names = csv_columns(input_path, *run_columns(run_dir))
        header = names if names is not None and len(names) == shape[1] else header

    def write(tmp: str) -> None:
        if out_path.suffix == ".csv":  # a header (h0… for codes; the input's names or x0… for reconstructions)
            with open(tmp, "w") as f:
                f.write(",".join(header) + "\n")
                for y in outputs():
                    np.savetxt(f, y, delimiter=",", fmt="%.7g")
            return
        with open(tmp, "wb") as f:  # the .npy header first (its shape is known), then the rows as they come
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
            for y in outputs():
                f.write(y.tobytes())

    atomic_write(out_path, write)
    out.print(f"wrote {what} {shape} to {out_path}")


@app.command()
@friendly
def encode(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    input: Annotated[Path, typer.Argument(help="Samples: .npy, .npz or .csv.")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the codes (.npy, or .csv with a header h0, h1, …).")] = Path("codes.npy"),
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
    plugin: Plugins = None,
    model_fn: ModelFn = None,
) -> None:
    """Write the codes h = f(x) of INPUT as a .npy array (N, K)."""
    _apply(run_dir, input, out_path, device, "codes", plugin, model_fn)


@app.command()
@friendly
def reconstruct(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    input: Annotated[Path, typer.Argument(help="Samples: .npy, .npz or .csv.")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the reconstructions (.npy, or .csv with a header x0, x1, …).")] = Path("recon.npy"),
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
    plugin: Plugins = None,
    model_fn: ModelFn = None,
) -> None:
    """Write the reconstructions of INPUT as a .npy array (N, D)."""
    _apply(run_dir, input, out_path, device, "reconstructions", plugin, model_fn)


@app.command("export")
@friendly
def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    out_arg: Annotated[Optional[Path], typer.Argument(help="The file to write, as in earlier versions: give --out.", show_default=False)] = None,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="The file to write: .onnx (ONNX) or .pt2 (torch.export).")] = None,
    part: Annotated[str, typer.Option(help="encoder (x → codes) or scorer (x → anomaly score, as `aekit score`).")] = "encoder",
    check_data: Annotated[Optional[Path], typer.Option("--check-data", help="Rows to check the exported file on (.npy, .npz, .csv); random rows in the training scale otherwise.")] = None,
    plugin: Plugins = None,
    model_fn: ModelFn = None,
) -> None:
    """Export the run's encoder or anomaly scorer as one graph for deployment, its standardisation inside (it
    reads data in its own units, like `aekit encode` and `aekit score`), with a dynamic batch axis; then run the
    written file and check that it gives the model's outputs."""
    PARTS = evaluation_deploy.PARTS
    export_model = evaluation_deploy.export_model

    _plugins(plugin)
    check(part, "--part", OneOf(*PARTS))
    if (out_arg is None) == (out_path is None):
        _fail("name the file to write once: aekit export RUN --out FILE.onnx (or .pt2)")
    out_path = out_file(out_path or out_arg, (".onnx", ".pt2"), bare=False)  # the suffix picks the format
    model = _run_model(run_dir, "cpu", model_fn)
    meta = run_meta(run_dir)
    windows = meta.get("window") is not None
    scaler = (meta["center"], meta["scale"]) if windows else run_scaler(run_dir)
    example = None
    if check_data is not None and windows:  # a series: its windows, every window length apart
        cut = evaluation_series.windows

        example = cut(read_series(check_data, meta.get("drop_columns") or ()).x.astype(np.float32), meta["window"], meta["window"])[0][:256]
    elif check_data is not None:
        example = read_like_run(check_data, run_dir)[0][:256]
    try:
        diff = export_model(model, out_path, part, *(scaler or (None, None)), example=example,
                            windows=windows and part == "scorer")
    except ImportError as e:
        _fail(str(e))
    shape = ", ".join(str(s) for s in (model.input_shape if len(model.input_shape) == 2 else (model.input_size,)))
    output = f"codes (batch, {model.code_size})" if part == "encoder" else "scores (batch,)"
    out.print(f"wrote {out_path}: the {part} of {run_dir}, x (batch, {shape}) in the data's units"
              f"{' (standardised inside, as in training)' if scaler else ''} → {output}; checked against the model: "
              f"largest difference {diff:.2g}", highlight=False, soft_wrap=True)


@app.command("report")
@friendly
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `aekit train` or `fit(run_dir=...)`.")],
    data: Annotated[Optional[str], typer.Option(help="Its data, for a run trained from Python (no data.json).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Directory of IDX files for --data.")] = None,
    binarize: Annotated[bool, typer.Option(help="Stochastically binarise --data (seeded).")] = False,
    plugin: Plugins = None,
    model_fn: ModelFn = None,
) -> None:
    """Write RUN_DIR/report.html (images embedded) and one PNG per figure."""
    write_report = report_html.write_report

    _plugins(plugin)
    model = _run_model(run_dir, "cpu", model_fn)
    if data is None and not Run(run_dir).file(Run.DATA).is_file():
        _fail(f"{run_dir} has no {Run.DATA} (trained from Python): pass its data with --data")
    split = _run_data(run_dir, data, data_dir, binarize)
    with Run(run_dir).writing():  # it writes into the run: not while a training process does
        out.print(f"wrote {write_report(run_dir, split, model)}")


@app.command()
@friendly
def compare(
    data: Annotated[str, typer.Option(help="digits, mnist, fashion-mnist, a directory of IDX files or a data file.")] = "digits",
    data_dir: Annotated[Optional[Path], typer.Option(help="Read mnist/fashion-mnist IDX files from here.")] = None,
    presets: Annotated[str, typer.Option(help="Comma-separated presets to compare.")] = "linear,undercomplete",
    code_sizes: Annotated[str, typer.Option(help="Comma-separated code sizes.")] = "2,10",
    epochs: Annotated[int, typer.Option(help="Epochs per autoencoder (0: each preset's own).")] = 0,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Output directory (default: runs/compare-DATA-TIME).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Allow --out to name a directory that already holds a comparison.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
    plugin: Plugins = None,
) -> None:
    """Train each preset at each code size, and PCA; write compare.md, compare.csv and compare.png."""
    run_compare = report_compare.compare

    _plugins(plugin)
    names = [p.strip() for p in presets.split(",") if p.strip()]
    sizes = _ints(code_sizes, "--code-sizes")
    if not names or not sizes:
        _fail("--presets and --code-sizes must each name at least one value")
    split = _load_split(data, data_dir)
    run = out_dir or Path("runs") / f"compare-{split.train.name}-{time.strftime('%Y%m%d-%H%M%S')}"

    with lock(run):
        if (run / "compare.md").exists() and not overwrite:
            _fail(f"{run} already holds a comparison; pass --overwrite to replace it")
        run_compare(split, names, sizes, run, epochs or None, progress=not quiet,
                    log=lambda m: err.print(m, markup=False, highlight=False))
    out.print((run / "compare.md").read_text(), markup=False, highlight=False, soft_wrap=True)
    out.print(f"wrote {run / 'compare.md'}, {run / 'compare.csv'}, {run / 'compare.png'}")


@app.command()
@friendly
def presets(plugin: Plugins = None) -> None:
    """List the registered presets (aekit's, installed plugins' and --plugin modules'), their options
    (flags of `aekit train`) and training defaults."""
    PRESETS = presets__registry.PRESETS
    REQUIRED = presets__registry.REQUIRED

    _plugins(plugin)
    t = Table(title="aekit presets")
    for c in ("preset", "what it is", "options (defaults)", "training defaults"):
        t.add_column(c)
    for p in PRESETS.values():
        opts = ", ".join(f"{k}={'<required>' if v is REQUIRED else v}" for k, v in p.options().items())
        t.add_row(p.name, p.summary, opts, ", ".join(f"{k}={v}" for k, v in p.train_defaults.items()))
    out.print(t)


