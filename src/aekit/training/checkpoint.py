"""Checkpoints: safetensors tensors + JSON, written atomically, never pickled.

A saved model is ``model.safetensors`` (weights) and ``model.json`` (the config
that rebuilds the architecture). Trainer state for exact resume is one
``trainer.safetensors`` file whose metadata carries the JSON half.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from ..core.model import Autoencoder
from ..presets.catalog import from_config
from ..store.atomic import atomic_write, write_json  # noqa: F401  (re-exported: callers import them from here)
from ..store.run import Run, read_json

FORMAT = "aekit-1"


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Save tensors with a JSON metadata blob, atomically."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    blob = {"format": FORMAT, "json": json.dumps(meta)}
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=blob))


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Load what :func:`save_tensors` wrote, or raise ``ValueError`` if it is missing or corrupted.

    ``safe_open`` validates the header (every tensor inside the file, offsets consistent) without
    reading the data; each tensor is then read straight into its own buffer, so loading needs the
    file's size in memory once (safetensors' ``load_file`` holds the memory map and the copies: 2×).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint not found: {path}")
    try:
        with safe_open(path, "pt") as f:
            blob = f.metadata() or {}
            keys = list(f.keys())
        meta = json.loads(blob["json"]) if blob.get("format") == FORMAT else {}
        tensors = _read_data(path, keys)
    except (SafetensorError, OSError, json.JSONDecodeError, KeyError, RecursionError) as e:
        raise ValueError(f"corrupted checkpoint {path}: {e}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"corrupted checkpoint {path}: its metadata is not a JSON object")
    return tensors, meta


_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


def _read_data(path: Path, keys: list[str]) -> dict[str, torch.Tensor]:
    """The tensors ``keys`` of a safetensors file whose header ``safe_open`` has validated (little-endian)."""
    out = {}
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        for k in keys:
            info = header[k]
            if info["dtype"] not in _DTYPES:
                raise KeyError(f"unsupported dtype {info['dtype']} of {k}")
            t = torch.empty(info["shape"], dtype=_DTYPES[info["dtype"]])
            start, end = info["data_offsets"]
            f.seek(8 + n + start)
            if f.readinto(t.reshape(-1).view(torch.uint8).numpy()) != end - start:
                raise OSError(f"truncated data of {k}")
            out[k] = t
    return out


def header_shapes(path: str | os.PathLike, prefix: str = "") -> dict[str, tuple[int, ...]]:
    """Shapes of the tensors named ``prefix…`` in a safetensors file, read from its header only."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint not found: {path}")
    try:
        with safe_open(path, "pt") as f:
            return {k[len(prefix):]: tuple(f.get_slice(k).get_shape()) for k in f.keys() if k.startswith(prefix)}
    except (SafetensorError, OSError) as e:
        raise ValueError(f"corrupted checkpoint {path}: {e}") from None


def build_for(config: Any, weights: Path, prefix: str = "") -> Autoencoder:
    """The model that ``config`` describes, on the ``meta`` device (nothing allocated), after checking
    that its tensor shapes are those stored in ``weights`` — so a crafted config can neither allocate
    before it is checked nor load into the wrong architecture. Load with ``assign=True``."""
    try:
        with torch.device("meta"):
            model = from_config(config)
    except (NotImplementedError, RuntimeError) as e:  # a user's builder that computes with tensor values
        if "meta" not in str(e) and not isinstance(e, NotImplementedError):
            raise ValueError(f"the config of {weights} cannot be built ({str(e).splitlines()[0][:200]})") from None
        model = from_config(config)  # built for real: that builder cannot be checked before it allocates
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    _compare(own, header_shapes(weights, prefix), str(weights))
    return model


def _compare(own: dict[str, tuple], stored: dict[str, tuple], where: str, what: str = "the config") -> None:
    """Name every tensor that the model (``own``) and the file (``stored``) disagree on (the first 8 of each kind)."""
    missing = sorted(set(own) - set(stored))
    extra = sorted(set(stored) - set(own))
    shapes = [f"{k} {tuple(stored[k])} in the file vs {tuple(v)}" for k, v in own.items()
              if k in stored and tuple(stored[k]) != tuple(v)]

    def listed(label: str, items: list[str]) -> str:
        return f"{label} ({len(items)}): {', '.join(items[:8])}{', …' if len(items) > 8 else ''}" if items else ""

    parts = [listed("not in the file", missing), listed("not in the model", extra), listed("shape mismatch", shapes)]
    if any(parts):
        raise ValueError(f"{where}: weights do not match {what} ({'; '.join(p for p in parts if p)})")


def all_finite(v: Tensor) -> bool:
    """Whether every value of ``v`` is finite."""
    # max and min propagate NaN and reach ±inf: no full-size temporary, unlike isfinite(v).all()
    return v.numel() == 0 or bool(torch.isfinite(v.amax()) & torch.isfinite(v.amin()))


def nonfinite(state: dict[str, Tensor], unset: set[str] = frozenset()) -> list[str]:
    """The floating-point tensors of ``state`` that hold NaN or inf, but for those named in ``unset`` that are all
    NaN (a buffer's "not set yet", see :func:`unset_buffers`)."""
    return [k for k, v in state.items() if v.is_floating_point() and not all_finite(v.detach())
            and not (k in unset and bool(v.isnan().all()))]


def unset_buffers(model: torch.nn.Module) -> set[str]:
    """The state-dict names of buffers whose modules declare (class attribute ``unset``) that all-NaN means "not
    set yet": e.g. BatchTopK's threshold before its first training batch."""
    return {f"{name}.{b}" if name else b for name, m in model.named_modules() for b in getattr(m, "unset", ())}


def check_finite(model: torch.nn.Module, what: str, error: type[Exception] = FloatingPointError) -> None:
    """Raise ``error`` if a tensor of ``model`` (a parameter or a buffer) is NaN or inf; a buffer its module
    declares unset may be all NaN."""
    bad = nonfinite(model.state_dict(), unset_buffers(model))
    if bad:
        raise error(f"{what}: non-finite (NaN or inf) values in {', '.join(bad[:3])}"
                    f"{' and more' if len(bad) > 3 else ''}")


def _model_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.parent
    return p / Run.MODEL, p / Run.MODEL_CONFIG


def save_model(model: Autoencoder, directory: str | os.PathLike) -> Path:
    """Save ``model`` as ``directory/model.safetensors`` + ``directory/model.json``.

    Example
    -------
    >>> from aekit import create
    >>> save_model(create("linear", (4,), code_size=2), "/tmp/aekit-doc")  # doctest: +ELLIPSIS
    PosixPath('/tmp/aekit-doc')

    A model built by a preset (aekit's or one of yours, see :func:`aekit.register`) records the
    config that rebuilds it; a model you composed by hand records its shapes only, and reloads with
    ``load_model(directory, model=<the same architecture, freshly built>)``.
    """
    check_finite(model, "not saved")
    weights, config = _model_paths(directory)
    save_tensors(weights, model.state_dict(), {"model": model.config})
    write_json(config, model.config if model.config is not None else hand_built(model))
    return weights.parent


def hand_built(model: Autoencoder) -> dict:
    """What ``model.json`` says of a model composed by hand: no preset, its shapes and parts' classes."""
    return {"preset": None, "input_shape": list(model.input_shape), "code_size": model.code_size,
            "parts": {k: type(getattr(model, k)).__name__ for k in ("encoder", "decoder", "likelihood")},
            "note": "composed by hand: rebuild it and load with load_model(path, model=...)"}


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str, assign: bool = False) -> None:
    """``model.load_state_dict(state)`` with a one-line error naming what disagrees."""
    _compare({k: tuple(v.shape) for k, v in model.state_dict().items()}, {k: tuple(v.shape) for k, v in state.items()},
             where)
    model.load_state_dict(state, assign=assign)


def read_config(path: Path) -> Any:
    """A JSON file that must exist, as a ``ValueError`` naming the file when it is missing or broken."""
    return read_json(path, "checkpoint not found", "corrupted checkpoint config")


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", *,
               model: Autoencoder | None = None) -> Autoencoder:
    """Rebuild a model saved by :func:`save_model` (a directory or its ``model.safetensors``).

    The config is checked against the weights file's header before anything is allocated, and the
    weights are loaded into the model without a second copy: peak memory stays near the file's size.
    Non-finite weights are refused. ``model``: load into this freshly built model instead (required
    for a model composed by hand, which has no config); every tensor that differs is named.

    Example
    -------
    >>> import aekit, torch
    >>> mine = aekit.Autoencoder(torch.nn.Linear(4, 2), torch.nn.Linear(2, 4), aekit.Gaussian(),
    ...                          input_shape=(4,), code_size=2)
    >>> _ = save_model(mine, "/tmp/aekit-doc-mine")
    >>> like = aekit.Autoencoder(torch.nn.Linear(4, 2), torch.nn.Linear(2, 4), aekit.Gaussian(),
    ...                          input_shape=(4,), code_size=2)
    >>> torch.equal(load_model("/tmp/aekit-doc-mine", model=like).encoder.weight, mine.encoder.weight)
    True
    """
    weights, config_path = _model_paths(path)
    config = read_config(config_path)
    if model is not None:
        _compare({k: tuple(v.shape) for k, v in model.state_dict().items()}, header_shapes(weights),
                 str(weights), "the model passed")
        state, _ = load_tensors(weights)
        model.load_state_dict(state)
        check_finite(model, f"refusing to load {weights}", ValueError)
        return model.to(device).eval()
    if isinstance(config, dict) and "preset" in config and config["preset"] is None:
        raise ValueError(f"{weights.parent} holds a model composed by hand ({config.get('parts')}): it has no "
                         "recipe to rebuild it; build the same architecture and pass it: load_model(path, model=...)")
    model = build_for(config, weights)
    state, _ = load_tensors(weights)
    load_state(model, state, str(weights.parent), assign=True)
    check_finite(model, f"refusing to load {weights}", ValueError)
    return model.to(device).eval()
