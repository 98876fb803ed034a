"""Sparse autoencoders on a network's activations (dictionary learning for interpretability), as parts.

The conventions the SAE papers share, each a part of the composed :class:`~aekit.core.model.Autoencoder`:

    x̄ = s·x                      activations scaled so that E‖x̄‖² = d (s set once from the training data)
    h = σ(W_e (x̄ − b_d) + b_e)   pre-encoder bias b_d = the decoder's bias (initialised to the geometric
                                 median of x̄), W_e initialised to W_dᵀ; σ: ReLU, TopK, BatchTopK, JumpReLU
                                 (``gain``: σ(g ⊙ (…)), g the norms of the decoder's free columns)
    r = (W_d h + b_d) / s        decoder columns of unit norm (a parametrisation: exact after every step)
    loss = d‖x − r‖²/E‖x‖² + Ω   the squared error in scaled units (:class:`ScaledGaussian`), plus penalties

Papers: Bricken et al. 2023 and Anthropic's April 2024 update (ReLU, decoder-norm-weighted L1); Gao et al.
2024 (TopK, AuxK); Bussmann et al. 2024 (BatchTopK); Rajamanoharan et al. 2024 (JumpReLU).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .._checks import OneOf, check, integer, number
from ..core.likelihoods import Likelihood
from ..core.model import Batch, CodeConstraint, Encoder, Penalty, TracksDeadUnits, fp32

# AuxK revives latents silent for this many training tokens: SAELens's 1000 steps of 4096 (Gao et al. use 10 M in
# runs of billions). In benchmarks/sae.py 1 M tokens cost FVU for fewer dead latents; 4.1 M matched SAELens's FVU
DEAD_AFTER = 4_096_000
INIT_NORM = 0.1  # the initial norm of the decoder's free parameters and of the encoder's rows


def geometric_median(x: Tensor, iters: int = 100, tol: float = 1e-7) -> Tensor:
    """The point minimising Σᵢ‖xᵢ − m‖ (Weiszfeld's algorithm), shape (D,); the mean starts it."""
    m = x.mean(0)
    for _ in range(iters):
        w = 1 / (x - m).norm(dim=1).clamp_min(1e-12)
        new = (w[:, None] * x).sum(0) / w.sum()
        if (new - m).norm() <= tol * max(1.0, float(m.norm())):
            return new
        m = new
    return m


def data_scale(x: Tensor) -> float:
    """The factor s that scales activations ``x`` (N, D) so that E‖s·x‖² = D."""
    return math.sqrt(x.shape[1] / float(x.double().square().sum(1).mean().clamp_min(1e-30)))


class UnitColumns(nn.Module):
    """Parametrisation W = V / ‖V‖ per column: the decoder's dictionary directions have unit norm."""

    def forward(self, v: Tensor) -> Tensor:
        return v / v.norm(dim=0, keepdim=True).clamp_min(1e-12)


class SAEDecoder(nn.Module):
    """r = (W_d h + b_d) / s: dictionary W_d (D, K), bias b_d (D,), the data scale s.

    ``prepare(x)`` (once, before training) sets s = √(D / E‖x‖²) and b_d from the scaled data:
    ``b_init`` = ``"median"`` (geometric median), ``"mean"`` or ``"zero"``.
    """

    def __init__(self, code_size: int, d: int, unit_norm: bool = True, b_init: str = "median",
                 gain: bool = False) -> None:
        super().__init__()
        check(b_init, "b_init", OneOf("median", "mean", "zero"))
        if gain and not unit_norm:
            raise ValueError("gain=True needs unit_norm=True (the gain is the norm of the free parameter behind "
                             "unit columns); with unit_norm=False pass gain=False")
        self.b_init, self.gain = b_init, bool(gain)
        w = torch.randn(d, code_size)
        # columns of norm INIT_NORM under the unit-norm parametrisation: Adam's steps, of a fixed size, then turn
        # a direction 10x faster than at norm 1 (SAELens's decoder_init_norm 0.1 does the same)
        self.weight = nn.Parameter(w / w.norm(dim=0, keepdim=True) * (INIT_NORM if unit_norm else 1.0))
        self.bias = nn.Parameter(torch.zeros(d))
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))
        if unit_norm:
            parametrize.register_parametrization(self, "weight", UnitColumns())

    @torch.no_grad()
    def prepare(self, x: Tensor) -> None:
        if self.ready:  # a model trained further keeps its scale and bias
            return
        x = x.double()
        self.scale.fill_(data_scale(x))
        xs = x * self.scale
        b = {"median": lambda: geometric_median(xs[:65_536]), "mean": lambda: xs.mean(0),
             "zero": lambda: torch.zeros_like(xs[0])}[self.b_init]()
        self.bias.copy_(b.to(self.bias))
        self.ready.fill_(True)

    def norms(self) -> Tensor:
        """‖W_d,i‖ per latent, (K,)."""
        return self.weight.norm(dim=0)

    def gains(self) -> Tensor | None:
        """With ``gain``: ‖V_i‖ of the free parameter V behind the unit columns W = V/‖V‖, (K,); else None."""
        return self.parametrizations.weight.original.norm(dim=0) if self.gain else None

    def columns(self, idx: Tensor) -> Tensor:
        """W_d[:, idx] / s, (D, len(idx)): g(h) − g(0) for a code h on those latents alone (AuxK's fast path)."""
        return self.weight[:, idx] / self.scale

    def forward(self, h: Tensor) -> Tensor:
        return F.linear(h, self.weight.to(h.dtype), self.bias.to(h.dtype)) / self.scale


class SAEEncoder(Encoder, TracksDeadUnits):
    """h = σ(g ⊙ (W_e (s·x − b_d) + b_e)), reading s, b_d and g from ``decoder``; W_e starts as W_dᵀ.

    g is 1, or with the decoder's ``gain`` the norms ‖V_i‖ of its free parameter (:meth:`SAEDecoder.gains`).

    Tracks, in training, the tokens since each latent last fired (``since_fired``); latents silent for more
    than ``dead_after`` tokens are :meth:`dead` (AuxK revives them).
    """

    def __init__(self, decoder: SAEDecoder, final: nn.Module, dead_after: int = DEAD_AFTER) -> None:
        super().__init__()
        object.__setattr__(self, "decoder", decoder)  # a reference: b_d and s belong to the decoder
        w = decoder.weight.detach()
        self.weight = nn.Parameter((w.t() * INIT_NORM).contiguous())  # W_e = W_dᵀ, at the decoder parameters' scale
        self.bias = nn.Parameter(torch.zeros(w.shape[1]))
        self.final = final
        self.dead_after = integer(dead_after, "dead_after")
        self.register_buffer("since_fired", torch.zeros(w.shape[1], dtype=torch.long))
        self.pre: Tensor | None = None  # the last training pre-activations (B, K), for AuxK

    def forward(self, x: Tensor) -> Tensor:
        dec = self.decoder
        w, b = self.weight, self.bias
        g = dec.gains()
        if g is not None:  # a learned gain per latent, applied before the selection (SAELens's TopK does this):
            w, b = w * g[:, None], b * g  # g ⊙ (W_e x̄ + b_e), folded into the (K, D) weights, not the (B, K) output
        a = F.linear(x * dec.scale.to(x.dtype) - dec.bias.to(x.dtype), w.to(x.dtype), b.to(x.dtype))
        h = self.final(a)
        if self.training:
            self.pre = a
            self.record_firing(h)
        return h


class BatchTopK(CodeConstraint):
    """BatchTopK (Bussmann et al. 2024): keep the k·B largest activations of the whole batch (ReLU first).

    In training the smallest kept activation of each batch updates a threshold θ (a running mean); in
    evaluation every activation above θ is kept, so a token's code no longer depends on its batch.
    """

    unset = ("threshold",)  # NaN until the first training batch

    def __init__(self, k: int, momentum: float = 0.99) -> None:
        super().__init__()
        self.k = integer(k, "k")
        self.momentum = number(momentum, "threshold momentum", 0, 1, high_open=True)
        self.register_buffer("threshold", torch.full((), math.nan))  # NaN: no training batch seen yet

    def forward(self, a: Tensor) -> Tensor:
        a = a.relu()
        if not self.training:
            # a tensor choice, not a Python branch on the buffer: the exported graph (aekit.evaluation.deploy) keeps both ways
            return torch.where(self.threshold.isnan(), a, a * (a > self.threshold))
        vals, idx = a.flatten().topk(min(self.k * len(a), a.numel()))
        h = torch.zeros_like(a).flatten().scatter(0, idx, vals).view_as(a)
        with torch.no_grad():
            low = vals[vals > 0].min() if (vals > 0).any() else vals.new_zeros(())
            t = self.threshold
            self.threshold = low.to(t) if t.isnan() else self.momentum * t + (1 - self.momentum) * low.to(t)
        return h


class _JumpReLU(torch.autograd.Function):
    """h = a·H(a − θ); ∂h/∂θ by the straight-through estimate −(θ/ε)·1{|a − θ| < ε/2} (Rajamanoharan et al.)."""

    @staticmethod
    def forward(ctx, a: Tensor, theta: Tensor, eps: float) -> Tensor:
        ctx.save_for_backward(a, theta)
        ctx.eps = eps
        return a * (a > theta)

    @staticmethod
    def backward(ctx, g: Tensor):
        a, theta = ctx.saved_tensors
        near = ((a - theta).abs() < ctx.eps / 2).to(g.dtype)
        return g * (a > theta), (-(theta / ctx.eps) * near * g).sum(0), None


class _Step(torch.autograd.Function):
    """H(a − θ), with ∂/∂θ = −(1/ε)·1{|a − θ| < ε/2} and no gradient to a (the L0 penalty's)."""

    @staticmethod
    def forward(ctx, a: Tensor, theta: Tensor, eps: float) -> Tensor:
        ctx.save_for_backward(a, theta)
        ctx.eps = eps
        return (a > theta).to(a.dtype)

    @staticmethod
    def backward(ctx, g: Tensor):
        a, theta = ctx.saved_tensors
        near = ((a - theta).abs() < ctx.eps / 2).to(g.dtype)
        return None, (-(1 / ctx.eps) * near * g).sum(0), None


class JumpReLU(CodeConstraint):
    """JumpReLU (Rajamanoharan et al. 2024): h = a·H(a − θ) with a learned threshold θ > 0 per latent.

    Thresholds learn through straight-through estimates with a rectangle kernel of width ``bandwidth``;
    the L0 penalty (:class:`L0`) reads ``gates`` = H(a − θ) of the last forward pass.
    """

    def __init__(self, code_size: int, threshold: float = 0.001, bandwidth: float = 0.001) -> None:
        super().__init__()
        self.bandwidth = number(bandwidth, "bandwidth", 0, low_open=True)
        init = number(threshold, "threshold", 0, low_open=True)
        self.log_threshold = nn.Parameter(torch.full((code_size,), math.log(init)))
        self.gates: Tensor | None = None

    def forward(self, a: Tensor) -> Tensor:
        # on the raw pre-activation, as the paper defines it: θ > 0 makes h ≥ 0 without a ReLU, and a ReLU first
        # would move every negative a to 0, inside the kernel's window whenever θ < ε/2
        theta = self.log_threshold.exp().to(a.dtype)
        self.gates = _Step.apply(a, theta, self.bandwidth)
        return _JumpReLU.apply(a, theta, self.bandwidth)


class DecoderNormL1(Penalty):
    """λ·Σᵢ hᵢ‖W_d,i‖ per token, averaged (Anthropic's April 2024 update): L1 that cannot be dodged by
    shrinking h and growing the decoder's columns."""

    name = "l1"

    def __init__(self, lam: float) -> None:
        super().__init__()
        self.lam = number(lam, "L1 lam", 0)

    def check(self, model) -> None:
        if not isinstance(model.decoder, SAEDecoder):
            raise ValueError("DecoderNormL1 needs an SAEDecoder")

    def forward(self, b: Batch) -> Tensor:
        return self.lam * (fp32(b.h).abs() @ fp32(b.model.decoder.norms())).mean()


class L0(Penalty):
    """λ·‖h‖₀ per token, averaged, through JumpReLU's straight-through gates."""

    name = "l0"

    def __init__(self, lam: float) -> None:
        super().__init__()
        self.lam = number(lam, "L0 lam", 0)

    def check(self, model) -> None:
        if not isinstance(getattr(model.encoder, "final", None), JumpReLU):
            raise ValueError("the L0 penalty needs a JumpReLU code")

    def forward(self, b: Batch) -> Tensor:
        return self.lam * fp32(b.model.encoder.final.gates).sum(1).mean()


class ScaledGaussian(Likelihood):
    """A Gaussian whose σ² = E‖x‖² / (2D) is set from the training data (``prepare``), so that

        −log p(x | r) = D‖x − r‖² / E‖x‖² + (D/2)·log(2πσ²)

    is the SAE papers' squared error on activations scaled to E‖x̄‖² = D, plus a constant, in nats.
    """

    name = "gaussian_scaled"

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("sigma", torch.ones(()))
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def prepare(self, x: Tensor) -> None:
        if not self.ready:  # σ² = 1/(2s²): the loss is ‖s·x − s·r‖², s as the decoder's (data_scale)
            self.sigma.fill_(1 / (math.sqrt(2) * data_scale(x)))
            self.ready.fill_(True)

    def nll(self, r: Tensor, x: Tensor) -> Tensor:
        var = self.sigma.to(r.dtype) ** 2
        return 0.5 * (r - x).square().flatten(1).sum(1) / var + 0.5 * x[0].numel() * torch.log(2 * math.pi * var)

    def mean(self, r: Tensor) -> Tensor:
        return r

    def sample(self, r: Tensor) -> Tensor:
        return r + self.sigma.to(r.dtype) * torch.randn_like(r)
