"""Activations are data: what a network computes at named submodules, recorded into shards that ``fit`` streams.

:func:`capture` runs any ``torch.nn.Module`` over a stream of inputs with forward hooks on the named
submodules and writes, under ``out``::

    capture.json   what is captured (model, layers, dtype) and how far: inputs done, shards written
    <layer>/       a shard directory (aekit.store.rows): one row (d,) per token for token-id inputs (B, T) -> B·T
                   rows, else one row per input; its manifest's meta names the model, layer and dtype
    tokens/        token-id inputs only: the contexts (n_contexts, T) int32; row i is context i // T, position i % T

Memory is bounded by a shard; a capture that stops (a crash, a kill) resumes from its last complete shard
when called again with the same inputs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._checks import OneOf, check
from ..core.model import evaluating
from ..store.atomic import write_json
from ..store.rows import ShardRows, bf16
from ..store.shards import ShardWriter

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
STATE = "capture.json"
TOKENS = "tokens"


class _Enough(Exception):
    """Raised by the last hook of a forward pass: the layers after it are not needed."""


def model_name(model: nn.Module) -> str:
    """A Hugging Face model's ``name_or_path``, else its class name."""
    return getattr(getattr(model, "config", None), "_name_or_path", None) or type(model).__name__


def submodule(model: nn.Module, name: str) -> nn.Module:
    """``model``'s submodule ``name`` (dotted, as in ``named_modules()``), or an error that lists some."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        hint = ", ".join(names[:12]) + (f", … ({len(names)} in all)" if len(names) > 12 else "")
        raise ValueError(f"{type(model).__name__} has no submodule {name!r}; its submodules: {hint}") from None


def _ids(batch: Tensor | Mapping[str, Tensor]) -> Tensor:
    """The tensor that sets a batch's size (and its token ids, for a text model)."""
    if isinstance(batch, Mapping):
        if "input_ids" in batch:
            return batch["input_ids"]
        return next(iter(batch.values()))
    return batch


def _slice(batch: Tensor | Mapping[str, Tensor], lo: int, hi: int) -> Tensor | Mapping[str, Tensor]:
    return {k: v[lo:hi] for k, v in batch.items()} if isinstance(batch, Mapping) else batch[lo:hi]


def _rows(out: Any, ids: Tensor, text: bool, layer: str) -> Tensor:
    """A hooked module's output as rows: (B, T, d) -> (B·T, d) for token ids (B, T), else (B, ...) -> (B, D)."""
    h = out[0] if isinstance(out, (tuple, list)) else out
    if not isinstance(h, Tensor):
        raise ValueError(f"layer {layer!r} returned {type(h).__name__}, not a tensor")
    if text:
        if h.dim() != 3 or tuple(h.shape[:2]) != tuple(ids.shape):
            raise ValueError(f"layer {layer!r} returned shape {tuple(h.shape)}; for token ids of shape "
                             f"{tuple(ids.shape)} it must be (batch, tokens, features)")
        return h.reshape(-1, h.shape[-1])
    return h.reshape(len(h), -1)


def _numpy(t: Tensor) -> np.ndarray:
    return t.view(torch.int16).numpy().view(bf16()) if t.dtype == torch.bfloat16 else t.numpy()


def capture(model: nn.Module, layers: str | Sequence[str], inputs: Iterable[Tensor | Mapping[str, Tensor]],
            out: str | Path, *, dtype: str = "float32", rows_per_shard: int = 65_536,
            max_rows: int | None = None, meta: dict[str, Any] | None = None) -> dict[str, Path]:
    """Record ``model``'s activations at ``layers`` over ``inputs`` into shard directories under ``out``.

    Parameters
    ----------
    model
        Any module; run in eval mode without gradients, each batch moved to its device. The forward pass
        stops after the last hooked layer.
    layers
        Submodule names (``model.named_modules()``), e.g. ``"transformer.h.3"``; a tuple output gives its
        first element (a Hugging Face block's hidden states).
    inputs
        Batches: token ids (B, T) (integer; one row per token), other tensors (B, ...) (one row per input),
        or mappings of tensors passed as keyword arguments (``input_ids`` sets the batch).
    out
        Directory; if it holds an unfinished capture of the same model, layers and dtype, the capture goes
        on from its last complete shard (``inputs`` must yield the same batches again).
    dtype
        ``"float32"`` or ``"bfloat16"`` (stored as ``.safetensors``, half the disk).
    rows_per_shard
        Rows per layer held before a shard of every layer is written (the memory bound).
    max_rows
        Stop once this many rows per layer are written (whole inputs: at most one input's rows more).

    Returns the shard directory of each layer, e.g. to ``fit`` an SAE on.

    Example
    -------
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> dirs = capture(net, "1", (torch.randn(5, 4) for _ in range(3)), "/tmp/aekit-doc-acts")
    >>> ShardRows(dirs["1"]).n, ShardRows(dirs["1"]).sample_shape
    (15, (8,))
    """
    layers = [layers] if isinstance(layers, str) else list(layers)
    if not layers or len(set(layers)) != len(layers) or TOKENS in layers:
        raise ValueError(f"layers must be distinct submodule names (not {TOKENS!r}), got {layers}")
    check(dtype, "dtype", OneOf(*DTYPES))
    if rows_per_shard < 1 or (max_rows is not None and max_rows < 1):
        raise ValueError(f"rows_per_shard and max_rows must be positive, got {rows_per_shard}, {max_rows}")
    modules = {name: submodule(model, name) for name in layers}
    out = Path(out)
    run = _Capture(model, layers, out, dtype, meta)
    if run.state.get("done"):
        return {name: out / name for name in layers}
    handles = [m.register_forward_hook(run.hook(name)) for name, m in modules.items()]
    device = next(iter(model.parameters()), torch.empty(0)).device
    try:
        with evaluating(model), torch.inference_mode():
            for batch in _skip(inputs, run.inputs):
                if not run.take(batch, device, max_rows):
                    break
                if sum(len(p) for p in run.pending[layers[0]]) >= rows_per_shard:
                    run.flush()
        if run.text is None:
            raise ValueError("capture got no inputs")
        run.flush(final=True)
    finally:
        for h in handles:
            h.remove()
    return {name: out / name for name in layers}


class _Capture:
    """One capture into ``out``: its state file (what is done), the rows held per layer, the shard writers."""

    def __init__(self, model: nn.Module, layers: list[str], out: Path, dtype: str, meta: dict[str, Any] | None) -> None:
        self.model, self.layers, self.out, self.dtype, self.meta = model, layers, out, dtype, meta
        self.tdtype = DTYPES[dtype]
        self.settings = {"model": model_name(model), "layers": layers, "dtype": str(self.tdtype).removeprefix("torch.")}
        self.state = _resume_state(out, self.settings)
        if not self.state:
            out.mkdir(parents=True, exist_ok=True)
            self.state = {**self.settings, "inputs": 0, "rows": 0, "text": None, "shards": 0, "done": False}
            _write_state(out, self.state)  # first: a directory with this file is a capture, however early it stopped
        self.inputs, self.rows, self.text = self.state.get("inputs", 0), self.state.get("rows", 0), self.state.get("text")
        self.writers: dict[str, ShardWriter] = {}
        self.pending: dict[str, list[Tensor]] = {name: [] for name in layers}
        self.tokens: list[Tensor] = []
        self.got: dict[str, Tensor] = {}
        self.ids: Tensor | None = None

    def hook(self, name: str) -> Callable:
        """A forward hook that keeps layer ``name``'s rows of this batch; the pass stops after the last layer."""
        def fn(module, args, output):
            self.got[name] = _rows(output, self.ids, bool(self.text), name).detach().to("cpu", self.tdtype)
            if len(self.got) == len(self.layers):
                raise _Enough
        return fn

    def take(self, batch: Tensor | Mapping[str, Tensor], device: torch.device, max_rows: int | None) -> bool:
        """Run the model on ``batch`` (cut to what ``max_rows`` still needs) and hold its rows; False once done."""
        ids = _ids(batch)
        if self.text is None:
            self.text = not ids.is_floating_point() and ids.dim() == 2
        self.state.setdefault("rows_per_input", int(ids.shape[1]) if self.text else 1)
        if max_rows is not None:
            need = math.ceil((max_rows - self.rows) / self.state["rows_per_input"])
            if need <= 0:
                return False
            batch, ids = _slice(batch, 0, need), ids[:need]
        self.got.clear()
        self.ids = ids
        try:
            moved = {k: v.to(device) for k, v in batch.items()} if isinstance(batch, Mapping) else batch.to(device)
            self.model(**moved) if isinstance(moved, Mapping) else self.model(moved)
        except _Enough:
            pass
        missing = [n for n in self.layers if n not in self.got]
        if missing:
            raise ValueError(f"layers {missing} did not run in {type(self.model).__name__}'s forward pass")
        for name in self.layers:
            self.pending[name].append(self.got[name])
        if self.text:
            self.tokens.append(ids.to("cpu", torch.int32))
        self.inputs += len(ids)
        self.rows += len(self.got[self.layers[0]])
        return True

    def flush(self, final: bool = False) -> None:
        """Write the rows held as one shard of every layer (and the tokens), then the state that says so."""
        if not self.writers:
            self._open_writers()
        if self.pending[self.layers[0]]:
            for name in self.layers:
                self.writers[name].write(_numpy(torch.cat(self.pending[name])))
                self.pending[name].clear()
            if self.text:
                self.writers[TOKENS].write(torch.cat(self.tokens).numpy().astype(np.int32))
                self.tokens.clear()
        self.state.update(self.settings, inputs=self.inputs, rows=self.rows, text=self.text,
                          shards=len(self.writers[self.layers[0]].shards), done=final)
        _write_state(self.out, self.state)

    def _open_writers(self) -> None:
        state, text, keep = self.state, self.text, self.state.get("shards", 0)
        extra = {"model": self.settings["model"], "dtype": self.settings["dtype"], "text": bool(text),
                 "rows_per_input": state["rows_per_input"], **(self.meta or {})}
        fmt = "safetensors" if self.dtype in ("bfloat16", "bf16") else "npy"
        for name in self.layers:
            self.writers[name] = ShardWriter(self.out / name, fmt, {**extra, "layer": name,
                                                                    "tokens": f"../{TOKENS}" if text else None},
                                             keep=keep)
        if text:
            self.writers[TOKENS] = ShardWriter(self.out / TOKENS, "npy", {"model": self.settings["model"]}, keep=keep)


def _skip(inputs: Iterable, n: int) -> Iterator:
    """``inputs`` without their first ``n`` rows (batches split where needed): where a resumed capture goes on."""
    for batch in inputs:
        size = len(_ids(batch))
        if n >= size:
            n -= size
            continue
        yield _slice(batch, n, size) if n else batch
        n = 0


def _resume_state(out: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The saved progress of an earlier capture into ``out`` with the same settings; {} for a new one."""
    path = out / STATE
    if not path.is_file():
        if out.exists() and any(out.iterdir()):
            raise ValueError(f"{out} exists and is not an aekit capture: choose a new directory")
        return {}
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is damaged ({type(e).__name__}: {e})") from None
    differ = {k: (state.get(k), v) for k, v in settings.items() if state.get(k) != v}
    if differ:
        said = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in differ.items())
        raise ValueError(f"{out} holds a capture with other settings ({said}): choose a new directory")
    return state


def _write_state(out: Path, state: dict[str, Any]) -> None:
    write_json(out / STATE, state)


def contexts(directory: str | Path) -> tuple[ShardRows, ShardRows | None, int]:
    """A captured layer's rows, its token contexts (``None`` for tensor inputs) and the rows per input:
    row ``i`` comes from context ``i // T`` at position ``i % T``."""
    rows = ShardRows(directory)
    meta = json.loads((Path(directory) / "manifest.json").read_text()).get("meta", {})
    tokens = ShardRows(Path(directory) / meta["tokens"]) if meta.get("tokens") else None
    return rows, tokens, int(meta.get("rows_per_input", 1))
