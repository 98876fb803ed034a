"""The sparse-autoencoder family: sae-relu, sae-topk, sae-batchtopk, sae-jumprelu, registered on import."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from .._checks import integer
from ..core.model import Autoencoder
from ..parts.sae import DEAD_AFTER, L0, BatchTopK, DecoderNormL1, JumpReLU, SAEDecoder, SAEEncoder, ScaledGaussian
from ..parts.sparse import AuxK, TopK
from ._registry import OptionGroup, register


@dataclass(frozen=True)
class Dictionary(OptionGroup):
    """An SAE's dictionary: ``code_size`` latents (0: ``expansion`` × d), unit-norm decoder columns, b_d's start."""

    code_size: int = 0
    expansion: int = 16
    unit_norm: bool = True
    b_init: str = "zero"

    def size(self, d: int) -> int:
        if self.code_size and self.expansion != 16:
            raise ValueError(f"option expansion={self.expansion!r} has no effect here: code_size={self.code_size} "
                             "sets the size")
        return self.code_size or self.expansion * d


@dataclass(frozen=True)
class Revival(OptionGroup):
    """Dead latents: AuxK on those silent for ``dead_after`` tokens; ``gain``, a learned gain per latent."""

    aux_k: int = 256
    aux_coef: float = 2.0
    dead_after: int = DEAD_AFTER
    gain: bool = True


NO_REVIVAL = Revival(aux_k=0, gain=False)


def _sae(input_shape: tuple[int, ...], dic: Dictionary, final, penalties, rev: Revival = NO_REVIVAL):
    d = math.prod(input_shape)
    if not rev.aux_k and (rev.dead_after != DEAD_AFTER or rev.aux_coef != Revival.aux_coef):
        raise ValueError("options dead_after and aux_coef have no effect here: they apply with aux_k > 0 (AuxK)")
    k_size = integer(dic.size(d), "code_size")
    final = final(k_size) if callable(final) and not isinstance(final, nn.Module) else final
    if hasattr(final, "check_size"):
        final.check_size(k_size)  # TopK: k ≤ K, and its firing record
    dec = SAEDecoder(k_size, d, dic.unit_norm, dic.b_init, rev.gain)
    enc = SAEEncoder(dec, final, rev.dead_after)
    aux = [AuxK(min(rev.aux_k, k_size), rev.aux_coef)] if rev.aux_k else []
    return Autoencoder(enc, dec, ScaledGaussian(), input_shape=input_shape, code_size=k_size,
                       penalties=[*penalties, *aux])


def _auto(value: float, paper: float, d: int) -> float:
    """``value``, or for 0 the paper's ``paper`` (set at E‖x‖² = 1) in our units (E‖x̄‖² = D): × √D."""
    return value if value else paper * math.sqrt(d)


# gradients clipped to norm 1, as SAELens does: fewer dead latents with the gain (benchmarks/sae.py)
sae_train = dict(epochs=1, batch_size=4096, lr=4e-4, val_fraction=0.0, grad_clip=1.0)
common = "code_size (0: expansion × d), activations scaled to E‖x̄‖² = d"
topk = "unit-norm decoder columns with a learned gain per latent, b_d from 0"
median = "b_d from the geometric median"

@register("sae-relu", f"SAE: ReLU + decoder-norm-weighted L1 (Anthropic 2024); {common}, free decoder columns, {median}", **sae_train)
def sae_relu(input_shape: tuple[int, ...], dic: Dictionary = Dictionary(unit_norm=False, b_init="median"),
             lam: float = 5.0):
    """ReLU latents with λ·Σ hᵢ‖W_d,i‖; decoder columns free by default (the norm is in the penalty)."""
    return _sae(input_shape, dic, nn.ReLU(), [DecoderNormL1(lam)])

@register("sae-topk", f"SAE: TopK latents + AuxK (Gao et al. 2024); {common}, {topk}", **sae_train)
def sae_topk(input_shape: tuple[int, ...], dic: Dictionary = Dictionary(), k: int = 32,
             rev: Revival = Revival()):
    """The k largest latents per token (ReLU after TopK); AuxK models the residual with dead latents.

    ``gain``: a learned gain per latent before the selection, the norm of the decoder's free parameter
    (free columns, ``unit_norm=False``, need ``gain=False``). The defaults (the gain, b_d from 0, ``dead_after``
    4.1 M tokens, ``aux_coef`` 2 rather than Gao et al.'s 1/32) were each chosen against SAELens in
    ``benchmarks/sae.py``: each brought FVU or the share of dead latents level with SAELens's or below it, at no
    cost in CE loss recovered (the README quotes the table).
    """
    return _sae(input_shape, dic, TopK(k, positive=True, track=False), [], rev)

@register("sae-batchtopk", f"SAE: BatchTopK latents + AuxK (Bussmann et al. 2024); {common}, {topk}", **sae_train)
def sae_batchtopk(input_shape: tuple[int, ...], dic: Dictionary = Dictionary(), k: int = 32,
                  rev: Revival = Revival()):
    """k·B latents over a batch of B tokens in training; a learned global threshold at inference; ``gain``
    and the defaults as ``sae-topk``."""
    return _sae(input_shape, dic, BatchTopK(k), [], rev)

@register("sae-jumprelu", f"SAE: JumpReLU latents + L0 penalty (Rajamanoharan et al. 2024); {common}, "
          f"unit-norm decoder columns, {median}", **sae_train)
def sae_jumprelu(input_shape: tuple[int, ...], dic: Dictionary = Dictionary(b_init="median"),
                 lam: float = 0.05, threshold: float = 0.0, bandwidth: float = 0.0):
    """Learned per-latent thresholds through straight-through estimates; λ·‖h‖₀.

    ``threshold`` and ``bandwidth`` 0: the paper's 0.001 in our units (activations scaled to E‖x̄‖² = d): 0.001·√d.
    """
    d = math.prod(input_shape)
    final = lambda k: JumpReLU(k, _auto(threshold, 0.001, d), _auto(bandwidth, 0.001, d))  # noqa: E731
    return _sae(input_shape, dic, final, [L0(lam)])

