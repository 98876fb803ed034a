"""The model's mean loss over data, in eval mode: what validation and ``aekit evaluate`` report."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..core.model import EVAL_BATCH, Autoencoder, batches_on, evaluating
from ..core.tensors import as_tensor
from ..store.rows import open_rows
from .dist import Context
from .sources import Stream, stored_check, streamable

__all__ = ["evaluate"]


@torch.no_grad()
def evaluate(model: Autoencoder, x: Any, batch_size: int = EVAL_BATCH, corrupt: bool = False) -> dict[str, float]:
    """Mean loss, named terms and stats (see :class:`~aekit.core.model.Output`) of ``model`` over ``x`` (array-like
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



def shared_eval(model: Autoencoder, val: Any, n_val: int, ctx: Context) -> dict[str, float]:
    """``evaluate`` on this rank's share of the validation data, combined over the ranks."""
    res = evaluate(model, val)
    if not ctx.distributed:
        return res
    mine = val.n if isinstance(val, Stream) else len(val)
    totals = ctx.sums({k: v * mine for k, v in res.items()}, next(model.parameters()).device)
    return {k: v / n_val for k, v in totals.items()}
