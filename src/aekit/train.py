"""The training loop. It knows nothing of variants: it minimises ``model(x).loss``.

In-memory data is moved to the device once and batched by indexing it with a
shuffled permutation, so there is no per-sample Python work per batch. Every
source of randomness (shuffling, the validation split, the global torch RNG used
by corruption) is seeded and saved in checkpoints, so a resumed run ends with
the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import signal
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .checkpoint import save_model
from .trainstate import Position, TrainerState, restore_trainer, save_trainer
from .model import Autoencoder, batches_on, evaluating
from ._checks import check
from .optim import CONSTRAINTS, StepHook, TrainConfig, config_for, lr_factor, make_optimizer, step_hooks
from .dist import Context, context
from .run import Run, Stop, stop_on_signals
from .files import as_tensor, param_dtype
from .sources import Rows, Stream, epoch_batches, open_rows, prepare_sample, split, stored_check, streamable, training_data
from .progress import progress
from .threads import threads_for, using_threads

__all__ = ["History", "Interrupted", "TrainConfig", "as_tensor", "config_for", "evaluate", "fit", "lr_factor",
           "make_optimizer", "param_dtype", "resolve_device"]



@dataclass
class History:
    """Per-epoch metrics rows, and how training ended."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    timed_out: bool = False  # max_time ended it before its last epoch

    @property
    def last(self) -> dict[str, Any]:
        return self.rows[-1]

    def outcome(self) -> dict[str, Any]:
        """How training ended, as ``train.json`` records it: the last epoch, early stop, the epoch of the weights kept."""
        last = self.rows[-1]["epoch"] if self.rows else 0
        return {"last_epoch": last, "stopped_early": self.stopped_early, "best_epoch": self.best_epoch or last,
                **({"stopped_by_max_time": True} if self.timed_out else {})}


def resolve_device(name: str) -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; an unavailable CUDA device is a ``ValueError``."""
    check(name, "device", *CONSTRAINTS["device"])
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available on this machine")
    return torch.device(name)


@torch.no_grad()
def evaluate(model: Autoencoder, x: Any, batch_size: int = 1024, corrupt: bool = False) -> dict[str, float]:
    """Mean loss, named terms and stats (see :class:`~aekit.model.Output`) of ``model`` over ``x`` (array-like
    or tensor, (N, D); or a ``.npy`` path, shard directory or stream, read chunk by chunk) in eval mode, in
    batches of ``batch_size``.

    ``corrupt=True`` applies the model's corruption first: the denoising loss of corrupted inputs.
    A term that is a batch statistic (KL sparsity's ρ̂) is averaged over the evaluation batches.
    """
    if streamable(x):  # a file, directory or dataset: streamed, memory bounded by a chunk
        rows = open_rows(x)
        w = next(model.parameters())
        x = Stream(rows, np.arange(rows.n), w.device, 0, check=stored_check(model.likelihood.validate, rows.name),
                   dtype=w.dtype)
    if isinstance(x, Stream):
        batches, n = x.in_order(batch_size), x.n
    else:
        x = x if isinstance(x, Tensor) else as_tensor(x, model)
        batches, n = (xb for _, xb in batches_on(model, x, batch_size)), len(x)
    with evaluating(model):
        w = next(model.parameters())
        sums: dict[str, float] = {}
        for xb in batches:
            xb = xb.to(w.device, w.dtype, non_blocking=True)
            out = model(xb, corrupt=corrupt)
            for k, v in {"loss": out.loss, **out.terms, **out.stats}.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(xb)
    return {k: v / n for k, v in sums.items()}


Callback = Callable[[int, dict[str, Any], Autoencoder], None]
NAN_CHECK_EVERY = 50  # steps between finiteness checks on an accelerator, where each check is a sync


class Interrupted(Exception):
    """Training stopped by a signal after saving its full state: resuming continues it exactly.

    ``exit_status`` is 128 + the signal number (130 for SIGINT, 143 for SIGTERM, 138 for SIGUSR1),
    the status ``aekit train`` exits with.
    """

    def __init__(self, signum: int, run: Path, epoch: int, batch: int, steps: int) -> None:
        self.signum, self.run_dir, self.exit_status = signum, run, 128 + signum
        where = f"after step {batch} of {steps} of epoch {epoch}" if batch < steps else f"at the end of epoch {epoch}"
        super().__init__(f"stopped by {signal.Signals(signum).name} {where}; the full trainer state is saved in "
                         f"{run}: continue with `aekit train --resume {run}` (Python: fit(..., resume=True))")


def fit(
    model: Autoencoder,
    x: Any,
    config: TrainConfig | None = None,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    hooks: Sequence[StepHook] = (),
    **options: Any,
) -> History:
    """Train ``model`` on samples ``x`` (N, D) and return its per-epoch history.

    Parameters
    ----------
    model
        Any :class:`~aekit.model.Autoencoder`; the trainer minimises ``model(x).loss``.
    x
        Training samples: array-like (N, D) or (N, *input_shape), or a :class:`~aekit.data.Dataset`.
    config, **options
        A :class:`TrainConfig`, and/or its fields as keywords (which override it).
        Without ``config``, options not given take the model's preset defaults
        (see :func:`config_for`), then :class:`TrainConfig`'s.
    run_dir
        Where to write ``metrics.jsonl``, ``train.json``, checkpoints and the final
        model, holding the directory's lock (a second writer is refused). SIGTERM, SIGINT and
        SIGUSR1 then save the full state at the next step and raise :class:`Interrupted`.
        Without it nothing is written.
    resume
        Continue from ``run_dir/trainer.safetensors`` (saved at an epoch's end or inside an
        epoch); the run then ends with the same weights as the uninterrupted run, bit for bit on CPU.
    callbacks
        Called as ``cb(epoch, row, model)`` after each epoch (and its checkpoint).
    hooks
        Per-step schedules (:class:`~aekit.optim.StepHook`), after those the options ask for (``kl_warmup_epochs``).

    Example
    -------
    >>> from aekit.presets import create
    >>> from aekit.data import load
    >>> d = load("digits")
    >>> ae = create("undercomplete", d.train.shape, code_size=8)
    >>> fit(ae, d.train.x, epochs=2, progress=False).last["epoch"]
    2
    """
    cfg = (replace(config, **options) if config is not None else config_for(model, **options)).validate()
    dev = resolve_device(cfg.device)
    if model.code_size >= model.input_size and not model.is_regularised:
        warnings.warn(
            f"the code ({model.code_size} units) is at least as large as the input ({model.input_size}) "
            "and nothing regularises it: the autoencoder can learn the identity copy",
            UserWarning,
            stacklevel=2,
        )
    data = training_data(x, model, cfg.shuffle_buffer)
    ctx = context(dev)
    dev = ctx.device(dev)
    n_threads = threads_for(cfg.threads, model, cfg.batch_size)
    if run_dir is None:
        if resume:
            raise ValueError("cannot resume without run_dir")
        for name in ("checkpoint_every", "checkpoint_steps", "checkpoint_minutes"):  # nowhere to save: never silent
            if getattr(cfg, name) != getattr(TrainConfig, name):
                raise ValueError(f"option {name}={getattr(cfg, name)!r} has no effect here: checkpoints are saved "
                                 "in a run directory (pass run_dir=...)")
        with using_threads(n_threads):
            return _fit(model, data, cfg, dev, ctx, None, False, callbacks, hooks)
    with Run(run_dir, writes=ctx.main).writing() as run:  # one writer: rank 0
        if resume and not run.file(Run.TRAINER).is_file():
            raise ValueError(f"cannot resume: no {Run.TRAINER} in {run.path}")
        with stop_on_signals() as stop, using_threads(n_threads):
            return _fit(model, data, cfg, dev, ctx, run, resume, callbacks, hooks, stop)


def _fit(model: Autoencoder, data: Tensor | Rows, cfg: TrainConfig, dev: torch.device, ctx: Context,
         run: Run | None, resume: bool, callbacks: Sequence[Callback], hooks: Sequence[StepHook],
         stop: Stop | None = None) -> History:
    torch.manual_seed(cfg.seed + ctx.rank)  # corruption and VAE noise: each rank its own stream
    source, val, n_val = split(data, model, cfg.seed, cfg.val_fraction, dev, cfg.shuffle_buffer, ctx.rank, ctx.world)
    model.to(dev).train()
    if model.prepares:  # (a sample of the rows is a copy: none for a model that needs none)
        model.prepare(prepare_sample(source))
    net = ctx.wrap(model, dev)  # DDP across ranks; the model itself in one process
    n, bs = source.n, min(cfg.batch_size, source.n)
    if bs < ctx.world:
        raise ValueError(f"batch_size={bs} is smaller than the {ctx.world} processes: each needs a row of every batch")
    steps_per_epoch = epoch_batches(n, bs, ctx.world)
    total = cfg.epochs * steps_per_epoch
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    hooks = [*step_hooks(model, cfg, steps_per_epoch), *hooks]
    opt = make_optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, warmup, cfg.schedule))
    shuffle = torch.Generator().manual_seed(cfg.seed)
    hist = History()
    best = {"loss": math.inf, "state": None, "bad": 0}
    state = TrainerState(model, opt, sched, shuffle, hist, best)
    start = 0
    if resume:
        start = restore_trainer(run.file(Run.TRAINER), state, asdict(cfg), asdict(TrainConfig()), ctx.rank)
        if state.pos is not None and not 0 < state.pos.batch <= steps_per_epoch:
            raise ValueError(f"corrupted checkpoint {run.file(Run.TRAINER)}: position {state.pos.batch} is not a step "
                             f"of an epoch of {steps_per_epoch} steps")
        if state.patience_spent(cfg.patience):  # stopped early: finished, so resuming is a no-op like a finished run's
            start, hist.stopped_early = cfg.epochs, True
    if run is not None:
        run.write_metrics(hist.rows)  # consistent with the (restored) history
        run.write_json(Run.TRAIN, {"train": asdict(cfg), "model": model.config})

    stop = stop or Stop()
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
    check_every = 1 if dev.type == "cpu" or cfg.nan_policy == "skip" else NAN_CHECK_EVERY
    bad = torch.zeros((), dtype=torch.bool, device=dev)  # a non-finite loss since the last check (accelerators)
    t0 = last_save = time.perf_counter()

    def save(epoch: int) -> None:
        """Every rank takes part (sums and RNG states are gathered); rank 0 writes."""
        nonlocal last_save
        if state.pos is not None:
            state.pos.seconds = time.perf_counter() - te
        rngs = ctx.gather(torch.get_rng_state().to(dev)) if ctx.distributed else None
        saved = _global_position(state.pos, ctx, dev)
        if run.writes:
            save_trainer(run.file(Run.TRAINER), epoch, replace(state, pos=saved), asdict(cfg),
                         rngs=None if rngs is None else [r.cpu() for r in rngs])
        ctx.barrier()  # no rank leaves (or is stopped) before the checkpoint is on disk
        last_save = time.perf_counter()

    with progress(cfg.progress and ctx.main, steps_per_epoch) as bar:
        task = bar.add_task("train", total=total, completed=start * steps_per_epoch, loss="")
        for epoch in range(start + 1, cfg.epochs + 1):
            pos = state.pos = state.pos or Position(rng=shuffle.get_state())
            shuffle.set_state(pos.rng)  # the epoch's order, drawn again when resuming inside it
            te = time.perf_counter() - pos.seconds
            pending = False  # a step or time checkpoint fell due on the epoch's last step: taken at its end
            batches = source.batches(epoch, shuffle, bs, pos.batch, ctx.rank, ctx.world)
            for b, (xb, n_global) in enumerate(batches, start=pos.batch):
                step = (epoch - 1) * steps_per_epoch + b + 1
                weights = {k: v for h in hooks for k, v in h.weights(step).items()} or None
                with autocast:
                    out = net(xb, weights=weights)
                finite = _finite(out.loss, bad, step, check_every)
                due = bool(cfg.checkpoint_steps and step % cfg.checkpoint_steps == 0) or bool(
                    cfg.checkpoint_minutes and time.perf_counter() - last_save >= 60 * cfg.checkpoint_minutes)
                stopping = stop.signum is not None
                if ctx.distributed and finite is not None:  # every rank decides alike: NaN, signal, checkpoint
                    nan, stopping, due = ctx.flags(finite is False, stopping, due, device=dev)
                    finite = not nan
                if finite is False and cfg.nan_policy == "skip":
                    pos.skipped += 1
                    sched.step()  # a skipped batch is a step that changed nothing: the schedule keeps time
                elif finite is False:
                    raise _non_finite(out.loss, epoch, b + 1, steps_per_epoch, run, xb)
                else:
                    opt.zero_grad(set_to_none=True)
                    # DDP averages the ranks' gradients: weight each rank's mean by its share of the global batch
                    (out.loss * (ctx.world * len(xb) / n_global) if ctx.distributed else out.loss).backward()
                    if cfg.grad_clip is not None:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    opt.step()
                    sched.step()
                    for h in hooks:
                        h.after_step(step, model)
                    for k, v in out.terms.items():  # the loss is their sum: derived at the end, not summed here
                        pos.sums[k] = pos.sums.get(k, 0) + v.detach() * len(xb)
                    for k, v in out.stats.items():
                        pos.stat_sums[k] = pos.stat_sums.get(k, 0) + v.detach() * len(xb)
                    pos.samples += len(xb)
                pos.batch = b + 1
                if cfg.progress and ctx.main and (b % 20 == 0 or b == steps_per_epoch - 1):
                    bar.update(task, completed=step, description=f"epoch {epoch}/{cfg.epochs}",
                               loss=f"loss {float(sum(pos.sums.values())) / max(1, pos.samples):.4g}")
                if run is not None and (due or stopping):
                    if b + 1 < steps_per_epoch or stopping:
                        save(epoch - 1)
                    else:
                        pending = True
                    if stopping:
                        raise Interrupted(stop.signum or signal.SIGTERM, run.path, epoch, b + 1, steps_per_epoch)
            if check_every > 1 and ctx.flags(bool(bad), device=dev)[0]:
                raise _non_finite(torch.tensor(math.nan), epoch, steps_per_epoch, steps_per_epoch, run)
            logged = {k: v for h in hooks for k, v in h.logged(epoch * steps_per_epoch).items()}  # at the last step
            row = _epoch_row(epoch, opt, _global_position(pos, ctx, dev), logged, cfg, time.perf_counter() - te)
            state.pos = None
            if val is not None:
                row.update({f"val_{k}": v for k, v in _shared_eval(model, val, n_val, ctx).items()})
                if not math.isfinite(row["val_loss"]):
                    raise FloatingPointError(f"the validation loss became {row['val_loss']} after epoch {epoch}: the "
                                             "weights are no longer usable; the last checkpoint is kept")
            hist.rows.append(row)
            early = state.early_stop(row, cfg.patience, cfg.min_delta)
            out_of_time = cfg.max_time is not None and time.perf_counter() - t0 > cfg.max_time
            timed = bool(cfg.checkpoint_minutes and time.perf_counter() - last_save >= 60 * cfg.checkpoint_minutes)
            out_of_time, timed, stopping = ctx.flags(out_of_time, timed, stop.signum is not None, device=dev)
            last = early or out_of_time or epoch == cfg.epochs
            if run is not None:
                run.write_metrics([row], append=True)
                every = cfg.checkpoint_every and epoch % cfg.checkpoint_every == 0
                if last or pending or every or timed or stopping:
                    save(epoch)
            for cb in callbacks:
                cb(epoch, row, model)
            hist.stopped_early = early
            hist.timed_out = out_of_time and not early and epoch < cfg.epochs
            if stopping and not last:
                raise Interrupted(stop.signum or signal.SIGTERM, run.path, epoch, steps_per_epoch, steps_per_epoch)
            if last:
                break
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    model.eval()
    if finishing := model.finishes:
        model.finish(prepare_sample(source))
        for m in finishing:  # each rank fitted the same rows: rank 0's result everywhere, bit for bit
            for b in m.buffers():
                ctx.broadcast(b)
    if run is not None and run.writes:
        save_model(model, run.path)
        run.write_json(Run.TRAIN, {"train": asdict(cfg), "model": model.config, "outcome": hist.outcome()})
    ctx.barrier()
    return hist


def _global_position(pos: Position | None, ctx: Context, dev: torch.device) -> Position | None:
    """``pos`` with its sums and sample count summed over all ranks (what a checkpoint and a row hold)."""
    if pos is None or not ctx.distributed:
        return pos
    keys = [f"t.{k}" for k in pos.sums] + [f"s.{k}" for k in pos.stat_sums]
    total = ctx.sums({**{f"t.{k}": v for k, v in pos.sums.items()}, **{f"s.{k}": v for k, v in pos.stat_sums.items()},
                      "samples": pos.samples}, dev)
    return replace(pos, samples=int(total["samples"]),
                   sums={k[2:]: torch.tensor(total[k]) for k in keys if k.startswith("t.")},
                   stat_sums={k[2:]: torch.tensor(total[k]) for k in keys if k.startswith("s.")})


def _shared_eval(model: Autoencoder, val: Any, n_val: int, ctx: Context) -> dict[str, float]:
    """``evaluate`` on this rank's share of the validation data, combined over the ranks."""
    res = evaluate(model, val)
    if not ctx.distributed:
        return res
    mine = val.n if isinstance(val, Stream) else len(val)
    totals = ctx.sums({k: v * mine for k, v in res.items()}, next(model.parameters()).device)
    return {k: v / n_val for k, v in totals.items()}


def _finite(loss: Tensor, bad: Tensor, step: int, every: int) -> bool | None:
    """Whether ``loss`` is finite, checked now (every step), else folded into ``bad`` without a sync and
    checked every ``every`` steps; ``None`` when not checked at this step."""
    if every == 1:
        return bool(torch.isfinite(loss))
    bad |= ~torch.isfinite(loss.detach())
    return not bool(bad) if step % every == 0 else None


def _non_finite(loss: Tensor, epoch: int, batch: int, steps: int, run: Run | None,
                xb: Tensor | None = None) -> FloatingPointError:
    kept = f"; the last checkpoint in {run.path} is kept as it was" if run is not None else ""
    big = float(xb.detach().abs().amax()) if xb is not None and xb.numel() else 0.0
    if big > 1e6:  # the data, not the optimiser: no learning rate makes a loss of 1e30² finite in float32
        why = f"the batch holds values up to {big:.3g}: scale the data (e.g. standardize each feature)"
    else:
        why = "lower lr, set grad_clip"
    return FloatingPointError(f"training loss became {float(loss.detach())} in epoch {epoch} at step {batch} of "
                              f"{steps}{kept}; {why}, or pass nan_policy='skip' to drop such batches")


def _epoch_row(epoch: int, opt: torch.optim.Optimizer, pos: Position, logged: dict[str, float], cfg: TrainConfig,
               seconds: float) -> dict[str, Any]:
    """The epoch's metrics row: learning rate, mean train loss and terms over the batches trained on."""
    if pos.samples == 0:
        raise FloatingPointError(f"every batch of epoch {epoch} had a non-finite loss; nothing was trained")
    row: dict[str, Any] = {"epoch": epoch, "lr": opt.param_groups[0]["lr"], **logged}
    row["train_loss"] = float(sum(pos.sums.values())) / pos.samples
    row.update({f"train_{k}": float(v) / pos.samples for k, v in {**pos.sums, **pos.stat_sums}.items()})
    if cfg.nan_policy == "skip":
        row["skipped_batches"] = pos.skipped
    if not math.isfinite(row["train_loss"]):
        raise FloatingPointError(f"training loss became {row['train_loss']} in epoch {epoch}; lower lr or set grad_clip")
    row["seconds"] = seconds  # training only, not validation
    row["samples_per_s"] = pos.samples / seconds
    return row
