"""Trainer state for exact resume: everything a run depends on, in one ``trainer.safetensors`` whose
metadata carries the JSON half — at an epoch's end or inside an epoch (:class:`Position`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..core.model import Autoencoder
from .checkpoint import check_finite, load_state, load_tensors, nonfinite, save_tensors, unset_buffers
from .config import as_saved


@dataclass
class Position:
    """Where a run is inside an epoch: what exact resume from a mid-epoch checkpoint needs.

    ``rng`` is the shuffle generator's state at the start of the epoch (it draws the epoch's
    permutation again), ``batch`` the batches done, ``sums``/``stat_sums`` the running per-term
    sums (sample-weighted) over ``samples`` samples, ``skipped`` the batches dropped by
    ``nan_policy="skip"``.
    """

    rng: Tensor
    batch: int = 0
    samples: int = 0
    sums: dict[str, Tensor] = field(default_factory=dict)
    stat_sums: dict[str, Tensor] = field(default_factory=dict)
    skipped: int = 0
    seconds: float = 0.0


@dataclass
class TrainerState:
    """The objects of a run that exact resume must save and restore together.

    ``best`` holds early stopping's ``loss``, ``bad`` (epochs without improvement) and
    ``state`` (the best weights, or ``None``); ``hist`` is the run's :class:`~aekit.training.loop.History`;
    ``pos`` the position inside an unfinished epoch (``None`` at an epoch boundary).
    """

    model: Autoencoder
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    shuffle: torch.Generator
    hist: Any
    best: dict
    pos: Position | None = None

    def early_stop(self, row: dict[str, Any], patience: int | None, min_delta: float) -> bool:
        """Track the best validation loss (weights in ``best``, epoch in ``hist``); True when patience has run out."""
        if patience is None:
            return False
        if row["val_loss"] < self.best["loss"] - min_delta:
            self.best.update(loss=row["val_loss"], bad=0)
            self.best["state"] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.hist.best_epoch = row["epoch"]
            return False
        self.best["bad"] += 1
        return self.patience_spent(patience)

    def patience_spent(self, patience: int | None) -> bool:
        """Whether early stopping has ended this run (a restored run too: resuming it then trains no further)."""
        return patience is not None and self.best["bad"] >= patience


def save_trainer(path: Path, epoch: int, s: TrainerState, cfg: dict, rngs: list[Tensor] | None = None) -> None:
    """Save everything needed to continue exactly: weights, optimiser, schedule, RNGs, history, best
    weights, and the position inside epoch ``epoch + 1`` if it has begun. Non-finite weights are refused."""
    check_finite(s.model, f"epoch {epoch + 1}: the trainer state was not saved (the last checkpoint is kept)")
    tensors = {f"model.{k}": v for k, v in s.model.state_dict().items()}
    osd = s.opt.state_dict()
    ostate_meta: dict[str, dict] = {}
    for i, st in osd["state"].items():
        for k, v in st.items():
            if isinstance(v, Tensor):
                tensors[f"optim.{i}.{k}"] = v
            else:
                ostate_meta.setdefault(str(i), {})[k] = v
    tensors["rng.torch"] = torch.get_rng_state() if rngs is None else rngs[0]
    for r, state in enumerate(rngs or [], start=0):  # every rank's noise stream, for a resume on as many ranks
        if r:
            tensors[f"rng.torch.{r}"] = state
    tensors["rng.shuffle"] = s.shuffle.get_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    if s.best["state"] is not None:
        tensors.update({f"best.{k}": v for k, v in s.best["state"].items()})
    pos = None
    if s.pos is not None and s.pos.batch > 0:
        tensors["pos.rng"] = s.pos.rng
        tensors.update({f"pos.sum.{k}": v for k, v in s.pos.sums.items()})
        tensors.update({f"pos.stat.{k}": v for k, v in s.pos.stat_sums.items()})
        pos = {"batch": s.pos.batch, "samples": s.pos.samples, "skipped": s.pos.skipped, "seconds": s.pos.seconds}
    meta = {
        "epoch": epoch,
        "position": pos,
        "train": cfg,
        "model": s.model.config,
        "optim_groups": osd["param_groups"],
        "optim_scalars": ostate_meta,
        "sched": {k: v for k, v in s.sched.state_dict().items() if k != "lr_lambdas"},
        "history": {"rows": s.hist.rows, "best_epoch": s.hist.best_epoch},
        "best": {k: v for k, v in s.best.items() if k != "state"},
    }
    save_tensors(path, tensors, meta)


# Options that may differ on resume without changing the result (nan_policy: resuming with "skip"
# is how a run stopped by a bad batch gets past it).
RESUME_FREE = {"progress", "device", "threads", "checkpoint_every", "checkpoint_steps", "checkpoint_minutes", "max_time",
               "nan_policy"}


def restore_trainer(path: Path, s: TrainerState, cfg: dict, defaults: dict, rank: int = 0) -> int:
    """Restore what :func:`save_trainer` wrote into freshly built objects; returns the epochs completed
    (``s.pos`` is set when the checkpoint is from inside the next one). ``defaults``: the training
    options' defaults, for checkpoints written before an option existed."""
    tensors, meta = load_tensors(path)
    if not meta:
        raise ValueError(f"corrupted checkpoint {path}: no trainer metadata")
    try:
        return _restore(tensors, meta, s, cfg, defaults, path, rank)
    except ValueError:
        raise
    except (KeyError, TypeError, AttributeError, IndexError, RuntimeError) as e:  # crafted or damaged metadata
        raise ValueError(f"corrupted checkpoint {path}: bad trainer state ({type(e).__name__}: {str(e)[:200]})") from None


def _like(v: Any, ref: Any, where: str) -> None:
    """``v`` has the JSON shape of ``ref`` (what a freshly built object saves): else ``ValueError`` naming ``where``."""
    if ref is None or isinstance(ref, bool):  # flags saved as None or a boolean (foreach, fused, ...)
        ok, want = v is None or isinstance(v, bool), "true, false or null"
    elif isinstance(ref, int):
        ok, want = type(v) is int, "an integer"
    elif isinstance(ref, float):
        ok, want = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v), "a finite number"
    elif isinstance(ref, str):
        ok, want = isinstance(v, str), "a string"
    elif isinstance(ref, (list, tuple)):
        ok, want = isinstance(v, list) and len(v) == len(ref), f"a list of {len(ref)}"
        for i, (a, b) in enumerate(zip(v, ref) if ok else ()):
            _like(a, b, f"{where}[{i}]")
    elif isinstance(ref, dict):
        ok, want = isinstance(v, dict) and set(v) <= set(ref), f"an object with keys among {', '.join(map(str, ref))}"
        for k in (v if ok else ()):
            _like(v[k], ref[k], f"{where}.{k}")
    else:
        ok, want = True, ""
    if not ok:
        raise ValueError(f"{where} must be {want}, got {str(v)[:60]!r}")


def _count(v: Any, where: str, low: int = 0, high: float = math.inf) -> int:
    if not (type(v) is int and low <= v <= high):
        raise ValueError(f"{where} must be an integer in [{low}, {high}], got {str(v)[:60]!r}")
    return v


def check_header(meta: dict, s: TrainerState, epochs: int) -> None:
    """The trainer header (the JSON half of ``trainer.safetensors``) against what this run's fresh objects save:
    every value of the optimiser's groups and the schedule of their type, the position, history and early-stopping
    state in range. ``ValueError`` naming the first bad field (a crafted header never reaches torch)."""
    if not isinstance(meta.get("train"), dict):
        raise ValueError("train must be an object of training options")
    epoch = _count(meta.get("epoch"), "epoch", 0, epochs)
    groups = s.opt.state_dict()["param_groups"]
    _like(meta.get("optim_groups"), groups, "optim_groups")
    for i, (g, ref) in enumerate(zip(meta["optim_groups"], groups)):
        if g.get("params") != ref["params"]:
            raise ValueError(f"optim_groups[{i}].params must be {ref['params']}, got {str(g.get('params'))[:60]!r}")
    scalars = meta.get("optim_scalars")
    if not (isinstance(scalars, dict) and all(k.isdigit() and isinstance(v, dict) for k, v in scalars.items())):
        raise ValueError("optim_scalars must map parameter indices to objects")
    for i, st in scalars.items():
        for k, v in st.items():
            _like(v, 0.0, f"optim_scalars.{i}.{k}")
    fresh = {k: v for k, v in s.sched.state_dict().items() if k != "lr_lambdas"}
    _like(meta.get("sched"), fresh, "sched")
    _count(meta["sched"].get("last_epoch"), "sched.last_epoch", -1)
    pos = meta.get("position")
    if pos is not None:
        if not (isinstance(pos, dict) and set(pos) == {"batch", "samples", "skipped", "seconds"}):
            raise ValueError(f"position must be null or an object of batch, samples, skipped and seconds, got "
                             f"{str(pos)[:60]!r}")
        _count(pos["batch"], "position.batch", 1)
        _count(pos["samples"], "position.samples")
        _count(pos["skipped"], "position.skipped")
        _like(pos["seconds"], 0.0, "position.seconds")
    hist = meta.get("history")
    if not (isinstance(hist, dict) and isinstance(hist.get("rows"), list)):
        raise ValueError("history must be an object with a list of rows")
    rows = hist["rows"]
    if len(rows) != epoch:
        raise ValueError(f"history.rows must hold one row per epoch done ({epoch}), got {len(rows)}")
    for i, row in enumerate(rows):
        if not (isinstance(row, dict) and row.get("epoch") == i + 1 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in row.values())):
            raise ValueError(f"history.rows[{i}] must be the numbers of epoch {i + 1}, got {str(row)[:60]!r}")
    if hist.get("best_epoch") is not None:
        _count(hist["best_epoch"], "history.best_epoch", 1, max(epoch, 1))
    best = meta.get("best")
    if not (isinstance(best, dict) and isinstance(best.get("loss"), (int, float)) and not isinstance(best["loss"], bool)
            and not math.isnan(best["loss"])):
        raise ValueError("best.loss must be a number")
    _count(best.get("bad"), "best.bad")


def _restore(tensors: dict[str, Tensor], meta: dict, s: TrainerState, cfg: dict, defaults: dict, path: Path,
             rank: int) -> int:
    try:
        check_header(meta, s, cfg["epochs"])
    except ValueError as e:
        raise ValueError(f"corrupted checkpoint {path}: trainer header: {e}") from None
    unset = {f"{part}.{k}" for k in unset_buffers(s.model) for part in ("model", "best")}
    bad = nonfinite(tensors, unset)
    if bad:
        raise ValueError(f"corrupted checkpoint {path}: non-finite (NaN or inf) values in {', '.join(bad[:3])}")
    saved = {**defaults, **as_saved(meta["train"])}
    # more epochs than the run had trains on (the schedule is planned over the new total from here on)
    diff = [k for k, v in cfg.items() if k not in RESUME_FREE and saved.get(k) != v
            and not (k == "epochs" and isinstance(saved.get(k), int) and v > saved[k])]
    if diff:
        raise ValueError(
            "cannot resume with different training options: "
            + ", ".join(f"{k}={cfg[k]!r} (run has {saved.get(k)!r})" for k in diff)
        )
    if meta["model"] != s.model.config:
        raise ValueError(f"cannot resume: the run's model config differs from this model's ({meta['model']})")
    epoch = meta["epoch"]
    dev = next(s.model.parameters()).device
    load_state(s.model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, str(path))
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = v  # load_state_dict moves each to its parameter's device
    for i, scalars in meta["optim_scalars"].items():
        state.setdefault(int(i), {}).update(scalars)
    sched = meta["sched"]
    try:  # torch's own loaders: their complaints about a damaged file become one line
        s.opt.load_state_dict({"state": state, "param_groups": meta["optim_groups"]})
        s.sched.load_state_dict({**sched, "lr_lambdas": [None] * len(s.opt.param_groups)})
        if rank == 0 or f"rng.torch.{rank}" in tensors:
            torch.set_rng_state(tensors["rng.torch" if rank == 0 else f"rng.torch.{rank}"])
        else:  # a rank the saved run did not have: its own stream, deterministic in (seed, rank, epoch)
            torch.manual_seed(hash((cfg["seed"], rank, meta["epoch"])) % 2**63)
        s.shuffle.set_state(tensors["rng.shuffle"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as e:
        raise ValueError(f"corrupted checkpoint {path}: bad optimiser, schedule or RNG state ({str(e)[:200]})") from None
    s.hist.rows[:] = list(meta["history"]["rows"])
    s.hist.best_epoch = meta["history"]["best_epoch"]
    s.best.update({k: meta["best"][k] for k in ("loss", "bad")})
    if any(k.startswith("best.") for k in tensors):
        s.best["state"] = {k[5:]: v.to(dev) for k, v in tensors.items() if k.startswith("best.")}
    pos = meta.get("position")
    if pos and rank:  # the saved sums are the run's: one rank holds them, the others start from zero
        pos = {**pos, "samples": 0}
        tensors = {k: v for k, v in tensors.items() if not k.startswith(("pos.sum.", "pos.stat."))}
    s.pos = None if not pos else Position(
        rng=tensors["pos.rng"], batch=int(pos["batch"]), samples=int(pos["samples"]), skipped=int(pos["skipped"]),
        seconds=float(pos["seconds"]),
        sums={k[8:]: v.to(dev) for k, v in tensors.items() if k.startswith("pos.sum.")},
        stat_sums={k[9:]: v.to(dev) for k, v in tensors.items() if k.startswith("pos.stat.")})
    return epoch
