"""Checkpoints: safetensors tensors + JSON, written atomically, never pickled.

A saved model is ``model.safetensors`` (weights) and ``model.json`` (the config
that rebuilds the architecture). Trainer state for exact resume is one
``trainer.safetensors`` file whose metadata carries the JSON half.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .model import Autoencoder
from .presets import from_config

FORMAT = "aekit-1"


def _atomic(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` and move the result onto ``path`` only if it succeeded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2)
    _atomic(Path(path), lambda tmp: Path(tmp).write_text(text))


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Save tensors with a JSON metadata blob, atomically."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    blob = {"format": FORMAT, "json": json.dumps(meta)}
    _atomic(Path(path), lambda tmp: save_file(tensors, tmp, metadata=blob))


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Load what :func:`save_tensors` wrote, or raise ``ValueError`` if it is missing or corrupted."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint not found: {path}")
    try:
        tensors = load_file(path)
        from safetensors import safe_open

        with safe_open(path, "pt") as f:
            blob = f.metadata() or {}
        meta = json.loads(blob["json"]) if blob.get("format") == FORMAT else {}
    except (SafetensorError, OSError, json.JSONDecodeError, KeyError) as e:
        raise ValueError(f"corrupted checkpoint {path}: {e}") from None
    return tensors, meta


def _model_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.parent
    return p / "model.safetensors", p / "model.json"


def save_model(model: Autoencoder, directory: str | os.PathLike) -> Path:
    """Save ``model`` as ``directory/model.safetensors`` + ``directory/model.json``.

    Example
    -------
    >>> from aekit.presets import create
    >>> save_model(create("linear", (4,), code_size=2), "/tmp/aekit-doc")  # doctest: +ELLIPSIS
    PosixPath('/tmp/aekit-doc')
    """
    if model.config is None:
        raise ValueError("model has no config: build it with aekit.presets.create to make it saveable")
    weights, config = _model_paths(directory)
    save_tensors(weights, model.state_dict(), {"model": model.config})
    write_json(config, model.config)
    return weights.parent


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """``model.load_state_dict(state)`` with a one-line error naming what disagrees."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if k in state and state[k].shape != v.shape]
    if missing or extra or shapes:
        parts = [f"missing {missing[:3]}" if missing else "", f"unexpected {extra[:3]}" if extra else "",
                 f"shape mismatch {shapes[:3]}" if shapes else ""]
        raise ValueError(f"{where}: weights do not match the config ({'; '.join(p for p in parts if p)})")
    model.load_state_dict(state)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> Autoencoder:
    """Rebuild a model saved by :func:`save_model` (a directory or its ``model.safetensors``)."""
    weights, config_path = _model_paths(path)
    if not config_path.is_file():
        raise ValueError(f"checkpoint not found: {config_path}")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"corrupted checkpoint config {config_path}: {e}") from None
    model = from_config(config)
    state, _ = load_tensors(weights)
    load_state(model, state, str(weights.parent))
    return model.to(device).eval()


# ---------------------------------------------------------------------------- trainer state


@dataclass
class TrainerState:
    """The objects of a run that exact resume must save and restore together.

    ``best`` holds early stopping's ``loss``, ``bad`` (epochs without improvement) and
    ``state`` (the best weights, or ``None``); ``hist`` is the run's :class:`~aekit.train.History`.
    """

    model: Autoencoder
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    shuffle: torch.Generator
    hist: Any
    best: dict


def save_trainer(path: Path, epoch: int, s: TrainerState, cfg: dict) -> None:
    """Save everything needed to continue exactly: weights, optimiser, schedule, RNGs, history, best weights."""
    tensors = {f"model.{k}": v for k, v in s.model.state_dict().items()}
    osd = s.opt.state_dict()
    ostate_meta: dict[str, dict] = {}
    for i, st in osd["state"].items():
        for k, v in st.items():
            if isinstance(v, Tensor):
                tensors[f"optim.{i}.{k}"] = v
            else:
                ostate_meta.setdefault(str(i), {})[k] = v
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.shuffle"] = s.shuffle.get_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    if s.best["state"] is not None:
        tensors.update({f"best.{k}": v for k, v in s.best["state"].items()})
    meta = {
        "epoch": epoch,
        "train": cfg,
        "model": s.model.config,
        "optim_groups": osd["param_groups"],
        "optim_scalars": ostate_meta,
        "sched": {k: v for k, v in s.sched.state_dict().items() if k != "lr_lambdas"},
        "history": {"rows": s.hist.rows, "best_epoch": s.hist.best_epoch},
        "best": {k: v for k, v in s.best.items() if k != "state"},
    }
    save_tensors(path, tensors, meta)


# Options that may differ on resume without changing the result.
_RESUME_FREE = {"progress", "device", "checkpoint_every", "max_time"}


def restore_trainer(path: Path, s: TrainerState, cfg: dict) -> int:
    """Restore what :func:`save_trainer` wrote into freshly built objects; returns the epoch reached."""
    tensors, meta = load_tensors(path)
    if not meta:
        raise ValueError(f"corrupted checkpoint {path}: no trainer metadata")
    saved = meta["train"]
    diff = [k for k, v in cfg.items() if k not in _RESUME_FREE and saved.get(k) != v]
    if diff:
        raise ValueError(
            "cannot resume with different training options: "
            + ", ".join(f"{k}={cfg[k]!r} (run has {saved.get(k)!r})" for k in diff)
        )
    if meta["model"] != s.model.config:
        raise ValueError(f"cannot resume: the run's model config differs from this model's ({meta['model']})")
    dev = next(s.model.parameters()).device
    load_state(s.model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, str(path))
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = v  # load_state_dict moves each to its parameter's device
    for i, scalars in meta["optim_scalars"].items():
        state.setdefault(int(i), {}).update(scalars)
    s.opt.load_state_dict({"state": state, "param_groups": meta["optim_groups"]})
    s.sched.load_state_dict({**meta["sched"], "lr_lambdas": [None] * len(s.opt.param_groups)})
    torch.set_rng_state(tensors["rng.torch"])
    s.shuffle.set_state(tensors["rng.shuffle"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    s.hist.rows[:] = meta["history"]["rows"]
    s.hist.best_epoch = meta["history"]["best_epoch"]
    s.best.update(meta["best"])
    if any(k.startswith("best.") for k in tensors):
        s.best["state"] = {k[5:]: v.to(dev) for k, v in tensors.items() if k.startswith("best.")}
    return int(meta["epoch"])
