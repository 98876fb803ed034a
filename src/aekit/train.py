"""The training loop. It knows nothing of variants: it minimises ``model(x).loss``.

In-memory data is moved to the device once and batched by indexing it with a
shuffled permutation, so there is no per-sample Python work per batch. Every
source of randomness (shuffling, the validation split, the global torch RNG used
by corruption) is seeded and saved in checkpoints, so a resumed run ends with
the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor

from .checkpoint import TrainerState, restore_trainer, save_model, save_trainer, write_json
from .data import Dataset, check_array
from .model import Autoencoder
from .optim import TrainConfig, config_for, lr_factor, make_optimizer

__all__ = ["History", "TrainConfig", "as_tensor", "config_for", "evaluate", "fit", "lr_factor", "make_optimizer",
           "param_dtype", "resolve_device"]

TRAINER_STATE = "trainer.safetensors"
METRICS = "metrics.jsonl"


@dataclass
class History:
    """Per-epoch metrics rows, and how training ended."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False

    @property
    def last(self) -> dict[str, Any]:
        return self.rows[-1]


def resolve_device(name: str) -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; an unavailable CUDA device is a ``ValueError``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available on this machine")
    return torch.device(name)


def param_dtype(model: torch.nn.Module) -> torch.dtype:
    """The floating-point dtype of ``model``'s parameters (float32 unless it was converted, e.g. ``.double()``)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def as_tensor(x: Any, model: Autoencoder, what: str = "data") -> Tensor:
    """Validate ``x`` for ``model`` and return it as a CPU tensor (N, D) in the model's dtype."""
    if isinstance(x, Dataset):
        x = x.x
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    dtype = param_dtype(model)
    a = check_array(x, what, np.float64 if dtype == torch.float64 else np.float32)
    a = a.reshape(len(a), -1)
    if a.shape[1] != model.input_size:
        raise ValueError(f"{what} has {a.shape[1]} features per sample but the model expects {model.input_size}")
    return torch.from_numpy(a).to(dtype)


@torch.no_grad()
def evaluate(model: Autoencoder, x: Any, batch_size: int = 1024, corrupt: bool = False) -> dict[str, float]:
    """Mean loss, named terms and stats (see :class:`~aekit.model.Output`) of ``model`` over ``x`` (array-like
    or tensor, (N, D)) in eval mode, in batches of ``batch_size``.

    ``corrupt=True`` applies the model's corruption first: the denoising loss of corrupted inputs.
    A term that is a batch statistic (KL sparsity's ρ̂) is averaged over the evaluation batches.
    """
    if not isinstance(x, Tensor):
        x = as_tensor(x, model)
    was = model.training
    model.eval()
    w = next(model.parameters())
    sums: dict[str, float] = {}
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size].to(w.device, w.dtype, non_blocking=True)
        out = model(xb, corrupt=corrupt)
        n = len(xb)
        for k, v in {"loss": out.loss, **out.terms, **out.stats}.items():
            sums[k] = sums.get(k, 0.0) + float(v) * n
    model.train(was)
    return {k: v / len(x) for k, v in sums.items()}


Callback = Callable[[int, dict[str, Any], Autoencoder], None]


def fit(
    model: Autoencoder,
    x: Any,
    config: TrainConfig | None = None,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
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
        model. Without it nothing is written.
    resume
        Continue from ``run_dir/trainer.safetensors``; the run then ends exactly
        as the uninterrupted run would have.
    callbacks
        Called as ``cb(epoch, row, model)`` after each epoch (and its checkpoint).

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
    data = as_tensor(x, model, "training data")
    model.likelihood.validate(data)
    if model.code_size >= model.input_size and not model.is_regularised:
        warnings.warn(
            f"the code ({model.code_size} units) is at least as large as the input ({model.input_size}) "
            "and nothing regularises it: the autoencoder can learn the identity copy",
            UserWarning,
            stacklevel=2,
        )
    run = Path(run_dir) if run_dir is not None else None
    if resume and (run is None or not (run / TRAINER_STATE).is_file()):
        raise ValueError(f"cannot resume: no {TRAINER_STATE} in {run}")

    torch.manual_seed(cfg.seed)
    split = np.random.default_rng(cfg.seed).permutation(len(data))
    n_val = int(round(cfg.val_fraction * len(data)))
    if cfg.val_fraction > 0 and (n_val < 1 or n_val >= len(data)):
        raise ValueError(f"val_fraction={cfg.val_fraction} leaves no training or no validation data with {len(data)} samples")
    val = data[torch.from_numpy(split[:n_val])] if n_val else None
    train = data[torch.from_numpy(split[n_val:])].to(dev)
    model.to(dev).train()
    model.prepare(train)
    n, bs = len(train), min(cfg.batch_size, len(train))
    steps_per_epoch = math.ceil(n / bs)
    total = cfg.epochs * steps_per_epoch
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    kl_warmup = math.ceil(cfg.kl_warmup_epochs * steps_per_epoch)
    if kl_warmup and "kl" not in {p.name for p in model.penalties}:
        raise ValueError("kl_warmup_epochs needs a model with a KL term (preset 'vae'); this one has none")
    opt = make_optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, warmup, cfg.schedule))
    shuffle = torch.Generator().manual_seed(cfg.seed)
    hist = History()
    best = {"loss": math.inf, "state": None, "bad": 0}
    state = TrainerState(model, opt, sched, shuffle, hist, best)
    start = 0
    if resume:
        start = restore_trainer(run / TRAINER_STATE, state, asdict(cfg))
        # keep metrics.jsonl consistent with the restored history
        with open(run / METRICS, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in hist.rows)
    elif run is not None:
        run.mkdir(parents=True, exist_ok=True)
        (run / METRICS).unlink(missing_ok=True)
    if run is not None:
        write_json(run / "train.json", {"train": asdict(cfg), "model": model.config})

    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
    t0 = time.perf_counter()
    with _progress(cfg.progress) as bar:
        task = bar.add_task("train", total=total, completed=start * steps_per_epoch, loss="")
        for epoch in range(start + 1, cfg.epochs + 1):
            te = time.perf_counter()
            perm = torch.randperm(n, generator=shuffle).to(dev)
            sums: dict[str, Tensor] = {}  # terms: the loss is their sum
            stat_sums: dict[str, Tensor] = {}  # logged beside the loss, not part of it
            for b in range(steps_per_epoch):
                xb = train[perm[b * bs : (b + 1) * bs]]
                weights = {"kl": min(1.0, ((epoch - 1) * steps_per_epoch + b + 1) / kl_warmup)} if kl_warmup else None
                with autocast:
                    out = model(xb, weights=weights)
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
                if cfg.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                sched.step()
                for k, v in out.terms.items():  # the loss is their sum: derived at the end, not summed here
                    sums[k] = sums.get(k, 0) + v.detach() * len(xb)
                for k, v in out.stats.items():
                    stat_sums[k] = stat_sums.get(k, 0) + v.detach() * len(xb)
                if cfg.progress and (b % 20 == 0 or b == steps_per_epoch - 1):
                    bar.update(task, completed=(epoch - 1) * steps_per_epoch + b + 1,
                               description=f"epoch {epoch}/{cfg.epochs}",
                               loss=f"loss {float(sum(sums.values())) / min(n, (b + 1) * bs):.4g}")
            row: dict[str, Any] = {"epoch": epoch, "lr": opt.param_groups[0]["lr"]}
            if weights:
                row["kl_weight"] = weights["kl"]  # at the epoch's last step
            row["train_loss"] = float(sum(sums.values())) / n
            row.update({f"train_{k}": float(v) / n for k, v in {**sums, **stat_sums}.items()})
            if not math.isfinite(row["train_loss"]):
                raise FloatingPointError(
                    f"training loss became {row['train_loss']} in epoch {epoch}; lower lr or set grad_clip"
                )
            row["seconds"] = time.perf_counter() - te  # training only, not validation
            row["samples_per_s"] = n / row["seconds"]
            if val is not None:
                row.update({f"val_{k}": v for k, v in evaluate(model, val).items()})
            hist.rows.append(row)
            stop = _early_stop(cfg, row, state)
            out_of_time = cfg.max_time is not None and time.perf_counter() - t0 > cfg.max_time
            if run is not None:
                with open(run / METRICS, "a") as f:
                    f.write(json.dumps(row) + "\n")
                last = stop or out_of_time or epoch == cfg.epochs
                if last or (cfg.checkpoint_every and epoch % cfg.checkpoint_every == 0):
                    save_trainer(run / TRAINER_STATE, epoch, state, asdict(cfg))
            for cb in callbacks:
                cb(epoch, row, model)
            hist.stopped_early = stop
            if stop or out_of_time:
                break
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    model.eval()
    if run is not None:
        save_model(model, run)
    return hist


def _early_stop(cfg: TrainConfig, row: dict[str, Any], s: TrainerState) -> bool:
    """Track the best validation loss (weights in ``s.best``, epoch in ``s.hist``); True when patience has run out."""
    if cfg.patience is None:
        return False
    if row["val_loss"] < s.best["loss"] - cfg.min_delta:
        s.best.update(loss=row["val_loss"], bad=0)
        s.best["state"] = {k: v.detach().clone() for k, v in s.model.state_dict().items()}
        s.hist.best_epoch = row["epoch"]
        return False
    s.best["bad"] += 1
    return s.best["bad"] >= cfg.patience


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )
