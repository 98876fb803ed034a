"""An SAE judged on activations and inside the network they came from.

:func:`sae_metrics` streams captured activations (:mod:`aekit.evaluation.activations`) through an SAE: fraction of
variance unexplained, L0, dead and dense latents, each latent's firing density. :func:`ce_loss_recovered`
splices the SAE's reconstruction into the layer's output (a forward hook) and compares the language
model's next-token loss with the clean model's and with the layer zero-ablated:

    CE recovered = (CE_zero − CE_sae) / (CE_zero − CE_clean),   KL = E_tokens KL(p_clean ‖ p_sae)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.model import ALIVE, EVAL_BATCH, Autoencoder, batches_on, evaluating
from ..store.rows import open_rows
from .activations import submodule


def _reconstructor(sae: Autoencoder | Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """(N, d) -> (N, d): an aekit model's reconstruction (on its device), or the callable itself."""
    if not isinstance(sae, Autoencoder):
        return sae
    p = next(sae.parameters())
    return lambda h: sae.reconstruct(h.to(p.device, p.dtype)).to(h.device, h.dtype)


@contextmanager
def spliced(model: nn.Module, layer: str, replace: Callable[[Tensor], Tensor]) -> Iterator[None]:
    """Within the block, ``layer``'s output (the first element of a tuple) becomes ``replace(output)``,
    applied to its rows: (B, T, d) -> (B·T, d) -> (B, T, d)."""

    def hook(module, args, out):
        h = out[0] if isinstance(out, (tuple, list)) else out
        new = replace(h.reshape(-1, h.shape[-1])).reshape(h.shape)
        return (new, *out[1:]) if isinstance(out, tuple) else new

    handle = submodule(model, layer).register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _logits(model: nn.Module, ids: Tensor) -> Tensor:
    out = model(ids)
    return out.logits if hasattr(out, "logits") else out


@torch.no_grad()
def ce_loss_recovered(model: nn.Module, layer: str, sae: Autoencoder | Callable[[Tensor], Tensor],
                      batches: Iterable[Tensor]) -> dict[str, float]:
    """Next-token cross-entropy (nats per token) of ``model`` clean, with ``layer``'s output replaced by
    ``sae``'s reconstruction, and zero-ablated; CE loss recovered and the mean KL(clean ‖ spliced).

    ``batches``: token ids (B, T); ``model`` returns logits (B, T, V) (or an object with ``.logits``).

    Example
    -------
    >>> from transformers import GPT2Config, GPT2LMHeadModel
    >>> lm = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=50))
    >>> ce_loss_recovered(lm, "transformer.h.0", lambda h: h, [torch.randint(0, 50, (2, 8))])["ce_recovered"]
    1.0
    """
    recon = _reconstructor(sae)
    sums = {"ce_clean": 0.0, "ce_sae": 0.0, "ce_zero": 0.0, "kl_sae": 0.0, "kl_zero": 0.0}
    n = 0
    with evaluating(model, *([sae] if isinstance(sae, Autoencoder) else [])):
        for ids in batches:
            dev = next(model.parameters()).device
            ids = ids.to(dev)
            target = ids[:, 1:].reshape(-1)
            logp = {}
            for name, repl in (("clean", None), ("sae", recon), ("zero", torch.zeros_like)):
                if repl is None:
                    logits = _logits(model, ids)
                else:
                    with spliced(model, layer, repl):
                        logits = _logits(model, ids)
                logp[name] = F.log_softmax(logits[:, :-1].float(), -1).reshape(len(target), -1)
                sums[f"ce_{name}"] += float(F.nll_loss(logp[name], target, reduction="sum"))
            p = logp["clean"].exp()
            for name in ("sae", "zero"):
                sums[f"kl_{name}"] += float((p * (logp["clean"] - logp[name])).sum())
            n += len(target)
    if n == 0:
        raise ValueError("ce_loss_recovered got no tokens (each context needs at least 2)")
    out = {k: v / n for k, v in sums.items()}
    gap = out["ce_zero"] - out["ce_clean"]
    out["ce_recovered"] = (out["ce_zero"] - out["ce_sae"]) / gap if gap != 0 else float("nan")
    out["tokens"] = n
    return out


@torch.no_grad()
def sae_metrics(sae: Autoencoder, rows: Any, max_rows: int = 10_000_000, dense: float = 0.1,
                batch_size: int = EVAL_BATCH) -> dict[str, Any]:
    """An SAE's reconstruction and sparsity on activations (an array, a ``.npy`` path or shard directory):
    FVU = Σ‖x − r‖² / Σ‖x − x̄‖², mean L0, the share of dead latents (no activation on the first
    ``max_rows`` rows: the last 10 M tokens of the papers) and of dense ones (active on > ``dense`` of
    tokens), and every latent's firing ``density`` (K,). A latent is active on a token when its value
    exceeds :data:`ALIVE` = 10⁻³, as in training's dead-unit count, not merely > 0: a ReLU SAE's many tiny
    positive values are not counted (it lowers sae-relu's L0 by about a quarter).

    Example
    -------
    >>> import numpy as np
    >>> from aekit import create
    >>> m = create("sae-topk", (8,), code_size=16, k=2)
    >>> sorted(sae_metrics(m, np.random.default_rng(0).normal(size=(100, 8)).astype(np.float32)))[:3]
    ['dead_fraction', 'dense_fraction', 'density']
    """
    data = open_rows(rows)
    k = sae.code_size
    fires = torch.zeros(k, dtype=torch.float64)
    err = 0.0
    s = torch.zeros(sae.input_size, dtype=torch.float64)
    sq = l0 = 0.0
    n = 0
    with evaluating(sae):
        for _, chunk in data.chunks():
            chunk = chunk[: max_rows - n]
            for _, x in batches_on(sae, torch.from_numpy(chunk), batch_size):
                h = sae.code(x)
                r = sae.decode(h)
                on = h > ALIVE
                err += float((x - r).double().square().sum())
                s += x.double().sum(0).cpu()
                sq += float(x.double().square().sum())
                l0 += float(on.sum())
                fires += on.sum(0).double().cpu()
                n += len(x)
            if n >= max_rows:
                break
    if n == 0:
        raise ValueError(f"{data.name} holds no rows")
    sx = sq - float(s.square().sum()) / n  # Σ‖x − x̄‖²
    density = (fires / n).numpy()
    return {"fvu": err / sx if sx > 0 else float("nan"), "l0": l0 / n,
            "dead_fraction": float((fires == 0).double().mean()),
            "dense_fraction": float((fires / n > dense).double().mean()), "density": density, "tokens": n}
