"""What the trainer does, as plain values (:class:`TrainConfig`), and the optimiser, learning-rate
schedule and step hooks they name."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch

from ._checks import BOOL, Interval, OneOf, check, validate
from .model import Autoencoder
from .registry import get_preset
from .threads import THREADS

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "onecycle")
PRECISIONS = ("fp32", "bf16")
NAN_POLICIES = ("raise", "skip")
DEVICE = re.compile(r"auto|cpu|cuda(:\d{1,4})?")


class _Device(OneOf):
    """'auto', 'cpu', 'cuda' or 'cuda:N'."""

    def accepts(self, v: Any) -> bool:
        return isinstance(v, str) and DEVICE.fullmatch(v) is not None

    def __str__(self) -> str:
        return "'auto', 'cpu', 'cuda' or 'cuda:N'"


_NONE, _COUNT, _POSITIVE = OneOf(None), Interval(int, 0), Interval(float, 0, None, "neither")
# what each training option accepts (cross-field rules are in TrainConfig.validate)
CONSTRAINTS = {
    "epochs": [Interval(int, 1)], "batch_size": [Interval(int, 1)], "lr": [_POSITIVE],
    "optimizer": [OneOf(*OPTIMIZERS)], "weight_decay": [Interval(float, 0)], "decay_all": [BOOL],
    "momentum": [Interval(float, 0, 1, "left")], "schedule": [OneOf(*SCHEDULES)],
    "val_fraction": [Interval(float, 0, 1, "left")], "patience": [_NONE, Interval(int, 1)],
    "min_delta": [Interval(float, 0)], "grad_clip": [_NONE, _POSITIVE], "seed": [Interval(int, 0, 2**63, "left")],
    "device": [_Device()], "precision": [OneOf(*PRECISIONS)], "checkpoint_every": [_COUNT],
    "checkpoint_steps": [_COUNT], "checkpoint_minutes": [Interval(float, 0)], "nan_policy": [OneOf(*NAN_POLICIES)],
    "shuffle_buffer": [_COUNT], "max_time": [_NONE, _POSITIVE], "kl_warmup_epochs": [Interval(float, 0)],
    "threads": [THREADS], "progress": [BOOL],
}


@dataclass
class TrainConfig:
    """Everything the trainer does, as plain values (saved with every run).

    Attributes
    ----------
    epochs, batch_size, lr
        Passes over the data, samples per step, peak learning rate.
    optimizer
        ``"adam"``, ``"adamw"`` or ``"sgd"`` (with ``momentum``, an error with the others);
        ``weight_decay`` applies to all.
    weight_decay, decay_all
        Weight decay (L2 for adam and sgd, decoupled for adamw) of the weights: parameters with at least two
        dimensions, as nanoGPT does; biases, gains, thresholds and scales are not pulled to zero.
        ``decay_all=True`` decays every parameter.
    schedule
        ``"constant"``, ``"cosine"`` (to 0) or ``"onecycle"`` (warm up from lr/25, cosine to lr/10⁴),
        each after ``warmup_epochs`` of linear warm-up (one-cycle warms up for 30 % if it is 0).
    val_fraction
        Share of the training data held out (seeded) for validation and early stopping; 0 for none.
    patience, min_delta
        Stop after ``patience`` epochs without a validation improvement larger than
        ``min_delta``, and restore the best weights; ``None`` never stops early (and then a
        ``min_delta`` is an error).
    grad_clip
        Clip the global gradient norm to this value; ``None`` does not clip.
    precision
        ``"fp32"``, or ``"bf16"`` autocast for the forward pass (weights and optimiser stay fp32).
    checkpoint_every
        Save the full trainer state every N epochs (0: only at the end); needs ``run_dir``.
    checkpoint_steps, checkpoint_minutes
        Also save it, mid-epoch, every N optimiser steps and every M minutes of training (0: never);
        a resumed run continues from the exact step. Signals save at the next step anyway.
    nan_policy
        A non-finite training loss is caught at the step it happens (on CUDA within 50 steps):
        ``"raise"`` stops with ``FloatingPointError`` naming the epoch and step, leaving the last
        checkpoint as it was; ``"skip"`` drops that batch (no update; counted as ``skipped_batches``).
    shuffle_buffer
        Streamed data (a ``.npy`` path, a shard directory, a dataset): rows shuffled together, in a window
        read ahead while the previous one trains (0: about 256 MB of stored data). A window that holds
        all the rows gives the order of in-memory training. An error with in-memory data.
    max_time
        Stop after the first epoch that ends past this many seconds; ``None`` for no limit.
    threads
        CPU threads torch uses during training (the caller's setting is restored after): 0 (automatic) takes
        one for a small model (parameters × batch size < 2²⁴, where more threads only wait on each other)
        and leaves torch's setting otherwise; -1 every core; N that many. Results do not depend on it.
    kl_warmup_epochs
        Raise the weight of the model's ``"kl"`` term (a VAE's KL) linearly from 0 to 1 over
        this many epochs, step by step; 0 for none. The schedule belongs to the trainer:
        the model's β is untouched, and the logged terms are unweighted.
    """

    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    decay_all: bool = False
    momentum: float = 0.9
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    val_fraction: float = 0.1
    patience: int | None = None
    min_delta: float = 0.0
    grad_clip: float | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    checkpoint_every: int = 1
    checkpoint_steps: int = 0
    checkpoint_minutes: float = 15.0
    nan_policy: str = "raise"
    shuffle_buffer: int = 0
    max_time: float | None = None
    kl_warmup_epochs: float = 0.0
    threads: int = 0
    progress: bool = True

    def validate(self) -> "TrainConfig":
        """Raise ``ValueError`` naming the first bad value and the accepted range."""
        validate(vars(self), CONSTRAINTS)
        check(self.warmup_epochs, "warmup_epochs", Interval(float, 0, self.epochs, "left"))
        if self.patience is not None and self.val_fraction == 0:
            raise ValueError("patience needs val_fraction > 0 (early stopping needs validation data), got "
                             f"patience={self.patience!r} with val_fraction=0")
        # an option this configuration would ignore is an error, never silently dropped
        unused = {"momentum": (self.optimizer != "sgd", "applies to optimizer='sgd' only"),
                  "decay_all": (self.weight_decay == 0, "needs weight_decay > 0"),
                  "min_delta": (self.patience is None, "needs patience (early stopping)")}
        for name, (ignored, why) in unused.items():
            if ignored and getattr(self, name) != _DEFAULTS[name]:
                raise ValueError(f"option {name}={getattr(self, name)!r} has no effect here: {name} {why}")
        return self

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Build from a dict, rejecting unknown keys with the list of accepted ones."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown training option(s) {', '.join(unknown)}; accepted: {', '.join(sorted(names))}")
        return cls(**d)


_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}


def as_saved(train: dict[str, Any]) -> dict[str, Any]:
    """A saved run's training options with the value that reproduces how it trained for each option added
    since (a run with weight decay from before ``decay_all`` decayed every parameter)."""
    legacy = {"decay_all": True} if train.get("weight_decay") and "decay_all" not in train else {}
    return {**legacy, **train}


def config_for(model: Autoencoder, **options: Any) -> TrainConfig:
    """The training config for ``model``: ``options``, else its preset's defaults, else :class:`TrainConfig`'s.

    Example
    -------
    >>> from aekit.presets import create
    >>> config_for(create("linear", (8,), code_size=2)).epochs
    600
    """
    defaults = get_preset(model.config["preset"]).train_defaults if model.config else {}
    return TrainConfig.from_dict({**defaults, **options})


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimiser, in its fused implementation where torch has one.

    Fused Adam updates every parameter in one pass over memory; on a CPU it is
    ~8× faster per step than the default loop, which is a fifth of the step time
    of a 3 M-parameter MLP. Same algorithm, same hyperparameters.
    """
    params: list = [p for p in model.parameters() if p.requires_grad]
    if cfg.weight_decay and not cfg.decay_all and any(p.dim() < 2 for p in params):
        params = [{"params": [p for p in params if p.dim() >= 2]},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        cls, kw = torch.optim.SGD, dict(lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    else:
        cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        kw = dict(lr=cfg.lr, weight_decay=cfg.weight_decay)
    try:
        return cls(params, fused=True, **kw)
    except (RuntimeError, ValueError, TypeError):  # no fused kernel for this device or dtype
        return cls(params, **kw)


class StepHook:
    """Interface for a per-step schedule the trainer applies: weights of the loss's named terms before a step,
    work on the model after it, and values for the epoch's metrics row. A hook is a function of the global
    step (1 at the first) and keeps no state, so a resumed run continues it exactly."""

    def weights(self, step: int) -> Mapping[str, float]:
        """Weights of named loss terms at ``step`` (:meth:`~aekit.model.Autoencoder.forward`'s ``weights``)."""
        return {}

    def after_step(self, step: int, model: torch.nn.Module) -> None:
        """Called after the optimiser's step ``step`` (e.g. to project parameters back onto a constraint)."""

    def logged(self, step: int) -> dict[str, float]:
        """Values for the metrics row of the epoch that ends at ``step``."""
        return {}


@dataclass(frozen=True)
class Warmup(StepHook):
    """The loss term ``term``'s weight raised linearly from 0 to 1 over the first ``steps`` steps, logged as
    ``{term}_weight`` (``kl_warmup_epochs``: a VAE's KL).

    Example
    -------
    >>> Warmup("kl", 4).weights(1), Warmup("kl", 4).logged(8)
    ({'kl': 0.25}, {'kl_weight': 1.0})
    """

    term: str
    steps: int

    def weights(self, step: int) -> dict[str, float]:
        return {self.term: min(1.0, step / self.steps)}

    def logged(self, step: int) -> dict[str, float]:
        return {f"{self.term}_weight": min(1.0, step / self.steps)}


def step_hooks(model: Autoencoder, cfg: TrainConfig, steps_per_epoch: int) -> list[StepHook]:
    """The step hooks ``cfg`` asks for, checked against ``model``."""
    hooks: list[StepHook] = []
    if cfg.kl_warmup_epochs:
        kl = [p for p in model.penalties if p.name == "kl"]
        if not kl:
            raise ValueError("kl_warmup_epochs needs a model with a KL term (preset 'vae'); this one has none")
        if all(getattr(p, "beta", 1.0) == 0 for p in kl):
            raise ValueError(f"option kl_warmup_epochs={cfg.kl_warmup_epochs!r} has no effect here: the KL term is "
                             "weighted by beta=0")
        hooks.append(Warmup("kl", math.ceil(cfg.kl_warmup_epochs * steps_per_epoch)))
    return hooks


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the peak learning rate at optimiser step ``step`` of ``total``."""
    if schedule == "onecycle":
        warmup = warmup or int(0.3 * total)
        if step < warmup:
            return 1 / 25 + (1 - 1 / 25) * step / warmup
        t = (step - warmup) / max(1, total - warmup)
        return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine":
        t = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return 1.0
