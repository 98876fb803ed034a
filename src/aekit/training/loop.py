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

import torch
from torch import Tensor

from .._checks import check
from ..core.model import Autoencoder
from ..store.rows import Rows
from ..store.run import Run, Stop, stop_on_signals
from .checkpoint import save_model
from .config import CONSTRAINTS, TrainConfig
from .dist import Context, context
from .evaluate import shared_eval
from .optim import StepHook, config_for, lr_factor, make_optimizer, step_hooks
from .progress import progress
from .sources import epoch_batches, prepare_sample, split, training_data
from .state import Position, TrainerState, restore_trainer, save_trainer
from .threads import threads_for, using_threads

__all__ = ["History", "Interrupted", "fit", "resolve_device"]



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
    run_dir: str | Path | Run | None = None,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    hooks: Sequence[StepHook] = (),
    **options: Any,
) -> History:
    """Train ``model`` on samples ``x`` (N, D) and return its per-epoch history.

    Parameters
    ----------
    model
        Any :class:`~aekit.core.model.Autoencoder`; the trainer minimises ``model(x).loss``.
    x
        Training samples: array-like (N, D) or (N, *input_shape), or a :class:`~aekit.store.data.Dataset`.
    config, **options
        A :class:`TrainConfig`, and/or its fields as keywords (which override it).
        Without ``config``, options not given take the model's preset defaults
        (see :func:`config_for`), then :class:`TrainConfig`'s.
    run_dir
        Where to write ``metrics.jsonl``, ``train.json``, checkpoints and the final
        model, holding the directory's lock (a second writer is refused): a path, or the
        :class:`~aekit.store.run.Run` its caller opened (the command line's). SIGTERM, SIGINT and
        SIGUSR1 then save the full state at the next step and raise :class:`Interrupted`.
        Without it nothing is written.
    resume
        Continue from ``run_dir/trainer.safetensors`` (saved at an epoch's end or inside an
        epoch); the run then ends with the same weights as the uninterrupted run, bit for bit on CPU.
    callbacks
        Called as ``cb(epoch, row, model)`` after each epoch (and its checkpoint).
    hooks
        Per-step schedules (:class:`~aekit.training.optim.StepHook`), after those the options ask for (``kl_warmup_epochs``).

    Example
    -------
    >>> from aekit import create
    >>> from aekit.store.data import load
    >>> d = load("digits")
    >>> ae = create("undercomplete", d.train.shape, code_size=8)
    >>> fit(ae, d.train.x, epochs=2, progress=False).last["epoch"]
    2
    """
    cfg = (replace(config, **options) if config is not None else config_for(model, **options)).validate()
    dev = resolve_device(cfg.device)
    if model.code_size >= model.input_size and not model.is_regularised:
        warnings.warn(f"the code ({model.code_size} units) is at least as large as the input ({model.input_size}) "
                      "and nothing regularises it: the autoencoder can learn the identity copy", UserWarning, 2)
    data = training_data(x, model, cfg.shuffle_buffer)
    ctx = context(dev)
    dev = ctx.device(dev)
    n_threads = threads_for(cfg.threads, model, cfg.batch_size)
    if run_dir is None:
        _no_run_dir(cfg, resume)
        with using_threads(n_threads):
            return _Training(model, data, cfg, dev, ctx, None, hooks).run(False, callbacks)
    run = run_dir if isinstance(run_dir, Run) else Run(run_dir, writes=ctx.main)
    with run.writing():  # one writer: rank 0 (the lock is re-entrant: the command line holds it already)
        if resume and not run.file(Run.TRAINER).is_file():
            raise ValueError(f"cannot resume: no {Run.TRAINER} in {run.path}")
        with stop_on_signals() as stop, using_threads(n_threads):
            return _Training(model, data, cfg, dev, ctx, run, hooks, stop).run(resume, callbacks)


def _no_run_dir(cfg: TrainConfig, resume: bool) -> None:
    """Options that need a run directory are errors without one: nowhere to save is never silent."""
    if resume:
        raise ValueError("cannot resume without run_dir")
    for name in ("checkpoint_every", "checkpoint_steps", "checkpoint_minutes"):
        if getattr(cfg, name) != getattr(TrainConfig, name):
            raise ValueError(f"option {name}={getattr(cfg, name)!r} has no effect here: checkpoints are saved "
                             "in a run directory (pass run_dir=...)")


class _Training:
    """One run of the loop: the source, the optimiser and schedule, the trainer state and where it is saved.

    ``run`` pulls batches from the :class:`~aekit.training.sources.Source` (in memory or streamed: the loop does not
    know which) and steps; the distributed context ``ctx`` (a no-op in one process) is built once by :func:`fit`.
    """

    def __init__(self, model: Autoencoder, data: Tensor | Rows, cfg: TrainConfig, dev: torch.device, ctx: Context,
                 run: Run | None, hooks: Sequence[StepHook], stop: Stop | None = None) -> None:
        self.model, self.cfg, self.dev, self.ctx, self.run_dir, self.stop = model, cfg, dev, ctx, run, stop or Stop()
        torch.manual_seed(cfg.seed + ctx.rank)  # corruption and VAE noise: each rank its own stream
        self.source, self.val, self.n_val = split(data, model, cfg.seed, cfg.val_fraction, dev, cfg.shuffle_buffer,
                                                  ctx.rank, ctx.world)
        model.to(dev).train()
        if model.prepares:  # (a sample of the rows is a copy: none for a model that needs none)
            model.prepare(prepare_sample(self.source))
        self.net = ctx.wrap(model, dev)  # DDP across ranks; the model itself in one process
        self.bs = min(cfg.batch_size, self.source.n)
        if self.bs < ctx.world:
            raise ValueError(f"batch_size={self.bs} is smaller than the {ctx.world} processes: each needs a row of "
                             "every batch")
        self.steps = epoch_batches(self.source.n, self.bs, ctx.world)  # per epoch
        total, warmup = cfg.epochs * self.steps, int(cfg.warmup_epochs * self.steps)
        self.hooks = [*step_hooks(model, cfg, self.steps), *hooks]
        self.opt = make_optimizer(model, cfg)
        sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: lr_factor(s, total, warmup, cfg.schedule))
        self.shuffle = torch.Generator().manual_seed(cfg.seed)
        self.hist = History()
        self.state = TrainerState(model, self.opt, sched, self.shuffle, self.hist, {"loss": math.inf, "state": None,
                                                                                     "bad": 0})
        self.autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
        self.check_every = 1 if dev.type == "cpu" or cfg.nan_policy == "skip" else NAN_CHECK_EVERY
        self.bad = torch.zeros((), dtype=torch.bool, device=dev)  # a non-finite loss since the last check
        self.t0 = self.last_save = self.epoch_start = time.perf_counter()  # (reset when the run starts)

    def run(self, resume: bool, callbacks: Sequence[Callback]) -> History:
        """Train from the start (or the checkpoint), epoch by epoch, then keep the best weights and finish."""
        start = self.restore() if resume else 0
        run = self.run_dir
        if run is not None:
            run.write_metrics(self.hist.rows)  # consistent with the (restored) history
            run.write_json(Run.TRAIN, {"train": asdict(self.cfg), "model": self.model.config})
        self.t0 = self.last_save = time.perf_counter()
        with progress(self.cfg.progress and self.ctx.main, self.steps) as bar:
            task = bar.add_task("train", total=self.cfg.epochs * self.steps, completed=start * self.steps, loss="")
            for epoch in range(start + 1, self.cfg.epochs + 1):
                pending = self.epoch(epoch, bar, task)
                if self.end_epoch(epoch, pending, callbacks):
                    break
        self.finish()
        return self.hist

    def restore(self) -> int:
        """Load the trainer checkpoint; the epoch to continue after."""
        path, state = self.run_dir.file(Run.TRAINER), self.state
        start = restore_trainer(path, state, asdict(self.cfg), asdict(TrainConfig()), self.ctx.rank)
        if state.pos is not None and not 0 < state.pos.batch <= self.steps:
            raise ValueError(f"corrupted checkpoint {path}: position {state.pos.batch} is not a step of an epoch of "
                             f"{self.steps} steps")
        if state.patience_spent(self.cfg.patience):  # stopped early: finished, resuming is a no-op like a finished run's
            start, self.hist.stopped_early = self.cfg.epochs, True
        return start

    def save(self, epoch: int) -> None:
        """Every rank takes part (sums and RNG states are gathered); rank 0 writes."""
        state, ctx = self.state, self.ctx
        if state.pos is not None:
            state.pos.seconds = time.perf_counter() - self.epoch_start
        rngs = ctx.gather(torch.get_rng_state().to(self.dev)) if ctx.distributed else None
        saved = _global_position(state.pos, ctx, self.dev)
        if self.run_dir.writes:
            save_trainer(self.run_dir.file(Run.TRAINER), epoch, replace(state, pos=saved), asdict(self.cfg),
                         rngs=None if rngs is None else [r.cpu() for r in rngs])
        ctx.barrier()  # no rank leaves (or is stopped) before the checkpoint is on disk
        self.last_save = time.perf_counter()

    def epoch(self, epoch: int, bar: Any, task: Any) -> bool:
        """Train one epoch (from where a checkpoint left it); whether a checkpoint fell due on its last step."""
        cfg, ctx, state = self.cfg, self.ctx, self.state
        pos = state.pos = state.pos or Position(rng=self.shuffle.get_state())
        self.shuffle.set_state(pos.rng)  # the epoch's order, drawn again when resuming inside it
        self.epoch_start = time.perf_counter() - pos.seconds
        pending = False  # a step or time checkpoint fell due on the epoch's last step: taken at its end
        for b, (xb, n_global) in enumerate(self.source.batches(epoch, self.shuffle, self.bs, pos.batch, ctx.rank,
                                                               ctx.world), start=pos.batch):
            step = (epoch - 1) * self.steps + b + 1
            due, stopping = self.step(xb, n_global, epoch, b, step)
            pos.batch = b + 1
            if cfg.progress and ctx.main and (b % 20 == 0 or b == self.steps - 1):
                bar.update(task, completed=step, description=f"epoch {epoch}/{cfg.epochs}",
                           loss=f"loss {float(sum(pos.sums.values())) / max(1, pos.samples):.4g}")
            if self.run_dir is not None and (due or stopping):
                if b + 1 < self.steps or stopping:
                    self.save(epoch - 1)
                else:
                    pending = True
                if stopping:
                    raise Interrupted(self.stop.signum or signal.SIGTERM, self.run_dir.path, epoch, b + 1, self.steps)
        if self.check_every > 1 and ctx.flags(bool(self.bad), device=self.dev)[0]:
            raise _non_finite(torch.tensor(math.nan), epoch, self.steps, self.steps, self.run_dir)
        return pending

    def step(self, xb: Tensor, n_global: int, epoch: int, b: int, step: int) -> tuple[bool, bool]:
        """One optimiser step on the batch ``xb`` (or a skipped one); whether a checkpoint is due, and a stop."""
        cfg, ctx, pos = self.cfg, self.ctx, self.state.pos
        weights = {k: v for h in self.hooks for k, v in h.weights(step).items()} or None
        with self.autocast:
            out = self.net(xb, weights=weights)
        finite = _finite(out.loss, self.bad, step, self.check_every)
        due = bool(cfg.checkpoint_steps and step % cfg.checkpoint_steps == 0) or bool(
            cfg.checkpoint_minutes and time.perf_counter() - self.last_save >= 60 * cfg.checkpoint_minutes)
        stopping = self.stop.signum is not None
        if ctx.distributed and finite is not None:  # every rank decides alike: NaN, signal, checkpoint
            nan, stopping, due = ctx.flags(finite is False, stopping, due, device=self.dev)
            finite = not nan
        if finite is False and cfg.nan_policy == "skip":
            pos.skipped += 1
            self.state.sched.step()  # a skipped batch is a step that changed nothing: the schedule keeps time
        elif finite is False:
            raise _non_finite(out.loss, epoch, b + 1, self.steps, self.run_dir, xb)
        else:
            self.opt.zero_grad(set_to_none=True)
            # DDP averages the ranks' gradients: weight each rank's mean by its share of the global batch
            (out.loss * (ctx.world * len(xb) / n_global) if ctx.distributed else out.loss).backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.opt.step()
            self.state.sched.step()
            for h in self.hooks:
                h.after_step(step, self.model)
            for k, v in out.terms.items():  # the loss is their sum: derived at the end, not summed here
                pos.sums[k] = pos.sums.get(k, 0) + v.detach() * len(xb)
            for k, v in out.stats.items():
                pos.stat_sums[k] = pos.stat_sums.get(k, 0) + v.detach() * len(xb)
            pos.samples += len(xb)
        return due, stopping

    def end_epoch(self, epoch: int, pending: bool, callbacks: Sequence[Callback]) -> bool:
        """The epoch's row, validation, early stopping, checkpoint and callbacks; whether training ends here."""
        cfg, ctx, hist, run = self.cfg, self.ctx, self.hist, self.run_dir
        logged = {k: v for h in self.hooks for k, v in h.logged(epoch * self.steps).items()}  # at the last step
        row = _epoch_row(epoch, self.opt, _global_position(self.state.pos, ctx, self.dev), logged, cfg,
                         time.perf_counter() - self.epoch_start)
        self.state.pos = None
        if self.val is not None:
            row.update({f"val_{k}": v for k, v in shared_eval(self.model, self.val, self.n_val, ctx).items()})
            if not math.isfinite(row["val_loss"]):
                raise FloatingPointError(f"the validation loss became {row['val_loss']} after epoch {epoch}: the "
                                         "weights are no longer usable; the last checkpoint is kept")
        hist.rows.append(row)
        early = self.state.early_stop(row, cfg.patience, cfg.min_delta)
        out_of_time = cfg.max_time is not None and time.perf_counter() - self.t0 > cfg.max_time
        timed = bool(cfg.checkpoint_minutes and time.perf_counter() - self.last_save >= 60 * cfg.checkpoint_minutes)
        out_of_time, timed, stopping = ctx.flags(out_of_time, timed, self.stop.signum is not None, device=self.dev)
        last = early or out_of_time or epoch == cfg.epochs
        if run is not None:
            run.write_metrics([row], append=True)
            every = cfg.checkpoint_every and epoch % cfg.checkpoint_every == 0
            if last or pending or every or timed or stopping:
                self.save(epoch)
        for cb in callbacks:
            cb(epoch, row, self.model)
        hist.stopped_early = early
        hist.timed_out = out_of_time and not early and epoch < cfg.epochs
        if stopping and not last:
            raise Interrupted(self.stop.signum or signal.SIGTERM, run.path, epoch, self.steps, self.steps)
        return last

    def finish(self) -> None:
        """Keep the best weights, fit what the model fits after training, save the model and the outcome."""
        model, ctx, run = self.model, self.ctx, self.run_dir
        if self.state.best["state"] is not None:
            model.load_state_dict(self.state.best["state"])
        model.eval()
        if finishing := model.finishes:
            model.finish(prepare_sample(self.source))
            for m in finishing:  # each rank fitted the same rows: rank 0's result everywhere, bit for bit
                for b in m.buffers():
                    ctx.broadcast(b)
        if run is not None and run.writes:
            save_model(model, run.path)
            run.write_json(Run.TRAIN, {"train": asdict(self.cfg), "model": model.config, "outcome": self.hist.outcome()})
        ctx.barrier()


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
