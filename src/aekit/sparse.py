"""Ways to make the code h sparse: L1, KL(ρ ‖ ρ̂), and TopK (k-sparse) with AuxK for dead units."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ._checks import integer, is_number, number
from .model import Autoencoder, Batch, Penalty


class L1(Penalty):
    """λ‖h‖₁ per sample, averaged over the batch.

    Example
    -------
    >>> import torch
    >>> from aekit.model import Batch
    >>> h = torch.tensor([[1.0, -2.0]])
    >>> L1(0.5)(Batch(x=h, x_tilde=h, h=h, r=h, model=None)).item()
    1.5
    """

    name = "l1"

    def __init__(self, lam: float) -> None:
        super().__init__()
        self.lam = number(lam, "L1 lam", 0)

    def forward(self, b: Batch) -> Tensor:
        return self.lam * b.h.abs().flatten(1).sum(1).mean()


def code_range(model: Autoencoder) -> tuple[float, float]:
    """Range of the code units, from the encoder's final activation (−∞, ∞ if unknown)."""
    final = getattr(model.encoder, "final", None)
    if isinstance(final, nn.Sigmoid):
        return 0.0, 1.0
    if isinstance(final, nn.Tanh):
        return -1.0, 1.0
    if isinstance(final, (nn.ReLU, nn.Softplus, TopK)):
        return 0.0, math.inf
    return -math.inf, math.inf


class KLSparsity(Penalty):
    """β·Σⱼ KL(ρ ‖ ρ̂ⱼ) with ρ̂ⱼ the mean activation of unit j, for codes in (0, 1).

    ρ̂ is the batch mean; with ``momentum`` m > 0 it is m·(running mean) + (1 − m)·(batch
    mean), the gradient flowing through the batch part only.

    Example
    -------
    >>> from aekit import create
    >>> create("sparse", (1, 8, 8), penalty="kl", rho=0.05).penalties[0].rho
    0.05
    """

    name = "kl_sparsity"

    def __init__(self, rho: float, beta: float = 1.0, momentum: float = 0.0) -> None:
        super().__init__()
        self.rho = number(rho, "target activation rho", 0, 1, low_open=True, high_open=True)
        self.beta = number(beta, "KL sparsity beta", 0)
        self.momentum = number(momentum, "momentum", 0, 1, high_open=True)
        self.register_buffer("running", torch.empty(0))

    def check(self, model: Autoencoder) -> None:
        self.running = torch.full((model.code_size,), math.nan)  # NaN: no batch seen yet
        lo, hi = code_range(model)
        if lo < 0 or hi > 1:
            raise ValueError(
                f"KL sparsity compares mean activations with rho as probabilities, so it needs a code in (0, 1) "
                f"(a sigmoid code); this encoder's code ranges over ({lo}, {hi})"
            )

    def forward(self, b: Batch) -> Tensor:
        rho_hat = b.h.float().mean(0)  # (K,)
        if self.momentum > 0 and b.model.training:
            if self.running.isnan().any():
                self.running = rho_hat.detach().clone()
            rho_hat = self.momentum * self.running + (1 - self.momentum) * rho_hat
            self.running = rho_hat.detach()
        return self.beta * kl_bernoulli(self.rho, rho_hat).sum()


def kl_bernoulli(rho: float, rho_hat: Tensor, eps: float = 1e-6) -> Tensor:
    """KL(Bernoulli(ρ) ‖ Bernoulli(ρ̂)) elementwise."""
    q = rho_hat.clamp(eps, 1 - eps)
    return rho * torch.log(rho / q) + (1 - rho) * torch.log((1 - rho) / (1 - q))


class TopK(nn.Module):
    """k-sparse code (Makhzani & Frey 2013): keep the k largest units of each sample, zero the rest.

    Parameters
    ----------
    k
        Units kept per sample in training.
    alpha
        At evaluation keep ``round(alpha·k)`` units (Makhzani & Frey use α > 1 for features).
    k_start, anneal_steps
        Anneal k linearly from ``k_start`` down to ``k`` over the first ``anneal_steps``
        training batches (0: no annealing).
    dead_after
        A unit not active for this many training samples counts as dead (for AuxK and stats).

    Example
    -------
    >>> t = TopK(2)
    >>> t(torch.tensor([[0.1, 3.0, -1.0, 2.0]])).tolist()
    [[0.0, 3.0, 0.0, 2.0]]
    """

    constrains_code = True  # a k-sparse code cannot copy the input: no "identity copy" warning

    def __init__(self, k: int, alpha: float = 1.0, k_start: int | None = None, anneal_steps: int = 0,
                 dead_after: int = 10_000) -> None:
        super().__init__()
        self.k = integer(k, "k")
        if not (is_number(alpha) and alpha >= 1):
            raise ValueError(f"alpha must be >= 1, got {alpha!r}")
        self.alpha = float(alpha)
        self.k_start = k if k_start is None else integer(k_start, "k_start", low=k)
        self.anneal_steps = integer(anneal_steps, "anneal_steps", low=0)
        self.dead_after = int(dead_after)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("since_fired", torch.empty(0, dtype=torch.long))
        self.pre: Tensor | None = None  # last pre-activation, for AuxK

    def check_size(self, code_size: int) -> None:
        for name, v in (("k", self.k), ("k_start", self.k_start)):
            if v > code_size:
                raise ValueError(f"{name}={v} is larger than the code size {code_size}")
        self.since_fired = torch.zeros(code_size, dtype=torch.long)

    def current_k(self) -> int:
        """Units kept now: annealed in training, ``alpha·k`` at evaluation."""
        if not self.training:
            return round(self.alpha * self.k)
        if self.anneal_steps and self.k_start > self.k:
            t = min(1.0, self.steps.item() / self.anneal_steps)
            return round(self.k_start - (self.k_start - self.k) * t)
        return self.k

    def forward(self, a: Tensor) -> Tensor:
        k = min(self.current_k(), a.shape[1])
        vals, idx = a.topk(k, dim=1)
        h = torch.zeros_like(a).scatter(1, idx, vals)
        if self.training:
            self.pre = a
            with torch.no_grad():
                fired = (h != 0).any(0)
                self.since_fired += len(a)
                self.since_fired[fired] = 0
                self.steps += 1
        return h

    def dead(self) -> Tensor:
        """Boolean mask (K,) of units inactive for more than ``dead_after`` training samples."""
        return self.since_fired > self.dead_after


class AuxK(Penalty):
    """AuxK (Gao et al. 2024): dead units reconstruct the residual x − x̂ with their top ``k_aux`` pre-activations.

    Gives dead units a gradient so they come back; zero when no unit is dead.
    The auxiliary reconstruction is g(z) − g(0), which is W z for an affine decoder.
    """

    name = "auxk"

    def __init__(self, k_aux: int, coef: float = 1 / 32) -> None:
        super().__init__()
        self.k_aux, self.coef = integer(k_aux, "k_aux"), number(coef, "AuxK coef", 0)

    def check(self, model: Autoencoder) -> None:
        if not isinstance(getattr(model.encoder, "final", None), TopK):
            raise ValueError("AuxK needs a TopK code (the ksparse preset)")

    def forward(self, b: Batch) -> Tensor:
        topk: TopK = b.model.encoder.final
        dead = topk.dead()
        if not b.model.training or topk.pre is None or not dead.any():
            return b.h.new_zeros(())
        z = topk.pre.masked_fill(~dead, -math.inf)
        vals, idx = z.topk(min(self.k_aux, int(dead.sum())), dim=1)
        z_aux = torch.zeros_like(topk.pre).scatter(1, idx, vals)
        dec = b.model.decoder
        e_hat = dec(z_aux) - dec(torch.zeros_like(z_aux[:1]))
        e = (b.x - b.model.likelihood.mean(b.r.float())).detach()
        return self.coef * (e - e_hat).square().sum(1).mean()
