"""The ``aekit`` command: train, evaluate, encode, reconstruct, report, compare, presets.

Bad input ends with one line ``error: …`` on stderr and exit status 2.
"""

from __future__ import annotations

import functools
import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="The autoencoder family: train, evaluate and use autoencoders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain one-line usage errors
)
out = Console()
err = Console(stderr=True)


def _fail(msg: str) -> None:
    err.print(f"error: {msg}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def friendly(fn: Callable) -> Callable:
    """Turn ``ValueError`` (our validation errors) into a one-line message and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always")
                warnings.showwarning = lambda m, *a, **k: err.print(f"warning: {m}", markup=False, soft_wrap=True)
                return fn(*args, **kwargs)
        except (ValueError, FloatingPointError) as e:
            _fail(str(e))

    return wrapper


def _ints(text: str | None, what: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        _fail(f"{what} must be comma-separated integers, got {text!r}")


def _load_split(data: str, data_dir: Optional[Path], seed: int = 0, binarize: bool = False):
    from .data import load

    return load(data, data_dir=data_dir, seed=seed, binarize=binarize)


def _report(model, split, rows: list[tuple[str, str]] | None = None, iw_samples: int = 1000) -> dict[str, float]:
    """Test-set reconstruction error next to PCA's at the same code size (and the ELBO and an
    importance-weighted NLL for a stochastic model); printed and returned."""
    from .metrics import pca_error, reconstruct, regularised_metrics, squared_error
    from .train import as_tensor, evaluate

    x_te = split.test.x
    res = {"test_loss": evaluate(model, as_tensor(x_te, model, "test data"))["loss"]}
    res["test_squared_error"] = squared_error(x_te, reconstruct(model, x_te))
    if model.code_size < model.input_size:
        res["pca_squared_error"], _ = pca_error(split.train.x, x_te, model.code_size)
    t = Table(title=f"test set: {len(x_te)} samples of {split.test.name}")
    t.add_column("measure")
    t.add_column("value", justify="right")
    for k, v in rows or []:
        t.add_row(k, v)
    t.add_row("test loss (the training objective: −log p per sample + penalties)", f"{res['test_loss']:.4f}")
    t.add_row(f"squared error per sample, aekit (summed over {model.input_size} dims)", f"{res['test_squared_error']:.4f}")
    if "pca_squared_error" in res:
        t.add_row(f"squared error per sample, PCA-{model.code_size}", f"{res['pca_squared_error']:.4f}")
        t.add_row("aekit / PCA", f"{res['test_squared_error'] / res['pca_squared_error']:.3f}")
    if model.stochastic:
        res.update(_stochastic_metrics(model, x_te, iw_samples, t))
    elif model.is_regularised:
        res.update(regularised_metrics(model, x_te))
    for key, label in _LABELS.items():
        if key in res:
            t.add_row(label, f"{res[key]:.4f}")
    out.print(t)
    return res


def _stochastic_metrics(model, x: np.ndarray, k: int, table: Table) -> dict[str, float]:
    """Test ELBO and the k-sample importance-weighted NLL, in nats per sample."""
    import torch

    from .metrics import likelihood_bounds
    from .variational import nonbinary_bernoulli

    grey = nonbinary_bernoulli(model, torch.from_numpy(x))
    if grey:
        warnings.warn("the test data is not binary, so the Bernoulli ELBO and NLL below are cross-entropies, not "
                      "log-likelihoods, and not comparable with published numbers; train with --binarize for those")
    torch.manual_seed(0)  # the same estimate at every evaluation
    res = {**likelihood_bounds(model, x, k, allow_nonbinary=grey), "iw_samples": k}
    table.add_row("test ELBO (nats per sample; a lower bound on log p(x))", f"{res['elbo']:.2f}")
    table.add_row("  of which KL(q(h|x) ‖ p(h))", f"{res['kl']:.2f}")
    table.add_row(f"test NLL, −log p(x) estimated with k={k} importance samples (nats)", f"{res['nll']:.2f}")
    return res


_LABELS = {
    "psnr_noisy": "PSNR noisy test images vs clean (dB)",
    "psnr_denoised": "PSNR denoised vs clean (dB)",
    "l0": "mean active code units per sample (|h| > 0.01)",
    "dead_fraction": "fraction of code units never active on the test set",
}


@app.command()
@friendly
def train(
    preset: Annotated[Optional[str], typer.Option(help="Recipe to train; see `aekit presets`.  [default: undercomplete]")] = None,
    data: Annotated[Optional[str], typer.Option(help="digits, mnist, fashion-mnist, a directory of IDX files, or a .npy/.npz/.csv file.  [default: digits]")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Read mnist/fashion-mnist IDX files from here instead of the download cache.")] = None,
    binarize: Annotated[Optional[bool], typer.Option("--binarize", help="Stochastically binarise the data once (seeded): binarised MNIST for VAE likelihoods.")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Run directory (default: runs/PRESET-DATA-TIME).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Allow --out to name a directory that already holds a run.")] = False,
    resume: Annotated[Optional[Path], typer.Option(help="Continue the run in this directory exactly where it stopped (other options but --device, --max-time and --quiet are taken from the run).")] = None,
    code_size: Annotated[Optional[int], typer.Option(help="Code units K.")] = None,
    hidden: Annotated[Optional[str], typer.Option(help="Hidden layer sizes, e.g. 512,256.")] = None,
    channels: Annotated[Optional[str], typer.Option(help="Conv channels, e.g. 32,64 (conv preset).")] = None,
    activation: Annotated[Optional[str], typer.Option(help="Hidden activation: relu, gelu, sigmoid, tanh, ...")] = None,
    likelihood: Annotated[Optional[str], typer.Option(help="bernoulli (data in [0,1]) or gaussian.")] = None,
    sigma: Annotated[Optional[float], typer.Option(help="Standard deviation of the Gaussian likelihood.")] = None,
    tied: Annotated[Optional[bool], typer.Option("--tied/--untied", help="Tie decoder weights to the encoder's.")] = None,
    penalty: Annotated[Optional[str], typer.Option(help="sparse: l1 or kl.")] = None,
    lam: Annotated[Optional[float], typer.Option(help="sparse/contractive: penalty weight λ (β for KL).")] = None,
    rho: Annotated[Optional[float], typer.Option(help="sparse kl: target mean activation ρ in (0, 1).")] = None,
    rho_momentum: Annotated[Optional[float], typer.Option(help="sparse kl: running-mean momentum for ρ̂.")] = None,
    k: Annotated[Optional[int], typer.Option(help="ksparse: units kept per sample.")] = None,
    alpha: Annotated[Optional[float], typer.Option(help="ksparse: keep alpha·k units in encoded features (reconstruction keeps k).")] = None,
    k_start: Annotated[Optional[int], typer.Option(help="ksparse: anneal k down from this value...")] = None,
    anneal_steps: Annotated[Optional[int], typer.Option(help="ksparse: ...over this many batches.")] = None,
    aux_k: Annotated[Optional[int], typer.Option(help="ksparse: AuxK dead-unit loss with this many units (0: off).")] = None,
    aux_coef: Annotated[Optional[float], typer.Option(help="ksparse: AuxK weight.")] = None,
    dead_after: Annotated[Optional[int], typer.Option(help="ksparse: a unit not firing for this many training samples is dead (AuxK revives it).")] = None,
    noise: Annotated[Optional[str], typer.Option(help="denoising: masking, gaussian, salt_pepper, or e.g. masking:0.3+gaussian:0.1.")] = None,
    level: Annotated[Optional[float], typer.Option(help="denoising: noise level (fraction ν or σ).")] = None,
    method: Annotated[Optional[str], typer.Option(help="contractive: auto, closed, stochastic or exact.")] = None,
    projections: Annotated[Optional[int], typer.Option(help="contractive: random projections of the stochastic estimate.")] = None,
    beta: Annotated[Optional[float], typer.Option(help="vae: weight β of the KL term.")] = None,
    free_bits: Annotated[Optional[float], typer.Option(help="vae: KL floor in nats per code unit (0: off).")] = None,
    kl_warmup_epochs: Annotated[Optional[float], typer.Option(help="vae: raise the KL weight from 0 to 1 over this many epochs.")] = None,
    iw_samples: Annotated[int, typer.Option(help="vae: importance samples k of the test NLL estimate.")] = 1000,
    epochs: Annotated[Optional[int], typer.Option(help="Passes over the training data.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Samples per step.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate.")] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="adam, adamw or sgd.")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="Weight decay.")] = None,
    momentum: Annotated[Optional[float], typer.Option(help="SGD momentum.")] = None,
    schedule: Annotated[Optional[str], typer.Option(help="constant, cosine or onecycle.")] = None,
    warmup_epochs: Annotated[Optional[float], typer.Option(help="Linear warm-up length in epochs.")] = None,
    val_fraction: Annotated[Optional[float], typer.Option(help="Held-out share of the training data.")] = None,
    patience: Annotated[Optional[int], typer.Option(help="Early-stopping patience in epochs.")] = None,
    min_delta: Annotated[Optional[float], typer.Option(help="Smallest validation improvement that counts.")] = None,
    grad_clip: Annotated[Optional[float], typer.Option(help="Clip the gradient norm to this.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for initialisation, split and shuffling.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
    precision: Annotated[Optional[str], typer.Option(help="fp32 or bf16 (autocast).")] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option(help="Save trainer state every N epochs.")] = None,
    max_time: Annotated[Optional[float], typer.Option(help="Stop after the epoch that passes this many seconds.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    report: Annotated[bool, typer.Option("--report", help="Write report.html and its figures into the run at the end.")] = False,
) -> None:
    """Train an autoencoder; print its test reconstruction error next to PCA's."""
    import torch

    from .presets import create, from_config
    from .optim import TrainConfig, config_for

    options = dict(code_size=code_size, hidden=_ints(hidden, "--hidden"), channels=_ints(channels, "--channels"),
                   activation=activation, likelihood=likelihood, sigma=sigma, tied=tied, penalty=penalty, lam=lam,
                   rho=rho, rho_momentum=rho_momentum, k=k, alpha=alpha, k_start=k_start, anneal_steps=anneal_steps,
                   aux_k=aux_k, aux_coef=aux_coef, dead_after=dead_after, noise=noise, level=level, method=method,
                   projections=projections, beta=beta, free_bits=free_bits)
    train_opts = dict(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
                      momentum=momentum, schedule=schedule, warmup_epochs=warmup_epochs, val_fraction=val_fraction,
                      patience=patience, min_delta=min_delta, grad_clip=grad_clip, precision=precision,
                      checkpoint_every=checkpoint_every, max_time=max_time, kl_warmup_epochs=kl_warmup_epochs)
    from ._checks import integer

    integer(iw_samples, "--iw-samples")  # checked before training, not after it
    if resume is not None:
        given = [k for k, v in {**options, **train_opts, "preset": preset, "data": data, "data_dir": data_dir,
                                "binarize": binarize, "out": out_dir}.items() if v is not None and k != "max_time"]
        if given:
            _fail(f"--resume continues a run with its own options; drop {', '.join('--' + k.replace('_', '-') for k in given)}")
        meta = _read_json(resume / "train.json")
        split = _split_of_run(resume)
        model = from_config(meta["model"])
        # max_time limits this invocation only: a run stopped by it continues to its last epoch
        cfg = TrainConfig.from_dict({**meta["train"], "device": device, "progress": not quiet, "max_time": max_time})
        _fit_and_report(model, split, cfg, resume, resume=True, iw_samples=iw_samples, html=report)
        return

    preset, data, binarize = preset or "undercomplete", data or "digits", bool(binarize)
    split = _load_split(data, data_dir, seed, binarize)
    torch.manual_seed(seed)
    model = create(preset, split.train.shape, **{k: v for k, v in options.items() if v is not None})
    cfg = config_for(model, **{k: v for k, v in train_opts.items() if v is not None},
                     seed=seed, device=device, progress=not quiet).validate()
    run = out_dir or Path("runs") / f"{preset}-{split.train.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if (run / "model.json").exists() or (run / "trainer.safetensors").exists():
        if not overwrite:
            _fail(f"{run} already holds a run; pass --overwrite to replace it or --resume {run} to continue it")
    run.mkdir(parents=True, exist_ok=True)
    from .checkpoint import write_json

    write_json(run / "data.json", {"data": data, "data_dir": str(data_dir) if data_dir else None, "seed": seed,
                                   "binarize": binarize})
    n_params = sum(p.numel() for p in model.parameters())
    err.print(f"{preset} on {split.train.name}: {len(split.train)} train / {len(split.test)} test samples, "
              f"input {model.input_size}, code {model.code_size}, {n_params:,} parameters → {run}")
    _fit_and_report(model, split, cfg, run, iw_samples=iw_samples, html=report)


def _fit_and_report(model, split, cfg, run: Path, resume: bool = False, iw_samples: int = 1000,
                    html: bool = False) -> None:
    from .checkpoint import write_json
    from .train import fit

    t0 = time.perf_counter()
    try:
        fit(model, split.train.x, cfg, run_dir=run, resume=resume)
    except KeyboardInterrupt:
        err.print(f"interrupted: continue with `aekit train --resume {run}` (from its last checkpoint)", markup=False)
        raise typer.Exit(130) from None
    res = _report(model, split, [("train time", f"{time.perf_counter() - t0:.1f} s")], iw_samples)
    write_json(run / "evaluation.json", res)
    if html:
        from .report import write_report

        out.print(f"report: {write_report(run, split, model)}")
    out.print(f"saved to {run}")


def _read_json(path: Path) -> dict:
    if not path.is_file():
        _fail(f"file not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        _fail(f"corrupted file {path}: {e}")


def _opt_path(p: str | None) -> Path | None:
    return Path(p) if p else None


def _run_data(run_dir: Path, data: str | None, data_dir: Path | None, binarize: bool = False):
    if data is None:
        return _split_of_run(run_dir)
    return _load_split(data, data_dir, binarize=binarize)


def _split_of_run(run_dir: Path):
    """The data a run was trained on, as its data.json records it."""
    meta = _read_json(run_dir / "data.json")
    return _load_split(meta["data"], _opt_path(meta.get("data_dir")), meta.get("seed", 0), meta.get("binarize", False))


@app.command()
@friendly
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `aekit train`.")],
    data: Annotated[Optional[str], typer.Option(help="Evaluate on this data instead of the run's.")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Directory of IDX files for --data.")] = None,
    binarize: Annotated[bool, typer.Option(help="Stochastically binarise --data (seeded), for a VAE's likelihood.")] = False,
    iw_samples: Annotated[int, typer.Option(help="Importance samples k of the NLL estimate (stochastic models).")] = 1000,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
) -> None:
    """Evaluate a trained model on the test split of its data (or of --data)."""
    from .checkpoint import load_model
    from .train import resolve_device

    model = load_model(run_dir, resolve_device(device))
    split = _run_data(run_dir, data, data_dir, binarize)
    _report(model, split, iw_samples=iw_samples)


def _apply(run_dir: Path, input_path: Path, out_path: Path, device: str, what: str) -> None:
    from .checkpoint import load_model
    from .data import read_array
    from .metrics import encode, reconstruct
    from .train import as_tensor, resolve_device

    model = load_model(run_dir, resolve_device(device))
    x, _, _ = read_array(input_path)
    x = as_tensor(x, model, str(input_path)).numpy()
    y = encode(model, x) if what == "codes" else reconstruct(model, x)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    np.save(out_path, y)
    out.print(f"wrote {what} {y.shape} to {out_path}")


@app.command()
@friendly
def encode(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    input: Annotated[Path, typer.Argument(help="Samples: .npy, .npz or .csv.")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the codes (.npy).")] = Path("codes.npy"),
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
) -> None:
    """Write the codes h = f(x) of INPUT as a .npy array (N, K)."""
    _apply(run_dir, input, out_path, device, "codes")


@app.command()
@friendly
def reconstruct(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    input: Annotated[Path, typer.Argument(help="Samples: .npy, .npz or .csv.")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the reconstructions (.npy).")] = Path("recon.npy"),
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
) -> None:
    """Write the reconstructions of INPUT as a .npy array (N, D)."""
    _apply(run_dir, input, out_path, device, "reconstructions")


@app.command("report")
@friendly
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `aekit train`.")],
) -> None:
    """Write RUN_DIR/report.html (images embedded) and one PNG per figure."""
    from .checkpoint import load_model
    from .report import write_report

    model = load_model(run_dir)
    out.print(f"wrote {write_report(run_dir, _split_of_run(run_dir), model)}")


@app.command()
@friendly
def compare(
    data: Annotated[str, typer.Option(help="digits, mnist, fashion-mnist, a directory of IDX files or a data file.")] = "digits",
    data_dir: Annotated[Optional[Path], typer.Option(help="Read mnist/fashion-mnist IDX files from here.")] = None,
    presets: Annotated[str, typer.Option(help="Comma-separated presets to compare.")] = "linear,undercomplete",
    code_sizes: Annotated[str, typer.Option(help="Comma-separated code sizes.")] = "2,10",
    epochs: Annotated[int, typer.Option(help="Epochs per autoencoder (0: each preset's default).")] = 10,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Output directory (default: runs/compare-DATA-TIME).")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Train each preset at each code size, and PCA; write compare.md, compare.csv and compare.png."""
    from .report import compare as run_compare

    names = [p.strip() for p in presets.split(",") if p.strip()]
    sizes = _ints(code_sizes, "--code-sizes")
    if not names or not sizes:
        _fail("--presets and --code-sizes must each name at least one value")
    split = _load_split(data, data_dir)
    run = out_dir or Path("runs") / f"compare-{split.train.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_compare(split, names, sizes, run, epochs or None, progress=not quiet,
                log=lambda m: err.print(m, markup=False, highlight=False))
    out.print((run / "compare.md").read_text(), markup=False, highlight=False, soft_wrap=True)
    out.print(f"wrote {run / 'compare.md'}, {run / 'compare.csv'}, {run / 'compare.png'}")


@app.command()
def presets() -> None:
    """List the registered presets, their options and training defaults."""
    from .presets import PRESETS

    t = Table(title="aekit presets")
    for c in ("preset", "what it is", "options (defaults)", "training defaults"):
        t.add_column(c)
    for p in PRESETS.values():
        opts = ", ".join(f"{k}={v}" for k, v in p.options().items())
        t.add_row(p.name, p.summary, opts, ", ".join(f"{k}={v}" for k, v in p.train_defaults.items()))
    out.print(t)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
