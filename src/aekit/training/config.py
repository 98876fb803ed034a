"""What the trainer does, as plain values: :class:`TrainConfig`, each option's constraint and the thread limit.

Torch-free, so that the command line's help and option checks load without torch; the optimiser and
schedules these values name are in :mod:`aekit.training.optim`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from typing import Any

from .._checks import BOOL, Constraint, Interval, OneOf, check, validate


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform says, else the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# More threads than this only wait on each other, and far more crash OpenMP (100,000: a segfault in libgomp)
MAX_THREADS = 4 * cores()


class _Threads(Constraint):
    """What ``threads`` accepts: -1 every core, 0 automatic, or a count up to :data:`MAX_THREADS`."""

    def accepts(self, v: object) -> bool:
        return Interval(int, -1, MAX_THREADS).accepts(v)

    def __str__(self) -> str:
        return f"-1, 0 or a count up to {MAX_THREADS} (4 × the {cores()} cores this process may use)"


THREADS = _Threads()


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
TRAINING, HARDWARE = "Training", "Hardware and checkpoints"  # the command line's help panels


def option(default: Any, accepts: list[Constraint], flag: str | None, panel: str = TRAINING,
           resume: bool = False) -> Any:
    """One trainer option, declared once: its default, what it accepts, the help of its ``aekit train`` flag
    (``None``: no flag of its own) and whether ``--resume`` may change it. :class:`TrainConfig`'s fields are
    these; the flags, the TOML ``[train]`` keys, :data:`CONSTRAINTS` and the estimators' checks follow."""
    return field(default=default, metadata={"accepts": accepts, "flag": flag, "panel": panel, "resume": resume})


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

    epochs: int = option(30, [Interval(int, 1)], "Passes over the training data.", resume=True)
    batch_size: int = option(128, [Interval(int, 1)], "Samples per step.")
    lr: float = option(1e-3, [_POSITIVE], "Peak learning rate.")
    optimizer: str = option("adam", [OneOf(*OPTIMIZERS)], "adam, adamw or sgd.")
    weight_decay: float = option(0.0, [Interval(float, 0)], "Weight decay.")
    decay_all: bool = option(False, [BOOL], "Decay every parameter, not only the weights (with --weight-decay).")
    momentum: float = option(0.9, [Interval(float, 0, 1, "left")], "SGD momentum.")
    schedule: str = option("constant", [OneOf(*SCHEDULES)], "constant, cosine or onecycle.")
    warmup_epochs: float = option(0.0, [Interval(float, 0)], "Linear warm-up length in epochs.")
    val_fraction: float = option(0.1, [Interval(float, 0, 1, "left")], "Held-out share of the training data.")
    patience: int | None = option(None, [_NONE, Interval(int, 1)], "Early-stopping patience in epochs.")
    min_delta: float = option(0.0, [Interval(float, 0)], "Smallest validation improvement that counts.")
    grad_clip: float | None = option(None, [_NONE, _POSITIVE], "Clip the gradient norm to this.")
    seed: int = option(0, [Interval(int, 0, 2**63, "left")], None)  # the command's --seed seeds the data split too
    device: str = option("auto", [_Device()], "cpu, cuda or auto.  [default: auto]", HARDWARE, resume=True)
    precision: str = option("fp32", [OneOf(*PRECISIONS)], "fp32 or bf16 (autocast).", HARDWARE)
    checkpoint_every: int = option(1, [_COUNT], "Save trainer state every N epochs.", HARDWARE, resume=True)
    checkpoint_steps: int = option(0, [_COUNT], "Also save it every N optimiser steps, mid-epoch (0: off).",
                                   HARDWARE, resume=True)
    checkpoint_minutes: float = option(15.0, [Interval(float, 0)], "Also save it every M minutes of training "
                                       "(0: off).  [default: 15]", HARDWARE, resume=True)
    nan_policy: str = option("raise", [OneOf(*NAN_POLICIES)], "On a non-finite loss: raise (stop at that step) or "
                             "skip (drop the batch).", HARDWARE, resume=True)
    shuffle_buffer: int = option(0, [_COUNT], "Streamed data: rows shuffled together (0: about 256 MB of stored "
                                 "data).", HARDWARE)
    max_time: float | None = option(None, [_NONE, _POSITIVE], "Stop after the epoch that passes this many seconds.",
                                    HARDWARE, resume=True)
    kl_warmup_epochs: float = option(0.0, [Interval(float, 0)], "Raise the KL weight from 0 to 1 over this many "
                                     "epochs.")
    threads: int = option(0, [THREADS], "CPU threads for training: 0 automatic (one for a small model), -1 every "
                          "core.  [default: 0]", HARDWARE, resume=True)
    progress: bool = option(True, [BOOL], None, resume=True)  # the command's --quiet

    def validate(self) -> "TrainConfig":
        """Raise ``ValueError`` naming the first bad value and the accepted range."""
        validate(vars(self), CONSTRAINTS)
        check(self.warmup_epochs, "warmup_epochs", Interval(float, 0, self.epochs, "left"))  # (needs epochs)
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
# what each training option accepts (cross-field rules are in TrainConfig.validate)
CONSTRAINTS = {f.name: f.metadata["accepts"] for f in fields(TrainConfig)}


def as_saved(train: dict[str, Any]) -> dict[str, Any]:
    """A saved run's training options with the value that reproduces how it trained for each option added
    since (a run with weight decay from before ``decay_all`` decayed every parameter)."""
    legacy = {"decay_all": True} if train.get("weight_decay") and "decay_all" not in train else {}
    return {**legacy, **train}


