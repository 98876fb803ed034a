"""``aekit train``: start a run, or resume one exactly where it stopped.

A run directory has one writer at a time (its lock; see :mod:`aekit.run`). SIGTERM, SIGINT and
SIGUSR1 save the full trainer state at the next step and exit with status 128 + the signal's
number, with a line that says how to resume.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import MAX_IW, _fail, _ints, _load_split, _read_json, _split_of_run, app, err, friendly, out

# What a run directory holds; --overwrite removes these first, so no file of the old run survives
RUN_FILES = ("model.safetensors", "model.json", "trainer.safetensors", "train.json", "data.json", "metrics.jsonl",
             "evaluation.json", "report.html", "*.png")
RESUME_OPTIONS = ("max_time", "checkpoint_every", "checkpoint_steps", "checkpoint_minutes", "nan_policy")


@app.command()
@friendly
def train(
    preset: Annotated[Optional[str], typer.Option(help="Recipe to train; see `aekit presets`.  [default: undercomplete]")] = None,
    data: Annotated[Optional[str], typer.Option(help="digits, mnist, fashion-mnist, a directory of IDX files, or a .npy/.npz/.csv file.  [default: digits]")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Read mnist/fashion-mnist IDX files from here instead of the download cache.")] = None,
    binarize: Annotated[Optional[bool], typer.Option("--binarize", help="Stochastically binarise the data once (seeded): binarised MNIST for VAE likelihoods.")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Run directory (default: runs/PRESET-DATA-TIME).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Allow --out to name a directory that already holds a run.")] = False,
    resume: Annotated[Optional[Path], typer.Option(help="Continue the run in this directory exactly where it stopped (other options but --device, --max-time, --nan-policy, --checkpoint-* and --quiet are taken from the run).")] = None,
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
    checkpoint_steps: Annotated[Optional[int], typer.Option(help="Also save it every N optimiser steps, mid-epoch (0: off).")] = None,
    checkpoint_minutes: Annotated[Optional[float], typer.Option(help="Also save it every M minutes of training (0: off).  [default: 15]")] = None,
    nan_policy: Annotated[Optional[str], typer.Option(help="On a non-finite loss: raise (stop at that step) or skip (drop the batch).")] = None,
    max_time: Annotated[Optional[float], typer.Option(help="Stop after the epoch that passes this many seconds.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    report: Annotated[bool, typer.Option("--report", help="Write report.html and its figures into the run at the end.")] = False,
) -> None:
    """Train an autoencoder; print its test reconstruction error next to PCA's."""
    from .._checks import integer
    from ..run import lock

    options = dict(code_size=code_size, hidden=_ints(hidden, "--hidden"), channels=_ints(channels, "--channels"),
                   activation=activation, likelihood=likelihood, sigma=sigma, tied=tied, penalty=penalty, lam=lam,
                   rho=rho, rho_momentum=rho_momentum, k=k, alpha=alpha, k_start=k_start, anneal_steps=anneal_steps,
                   aux_k=aux_k, aux_coef=aux_coef, dead_after=dead_after, noise=noise, level=level, method=method,
                   projections=projections, beta=beta, free_bits=free_bits)
    train_opts = dict(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
                      momentum=momentum, schedule=schedule, warmup_epochs=warmup_epochs, val_fraction=val_fraction,
                      patience=patience, min_delta=min_delta, grad_clip=grad_clip, precision=precision,
                      checkpoint_every=checkpoint_every, checkpoint_steps=checkpoint_steps,
                      checkpoint_minutes=checkpoint_minutes, nan_policy=nan_policy, max_time=max_time,
                      kl_warmup_epochs=kl_warmup_epochs)
    integer(iw_samples, "--iw-samples", high=MAX_IW)  # checked before training, not after it
    if not (0 <= seed < 2**63):
        _fail(f"--seed must be an integer in [0, 2**63), got {seed}")
    from ..train import resolve_device

    resolve_device(device)  # an unusable device is refused before a run directory exists
    run_opts = {"device": device, "progress": not quiet, **{k: train_opts[k] for k in RESUME_OPTIONS}}
    if resume is not None:
        given = [k for k, v in {**options, **train_opts, "preset": preset, "data": data, "data_dir": data_dir,
                                "binarize": binarize, "out": out_dir}.items() if v is not None and k not in RESUME_OPTIONS]
        if given:
            _fail(f"--resume continues a run with its own options; drop {', '.join('--' + k.replace('_', '-') for k in given)}")
        if not (resume / "train.json").is_file():
            _fail(f"no run to resume in {resume}: it has no train.json")
        with lock(resume):
            _resume(resume, run_opts, iw_samples, report)
        return

    preset, data, binarize = preset or "undercomplete", data or "digits", bool(binarize)
    split = _load_split(data, data_dir, seed, binarize)
    model, cfg = _build(preset, split, options, train_opts, seed, run_opts)
    run = out_dir or Path("runs") / f"{preset}-{split.train.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    with lock(run):
        if (run / "model.json").exists() or (run / "trainer.safetensors").exists() or (run / "train.json").exists():
            if not overwrite:
                _fail(f"{run} already holds a run; pass --overwrite to replace it or --resume {run} to continue it")
            for pattern in RUN_FILES:
                for f in run.glob(pattern):
                    f.unlink()
        from dataclasses import asdict

        from ..checkpoint import write_json

        data_spec = str(Path(data).resolve()) if Path(data).exists() else data  # usable from any directory
        write_json(run / "data.json", {"data": data_spec, "data_dir": str(data_dir.resolve()) if data_dir else None,
                                       "seed": seed, "binarize": binarize})
        write_json(run / "train.json", {"train": asdict(cfg), "model": model.config})
        n_params = sum(p.numel() for p in model.parameters())
        err.print(f"{preset} on {split.train.name}: {len(split.train)} train / {len(split.test)} test samples, "
                  f"input {model.input_size}, code {model.code_size}, {n_params:,} parameters → {run}")
        _fit_and_report(model, split, cfg, run, iw_samples=iw_samples, html=report)


def _build(preset: str, split, options: dict, train_opts: dict, seed: int, run_opts: dict):
    import torch

    from ..optim import config_for
    from ..presets import create

    with torch.random.fork_rng(devices=[]):  # the seed sets the initialisation, not the caller's RNG
        torch.manual_seed(seed)
        model = create(preset, split.train.shape, **{k: v for k, v in options.items() if v is not None})
    cfg = config_for(model, **{k: v for k, v in {**train_opts, **run_opts}.items() if v is not None}, seed=seed)
    return model, cfg.validate()


def _resume(run: Path, run_opts: dict, iw_samples: int, report: bool) -> None:
    """Continue ``run`` from its trainer state; a run killed before its first checkpoint starts again
    from the beginning with its recorded options (the same result, as every run is seeded)."""
    from ..checkpoint import build_for
    from ..optim import TrainConfig
    from ..presets import from_config
    from ..train import TRAINER_STATE

    meta = _read_json(run / "train.json")
    if not isinstance(meta, dict) or not isinstance(meta.get("train"), dict) or "model" not in meta:
        _fail(f"corrupted file {run / 'train.json'}: expected the keys 'train' and 'model'")
    given = {k: v for k, v in run_opts.items() if v is not None or k == "max_time"}
    # max_time limits this invocation only: a run stopped by it continues to its last epoch
    cfg = TrainConfig.from_dict({**meta["train"], **given}).validate()
    split = _split_of_run(run)
    state = run / TRAINER_STATE
    if state.is_file():
        model = build_for(meta["model"], state, prefix="model.").to_empty(device="cpu")  # checked before allocating
    else:
        import torch

        err.print(f"{run} has no checkpoint yet: starting it again from the beginning", markup=False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            model = from_config(meta["model"])
    _fit_and_report(model, split, cfg, run, resume=state.is_file(), iw_samples=iw_samples, html=report)


def _fit_and_report(model, split, cfg, run: Path, resume: bool = False, iw_samples: int = 1000,
                    html: bool = False) -> None:
    from ..checkpoint import write_json
    from ..train import Interrupted, fit
    from .use import _report

    t0 = time.perf_counter()
    try:
        fit(model, split.train.x, cfg, run_dir=run, resume=resume)
    except Interrupted as e:
        err.print(f"{e}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(e.exit_status) from None
    except KeyboardInterrupt:  # a second Ctrl-C: no time to save
        err.print(f"interrupted: continue with `aekit train --resume {run}` (from its last checkpoint)", markup=False)
        raise typer.Exit(130) from None
    res = _report(model, split, [("train time", f"{time.perf_counter() - t0:.1f} s")], iw_samples)
    write_json(run / "evaluation.json", res)
    if html:
        from ..report import write_report

        out.print(f"report: {write_report(run, split, model)}")
    out.print(f"saved to {run}")
