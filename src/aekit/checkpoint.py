"""Checkpoints: safetensors tensors + JSON, written atomically, never pickled.

A saved model is ``model.safetensors`` (weights) and ``model.json`` (the config
that rebuilds the architecture). Trainer state for exact resume is one
``trainer.safetensors`` file whose metadata carries the JSON half.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
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
