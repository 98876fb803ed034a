"""The model's mean loss over data, in eval mode: what validation and ``aekit evaluate`` report."""

from __future__ import annotations

from typing import Any

import torch

from ..core.model import EVAL_BATCH, Autoencoder, evaluating
from .dist import Context
from .sources import Source, ordered

__all__ = ["evaluate"]


@torch.no_grad()
def evaluate(model: Autoencoder, x: Any, batch_size: int = EVAL_BATCH, corrupt: bool = False) -> dict[str, float]:
    """Mean loss, named terms and stats (see :class:`~aekit.core.model.Output`) of ``model`` over ``x`` (array-like
    or tensor, (N, D); a ``.npy`` path, shard directory or dataset, read chunk by chunk; or a
    :class:`~aekit.training.sources.Source`) in eval mode, in
    batches of ``batch_size``.

    ``corrupt=True`` applies the model's corruption first: the denoising loss of corrupted inputs.
    A term that is a batch statistic (KL sparsity's ρ̂) is averaged over the evaluation batches.
    """
    source = ordered(x, model)  # in memory, or streamed: the same batches in the same order either way
    batches, n = source.in_order(batch_size), source.n
    with evaluating(model):
        w = next(model.parameters())
        sums: dict[str, float] = {}
        for xb in batches:
            xb = xb.to(w.device, w.dtype, non_blocking=True)
            out = model(xb, corrupt=corrupt)
            for k, v in {"loss": out.loss, **out.terms, **out.stats}.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(xb)
    return {k: v / n for k, v in sums.items()}



def shared_eval(model: Autoencoder, val: Source, n_val: int, ctx: Context) -> dict[str, float]:
    """``evaluate`` on this rank's share of the validation data, combined over the ranks."""
    res = evaluate(model, val)
    if not ctx.distributed:
        return res
    mine = val.n
    totals = ctx.sums({k: v * mine for k, v in res.items()}, next(model.parameters()).device)
    return {k: v / n_val for k, v in totals.items()}
