"""``aekit train``: start a run, or resume one exactly where it stopped.

A run directory has one writer at a time (its lock; see :mod:`aekit.store.run`). SIGTERM, SIGINT and
SIGUSR1 save the full trainer state at the next step and exit with status 128 + the signal's
number, with a line that says how to resume.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Annotated, Any, Optional, get_type_hints

import typer

from .._checks import check, integer
from ..presets.options import OPTIONS
from ..presets.plugins import model_factory
from ..store.rows import moments
from ..store.run import Run
from ..store.runconfig import dumps, read_run_config
from ..training.config import CONSTRAINTS, TrainConfig, as_saved
from ._app import (
    MAX_IW,
    GroupedCommand,
    ModelFn,
    Plugins,
    _fail,
    _load_split,
    _plugins,
    _split_of_run,
    app,
    err,
    friendly,
    out,
    standardized,
)
from ._lazy import lazy_module
from .options import Spec, check_flags, data_spec, resolve, sized
from .track import mlflow_logger, tracker_names, trackers_for

# heavy modules (torch), loaded on first use so that `aekit --help` and option checks stay fast
cli_use = lazy_module("aekit.cli.use")
core_model = lazy_module("aekit.core.model")
presets_catalog = lazy_module("aekit.presets.catalog")
report_html = lazy_module("aekit.report.html")
training_checkpoint = lazy_module("aekit.training.checkpoint")
training_dist = lazy_module("aekit.training.dist")
training_loop = lazy_module("aekit.training.loop")
training_optim = lazy_module("aekit.training.optim")

# Options --resume takes (epochs: only more than the run's, to train on)
RESUME_OPTIONS = tuple(f.name for f in fields(TrainConfig) if f.metadata["resume"] and f.metadata["flag"])
_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def trainer_flags(command: Callable) -> Callable:
    """Give ``command`` (which takes them as ``**train_flags``) one flag per :class:`TrainConfig` option that declares
    one, with its help and panel: a new trainer option is one line, in :mod:`aekit.training.config`."""
    sig, hints = inspect.signature(command), get_type_hints(command, include_extras=True)  # (typer reads these)
    params = [p.replace(annotation=hints[p.name]) for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    for f in fields(TrainConfig):
        if f.metadata["flag"] is not None:
            kind = _TYPES[str(f.type).split(" | ")[0]]
            flag = typer.Option(help=f.metadata["flag"], rich_help_panel=f.metadata["panel"])
            params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                            annotation=Annotated[Optional[kind], flag]))
    command.__signature__ = sig.replace(parameters=params)
    return command


def _preset_flags() -> str:
    """The help of every preset option, from :data:`aekit.presets.options.OPTIONS` (``\\b``: click keeps the lines)."""

    width = max(len(k) for k in OPTIONS) + 4
    lines = [f"  --{k.replace('_', '-'):<{width}}{o.help}" for k, o in OPTIONS.items()]
    return ("\b\nPreset options, as --name value (`aekit presets` lists which preset takes which, with its "
            "defaults;\na preset of your own takes its options the same way):\n" + "\n".join(lines))


@app.command(cls=GroupedCommand, context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             epilog=_preset_flags())
@friendly
@trainer_flags
def train(
    ctx: typer.Context,
    preset: Annotated[Optional[str], typer.Option(help="Recipe to train; see `aekit presets`.  [default: undercomplete]", rich_help_panel="Model")] = None,
    data: Annotated[Optional[str], typer.Option(help="digits, mnist, fashion-mnist, a directory of IDX files, or a .npy/.npz/.csv file.  [default: digits]", rich_help_panel="Data")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Read mnist/fashion-mnist IDX files from here instead of the download cache.", rich_help_panel="Data")] = None,
    binarize: Annotated[Optional[bool], typer.Option("--binarize", help="Stochastically binarise the data once (seeded): binarised MNIST for VAE likelihoods.", rich_help_panel="Data")] = None,
    window: Annotated[Optional[int], typer.Option(help="Read --data as one series (.csv with a time column, or a .npy of shape (T, C)) and train on windows of this many steps; the first 80 % of the steps train (or --train-steps), the rest test.", rich_help_panel="Data")] = None,
    stride: Annotated[Optional[int], typer.Option(help="Steps between the starts of windows (with --window).  [default: 1]", rich_help_panel="Data")] = None,
    train_steps: Annotated[Optional[int], typer.Option(help="With --window: train on the series' first N steps (an anomaly-free start, as SMAP/MSL and UCR give), test on the rest.", rich_help_panel="Data")] = None,
    label_column: Annotated[Optional[str], typer.Option(help="A .csv table's column of labels (header name or 0-based index): kept out of the features, used by the report's code map and the linear probe.", rich_help_panel="Data")] = None,
    drop_columns: Annotated[Optional[str], typer.Option(help="A .csv table's columns to leave out, e.g. IDs or text (comma-separated names or indices).", rich_help_panel="Data")] = None,
    standardize: Annotated[Optional[bool], typer.Option("--standardize", help="Standardise each feature by the training rows' mean and standard deviation (stored in the run; encode, reconstruct, score and search apply it): for tabular data whose columns have different units.", rich_help_panel="Data")] = None,
    stream: Annotated[Optional[bool], typer.Option("--stream", help="Leave a .npy file or shard directory on disk and stream it (data larger than memory).", rich_help_panel="Data")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Run directory (default: runs/PRESET-DATA-TIME).", rich_help_panel="Output")] = None,
    overwrite: Annotated[bool, typer.Option(help="Allow --out to name a directory that already holds a run.", rich_help_panel="Output")] = False,
    resume: Annotated[Optional[Path], typer.Option(help="Continue the run in this directory exactly where it stopped (other options but --device, --max-time, --nan-policy, --checkpoint-*, --threads and --quiet are taken from the run); with --epochs N above the run's, train on to N.", rich_help_panel="Hardware and checkpoints")] = None,
    iw_samples: Annotated[Optional[int], typer.Option(help="vae: importance samples k of the test NLL estimate.  [default: 1000]", rich_help_panel="Output")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for initialisation, split and shuffling.  [default: 0]", rich_help_panel="Training")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.", rich_help_panel="Output")] = False,
    report: Annotated[bool, typer.Option("--report", help="Write report.html and its figures into the run at the end.", rich_help_panel="Output")] = False,
    config: Annotated[Optional[Path], typer.Option(help="A run configuration (TOML): data, preset, [model] and [train] options; flags override it.", rich_help_panel="Model")] = None,
    print_config: Annotated[bool, typer.Option("--print-config", help="Print the fully resolved configuration (TOML) and stop: it re-runs the same run.", rich_help_panel="Output")] = False,
    track: Annotated[Optional[str], typer.Option(help="Also log each epoch to tensorboard and/or mlflow (comma-separated; extra 'tracking').", rich_help_panel="Output")] = None,
    plugin: Plugins = None,
    model_fn: ModelFn = None,
    **train_flags: Any,  # TrainConfig's options, as flags (see trainer_flags)
) -> None:
    """Train an autoencoder; print its test reconstruction error next to PCA's.

    The chosen preset's options are flags too (--code-size 8 --hidden 512,256 --no-tied; listed below).
    """
    check_flags(ctx, plugin)  # before torch is imported: a typo is answered at once
    resolve_device = training_loop.resolve_device

    _plugins(plugin)
    trackers = tracker_names(track)
    if resume is not None:
        given = {**train_flags, "preset": preset, "data": data, "data_dir": data_dir, "binarize": binarize,
                 "out": out_dir, "config": config, "seed": seed, "stream": stream, "window": window, "stride": stride,
                 "train_steps": train_steps, "standardize": standardize, "label_column": label_column,
                 "drop_columns": drop_columns}
        _resume_run(ctx, resume, given, print_config, {"progress": not quiet, **{k: train_flags[k] for k in
                                                                                 RESUME_OPTIONS}},
                    iw_samples or 1000, report, trackers, model_fn)
        return
    if model_fn is not None and (preset or ctx.args):
        _fail("--model builds the whole model: drop --preset and the preset's options")
    top = dict(preset=preset, data=data, data_dir=str(data_dir) if data_dir else None, binarize=binarize, seed=seed,
               iw_samples=iw_samples, stream=stream, window=window, stride=stride, train_steps=train_steps,
               standardize=standardize,
               label_column=label_column, drop_columns=[c.strip() for c in drop_columns.split(",") if c.strip()]
               if drop_columns else None)
    spec = resolve(read_run_config(config) if config else {}, top, train_flags, [] if model_fn else ctx.args)
    spec.plugins = sorted({*spec.plugins, *(plugin or [])})
    integer(spec.iw_samples, "--iw-samples", high=MAX_IW)  # checked before training, not after it
    check(spec.seed, "--seed", *CONSTRAINTS["seed"])
    if spec.train_steps is not None:
        integer(spec.train_steps, "--train-steps")
    if spec.window is None and spec.stride != 1:
        _fail(f"--stride {spec.stride} has no effect here: it applies with --window")
    # an unusable device is refused before a run directory exists; under torchrun, this is where the ranks meet
    main = context(resolve_device(spec.train.get("device", "auto"))).main
    if out_dir is None and context().distributed:
        _fail("give --out when training on several processes: every rank must write to the same run")
    split = _load_split(spec.data, Path(spec.data_dir) if spec.data_dir else None, spec.seed, spec.binarize,
                        spec.stream, spec.window, spec.stride, spec.label_column, spec.drop_columns, spec.train_steps)
    scaler = _scaler(split, spec)
    split = standardized(split, *scaler) if scaler else split
    model, cfg = _build(spec, split, quiet, model_fn)
    resolved = _resolved(spec, model, cfg)
    text = (f"# model: built by --model {model_fn} (pass it again: a configuration never imports code)\n"
            if model_fn else "") + dumps(resolved)
    if print_config:
        typer.echo(text, nl=False)
        return
    label = spec.preset if model.config else f"model of {model_fn}"
    path = out_dir or Path("runs") / f"{spec.preset if model.config else 'custom'}-{split.train.name}-" \
                                     f"{time.strftime('%Y%m%d-%H%M%S')}"
    mlflow = mlflow_logger(trackers, path, cfg) if main else None  # its store reached before anything is written
    _new_run(Run(path, writes=main), overwrite, spec, split, scaler, model, cfg, resolved, text, label, report,
             trackers, mlflow)


def _resume_run(ctx: typer.Context, resume: Path, given: dict[str, Any], print_config: bool, run_opts: dict,
                iw_samples: int, report: bool, trackers: list[str], model_fn: str | None) -> None:
    """``--resume RUN``: refuse the options a run keeps, then continue it under its lock."""
    given_names = [k for k, v in given.items() if v is not None and k not in RESUME_OPTIONS]
    if given_names or ctx.args or print_config:
        dropped = [f"--{k.replace('_', '-')}" for k in given_names] + ctx.args + (["--print-config"] * print_config)
        _fail(f"--resume continues a run with its own options; drop {', '.join(dropped)}")
    if not Run(resume).file(Run.TRAIN).is_file():
        _fail(f"no run to resume in {resume}: it has no {Run.TRAIN}")
    main = context(training_loop.resolve_device(run_opts["device"] or "auto")).main
    with Run(resume, writes=main).writing() as run:
        _resume(run, run_opts, iw_samples, report, trackers, model_fn)


def _new_run(run: Run, overwrite: bool, spec: Spec, split, scaler, model, cfg, resolved: dict, text: str, label: str,
             report: bool, trackers: list[str], mlflow) -> None:
    """Write a new run: its data.json and run.toml, then train and report under its lock (one Run, handed to fit)."""
    main, path = run.writes, run.path
    with run.writing():  # rank 0 writes the run; the others only train
        if main and run.started():
            if not overwrite:
                _fail(f"{path} already holds a run; pass --overwrite to replace it or --resume {path} to continue it")
            run.clear()

        series = {"window": spec.window, "stride": spec.stride, "center": split.scaler.mean_.tolist(),
                  "scale": split.scaler.scale_.tolist(), **({"train_steps": spec.train_steps} if spec.train_steps
                                                             else {})} if spec.window else {}  # `aekit score` applies
        run.write_json(Run.DATA, {"data": resolved["data"], "data_dir": resolved.get("data_dir"), "seed": spec.seed,
                                  "binarize": spec.binarize, "stream": spec.stream, **series,
                                  **({"standardize": [c.tolist() for c in scaler]} if scaler else {}),
                                  **({"label_column": spec.label_column} if spec.label_column is not None else {}),
                                  **({"drop_columns": spec.drop_columns} if spec.drop_columns else {})})
        run.write_text(Run.CONFIG, text)
        if main:
            n_params = sum(p.numel() for p in model.parameters())
            err.print(f"{label} on {split.train.name}: {len(split.train)} train / {len(split.test)} test samples, "
                      f"input {model.input_size}, code {model.code_size}, {n_params:,} parameters → {path}")
        try:
            _fit_and_report(model, split, cfg, run, iw_samples=spec.iw_samples, html=report, trackers=trackers,
                            mlflow=mlflow)
        except (ValueError, FloatingPointError, typer.Exit) as e:
            # refused before anything was trained (the data, an option): no half-made run blocks the retry
            refused = not isinstance(e, typer.Exit) or e.exit_code == 2
            if main and refused and not run.file(Run.TRAINER).exists() and not run.file(Run.MODEL).exists():
                run.clear()
            raise




SCALE_SPREAD = 100.0  # features whose standard deviations differ more than this: ask for --standardize


def _scaler(split, spec: Spec) -> tuple | None:
    """With --standardize, each feature's (mean, standard deviation) over the training rows (1 where constant);
    without it, None — after a warning when a table's feature scales differ by orders of magnitude."""
    import warnings

    import numpy as np


    x = split.train.x
    if spec.standardize and (spec.stream or spec.window):
        _fail("--standardize applies to data read into memory, not with --stream; a series (--window) is "
              "standardised per channel already")
    if spec.window or spec.stream or not isinstance(x, np.ndarray):
        return None
    mean, sd = moments(x)  # in slices: x.std(0) held a copy of the data
    if spec.standardize:
        return mean.astype(np.float32), np.where(sd > 0, sd, 1.0).astype(np.float32)
    live = sd[sd > 0]
    if len(split.train.shape) == 1 and len(live) > 1 and live.max() > SCALE_SPREAD * live.min():
        warnings.warn(f"the features' standard deviations range from {live.min():.3g} to {live.max():.3g} "
                      f"({live.max() / live.min():.0f}×): the loss is dominated by the widest; pass --standardize")
    return None


def _build(spec: Spec, split, quiet: bool, model_fn: str | None = None):
    import torch

    config_for = training_optim.config_for
    create = presets_catalog.create

    options = spec.model if model_fn else sized(spec, split, quiet)
    with torch.random.fork_rng(devices=[]):  # the seed sets the initialisation, not the caller's RNG
        torch.manual_seed(spec.seed)
        model = _by_hand(model_fn) if model_fn else create(spec.preset, split.train.shape, **options)
    cfg = config_for(model, **{**spec.train, "progress": not quiet, "seed": spec.seed})
    return model, cfg.validate()


def _by_hand(model_fn: str):
    """The model that a --model function builds (it must be an aekit Autoencoder)."""
    Autoencoder = core_model.Autoencoder

    model = model_factory(model_fn)()
    if not isinstance(model, Autoencoder):
        _fail(f"--model {model_fn} returned {type(model).__name__}, not an aekit Autoencoder")
    return model


def _resolved(spec: Spec, model, cfg) -> dict:
    """The configuration that re-runs this run exactly: every option filled in."""

    return {"preset": spec.preset if model.config else None, "data": data_spec(spec.data),
            "data_dir": str(Path(spec.data_dir).resolve()) if spec.data_dir else None, "binarize": spec.binarize,
            "stream": spec.stream or None, "window": spec.window, "stride": spec.stride if spec.window else None,
            "train_steps": spec.train_steps,
            "standardize": spec.standardize or None, "label_column": spec.label_column,
            "drop_columns": spec.drop_columns or None,
            "seed": spec.seed, "iw_samples": spec.iw_samples, "plugins": spec.plugins or None,
            "model": dict(model.config["options"]) if model.config else None,
            "train": {k: v for k, v in asdict(cfg).items() if k not in ("progress", "seed")}}


def _train_on(run: Run, meta: dict, cfg) -> None:
    """--resume --epochs N with N above the run's: record the new total in train.json and run.toml first, so that
    a later --resume (after a kill) continues the same longer run."""

    before = meta["train"].get("epochs")
    if not isinstance(before, int) or cfg.epochs < before:
        _fail(f"--epochs {cfg.epochs} with --resume: the run has {before} epochs; --resume trains on with more, "
              "never fewer (a shorter run is a new run: --out elsewhere)")
    err.print(f"training on: {before} → {cfg.epochs} epochs" + ("" if cfg.schedule == "constant" else
              f" (the {cfg.schedule} learning-rate schedule is planned over the {cfg.epochs} epochs from here on)"),
              markup=False)
    run.write_json(Run.TRAIN, {**meta, "train": {**meta["train"], "epochs": cfg.epochs}})
    if run.file(Run.CONFIG).is_file():
        text = run.file(Run.CONFIG).read_text()
        config = read_run_config(run.file(Run.CONFIG))
        config.setdefault("train", {})["epochs"] = cfg.epochs
        comment = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
        run.write_text(Run.CONFIG, comment + dumps(config))


def _resume(run: Run, run_opts: dict, iw_samples: int, report: bool, trackers: list[str],
            model_fn: str | None = None) -> None:
    """Continue ``run`` from its trainer state; a run killed before its first checkpoint starts again
    from the beginning with its recorded options (the same result, as every run is seeded)."""
    build_for = training_checkpoint.build_for
    from_config = presets_catalog.from_config

    meta = run.train_meta()
    if meta["model"] is None and model_fn is None:
        _fail(f"{run.path} trained a model composed by hand: pass --model MODULE:FUNCTION, a function that builds the "
              "same architecture (or resume from Python: fit(model, x, run_dir=..., resume=True))")
    given = {k: v for k, v in run_opts.items() if v is not None or k == "max_time"}
    # max_time limits this invocation only: a run stopped by it continues to its last epoch
    cfg = TrainConfig.from_dict({**as_saved(meta["train"]), **given}).validate()
    if cfg.epochs != meta["train"].get("epochs"):
        _train_on(run, meta, cfg)
    if not run.file(Run.DATA).is_file():
        _fail(f"{run.path} was trained from Python on in-memory data (no {Run.DATA}): resume it from Python, "
              "fit(..., run_dir=..., resume=True)")
    split = _split_of_run(run.path)
    state = run.file(Run.TRAINER)
    if model_fn is not None:
        import torch

        with torch.random.fork_rng(devices=[]):  # as a new run's seeded initialisation (it matters without a checkpoint)
            torch.manual_seed(cfg.seed)
            model = _by_hand(model_fn)
        if model.config != meta["model"]:
            _fail(f"--model {model_fn} builds a model with config {model.config}, but the run has {meta['model']}")
    elif state.is_file():
        model = build_for(meta["model"], state, prefix="model.").to_empty(device="cpu")  # checked before allocating
    else:
        import torch

        err.print(f"{run.path} has no checkpoint yet: starting it again from the beginning", markup=False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            model = from_config(meta["model"])
    _fit_and_report(model, split, cfg, run, resume=state.is_file(), iw_samples=iw_samples, html=report,
                    trackers=trackers, mlflow=mlflow_logger(trackers, run.path, cfg) if run.writes else None)


def _fit_and_report(model, split, cfg, run: Run, resume: bool = False, iw_samples: int = 1000,
                    html: bool = False, trackers: list[str] = (), mlflow=None) -> None:
    Interrupted = training_loop.Interrupted
    fit = training_loop.fit
    _report = cli_use._report

    t0 = time.perf_counter()
    main = context().main
    loggers = trackers_for(list(trackers), run.path, cfg, mlflow) if main else []
    try:
        hist = fit(model, split.train.x, cfg, run_dir=run, resume=resume, callbacks=loggers)  # fit writes train.json
    except Interrupted as e:
        err.print(f"{e}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(e.exit_status) from None
    except KeyboardInterrupt:  # a second Ctrl-C: no time to save
        err.print(f"interrupted: continue with `aekit train --resume {run.path}` (from its last checkpoint)", markup=False)
        raise typer.Exit(130) from None
    finally:
        for logger in loggers:
            logger.close()
    if not main:
        return  # rank 0 evaluates and reports
    if hist.timed_out:
        out.print(f"stopped by --max-time {cfg.max_time:g} after epoch {hist.last['epoch']} of {cfg.epochs}; "
                  f"`aekit train --resume {run.path}` trains the remaining epochs", markup=False, highlight=False,
                  soft_wrap=True)
    if hist.stopped_early:
        best = next(r for r in hist.rows if r["epoch"] == hist.best_epoch)
        out.print(f"stopped early after epoch {hist.last['epoch']} of {cfg.epochs}: the validation loss had not fallen "
                  f"by more than {cfg.min_delta:g} for {cfg.patience} epochs (--patience); kept the weights of epoch "
                  f"{hist.best_epoch} (validation loss {best['val_loss']:.5g})", markup=False, highlight=False)
    res = _report(model, split, [("train time", f"{time.perf_counter() - t0:.1f} s")], iw_samples)
    run.write_json(Run.EVALUATION, res)
    if html:
        write_report = report_html.write_report

        out.print(f"report: {write_report(run.path, split, model)}")
    out.print(f"saved to {run.path}")


def context(device=None):
    """The distributed context (``aekit.training.dist.context``), imported on use: torch loads only when a command runs."""
    ctx = training_dist.context

    return ctx(device)
