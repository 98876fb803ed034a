"""Ways to make the code h sparse: L1, KL(ρ ‖ ρ̂), and TopK (k-sparse) with AuxK for dead units."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .._checks import integer, number
from ..core.model import Autoencoder, Batch, CodeConstraint, Penalty, TracksDeadUnits, fp32


class L1(Penalty):
    """λ‖h‖₁ per sample, averaged over the batch.

    Example
    -------
    >>> import torch
    >>> from aekit.core.model import Batch
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
    if getattr(final, "code_range", None):
        return final.code_range
    if isinstance(final, nn.Sigmoid):
        return 0.0, 1.0
    if isinstance(final, nn.Tanh):
        return -1.0, 1.0
    if isinstance(final, (nn.ReLU, nn.Softplus)):
        return 0.0, math.inf
    return -math.inf, math.inf


class KLSparsity(Penalty):
    """β·Σⱼ KL(ρ ‖ ρ̂ⱼ) with ρ̂ⱼ the mean activation of unit j, for codes in (0, 1).

    ρ̂ is the batch mean; with ``momentum`` m > 0 it is m·(running mean) + (1 − m)·(batch
    mean), the gradient flowing through the batch part only (the first training batch, with no
    running mean yet, uses its own mean and full gradient). ρ̂ is a batch statistic, so the value
    depends on the batch size: :func:`~aekit.training.evaluate.evaluate` reports the mean over its
    evaluation batches (1024 samples each by default), in eval mode without the running mean.

    Example
    -------
    >>> from aekit import create
    >>> create("sparse", (1, 8, 8), penalty="kl", rho=0.05).penalties[0].rho
    0.05
    """

    name = "kl_sparsity"
    unset = ("running",)  # all NaN until a training batch sets it (never, with momentum 0)

    def __init__(self, rho: float, beta: float = 1.0, momentum: float = 0.0) -> None:
        super().__init__()
        self.rho = number(rho, "target activation rho", 0, 1, low_open=True, high_open=True)
        self.beta = number(beta, "KL sparsity beta", 0)
        self.momentum = number(momentum, "momentum", 0, 1, high_open=True)
        self.register_buffer("running", torch.empty(0))

    def check(self, model: Autoencoder) -> None:
        lo, hi = code_range(model)
        if lo < 0 or hi > 1:
            raise ValueError(
                f"KL sparsity compares mean activations with rho as probabilities, so it needs a code in (0, 1) "
                f"(a sigmoid code); this encoder's code ranges over ({lo}, {hi})"
            )

    def setup(self, model: Autoencoder) -> None:
        self.running = torch.full((model.code_size,), math.nan)  # NaN: no batch seen yet

    def forward(self, b: Batch) -> Tensor:
        rho_hat = fp32(b.h).mean(0)  # (K,)
        if self.momentum > 0 and b.model.training:
            if not self.running.isnan().any():  # the first batch has no running mean to mix in
                rho_hat = self.momentum * self.running.to(rho_hat) + (1 - self.momentum) * rho_hat
            self.running = rho_hat.detach().clone()
        return self.beta * kl_bernoulli(self.rho, rho_hat).sum()


def kl_bernoulli(rho: float, rho_hat: Tensor, eps: float = 1e-6) -> Tensor:
    """KL(Bernoulli(ρ) ‖ Bernoulli(ρ̂)) elementwise."""
    q = rho_hat.clamp(eps, 1 - eps)
    return rho * torch.log(rho / q) + (1 - rho) * torch.log((1 - rho) / (1 - q))


class TopK(CodeConstraint, TracksDeadUnits):
    """k-sparse code (Makhzani & Frey 2013): keep the k largest units of each sample, zero the rest.

    Parameters
    ----------
    k
        Units kept per sample: in training, and whenever the model reconstructs or scores.
    alpha
        :meth:`~aekit.core.model.Autoencoder.encode` keeps ``round(alpha·k)`` units: Makhzani & Frey's
        α > 1 for features. Reconstructions, losses and scores always use k, the code the
        decoder was trained on.
    k_start, anneal_steps
        Anneal k linearly from ``k_start`` down to ``k`` over the first ``anneal_steps``
        training batches (0: no annealing).
    dead_after
        A unit that has not fired (value > ``ALIVE`` = 1e-3, Gao et al.'s threshold) for more
        than this many training samples counts as dead (for AuxK and statistics).
    positive
        Apply a ReLU to the k kept values (Gao et al.'s SAEs): at most k units are non-zero.
    track
        Record firing (for AuxK and ``dead``); off where the encoder around it records it (an SAE).

    Example
    -------
    >>> t = TopK(2)
    >>> t(torch.tensor([[0.1, 3.0, -1.0, 2.0]])).tolist()
    [[0.0, 3.0, 0.0, 2.0]]
    """

    def __init__(self, k: int, alpha: float = 1.0, k_start: int | None = None, anneal_steps: int = 0,
                 dead_after: int = 10_000, positive: bool = False, track: bool = True) -> None:
        super().__init__()
        self.k, self.positive, self.track = integer(k, "k"), bool(positive), bool(track)
        self.alpha = number(alpha, "alpha", 1)
        self.k_start = k if k_start is None else integer(k_start, "k_start", low=k)
        self.anneal_steps = integer(anneal_steps, "anneal_steps", low=0)
        self.dead_after = integer(dead_after, "dead_after")
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("since_fired", torch.empty(0, dtype=torch.long))
        self.pre: Tensor | None = None  # last training pre-activation (B, K), for AuxK

    def check_size(self, code_size: int) -> None:
        for name, v in (("k", self.k), ("k_start", self.k_start)):
            if v > code_size:
                raise ValueError(f"{name}={v} is larger than the code size {code_size}")
        if round(self.alpha * self.k) > code_size:
            raise ValueError(f"alpha·k = {self.alpha:g}·{self.k} keeps {round(self.alpha * self.k)} units at encode time, "
                             f"more than the code size {code_size}; alpha must be at most {code_size / self.k:g} here")
        self.since_fired = torch.zeros(code_size, dtype=torch.long)

    def current_k(self) -> int:
        """Units kept now: ``alpha·k`` for features, the annealed k in training, else k."""
        if self.features:
            return round(self.alpha * self.k)
        if self.training and self.anneal_steps and self.k_start > self.k:
            t = min(1.0, self.steps.item() / self.anneal_steps)
            return round(self.k_start - (self.k_start - self.k) * t)
        return self.k

    def forward(self, a: Tensor) -> Tensor:
        k = self.current_k()
        if k > a.shape[1] and not self.features:  # (features keep αk: at most all of them)
            raise ValueError(f"TopK keeps k={k} units per sample, but the code has {a.shape[1]}")
        k = min(k, a.shape[1])
        vals, idx = a.topk(k, dim=1, sorted=False)
        h = torch.zeros_like(a).scatter_(1, idx, vals.relu() if self.positive else vals)  # in place: no copy
        if self.training and not self.features and self.track:
            self.pre = a
            if len(self.since_fired) != a.shape[1]:  # a TopK used on its own, without check_size
                self.since_fired = torch.zeros(a.shape[1], dtype=torch.long, device=a.device)
            self.record_firing(h)
            with torch.no_grad():
                self.steps += 1
        return h


class AuxK(Penalty):
    """AuxK (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"): the dead units model the
    residual e = x − x̂ that the live code leaves.

    z keeps, per sample, the ``k_aux`` largest pre-activations among dead units (ReLU applied, as in
    the paper); ê = μ(r + g(z) − g(0)) − μ(r), with r the detached decoder output and μ the
    likelihood's mean, so ê and e are both in data units (ê = W_dec z for an affine decoder and a
    Gaussian likelihood, exactly the paper's); the term is Gao et al.'s normalised MSE

        coef · Σ_b ‖e_b − ê_b‖² / Σ_b ‖e_b − ē‖²        (ē: the batch mean of e)

    Departures, and why: with a Bernoulli likelihood ê goes through the sigmoid (else a probability
    residual would be fitted in logit units); the term is 0, not a constant, when no unit is dead;
    aekit's reconstruction term is in nats rather than a normalised MSE, which changes the balance
    with ``coef`` only for parameters shared by live and dead units (the decoder bias is not
    among them: g(z) − g(0) cancels it).
    """

    name = "auxk"

    def __init__(self, k_aux: int, coef: float = 1 / 32) -> None:
        super().__init__()
        self.k_aux, self.coef = integer(k_aux, "k_aux"), number(coef, "AuxK coef", 0)

    def check(self, model: Autoencoder) -> None:
        if not model.tracks_dead_units:
            raise ValueError("AuxK needs a code that tracks dead units: TopK (the ksparse preset) or an SAE encoder")

    def forward(self, b: Batch) -> Tensor:
        if b.pre is None or not b.dead.any():  # evaluation, or no dead unit
            return b.h.new_zeros(())
        cols = b.dead.nonzero().squeeze(1)
        pre = b.pre[:, cols]  # (B, n_dead): only dead units take part, so work on those columns alone
        if self.k_aux < len(cols):
            vals, idx = pre.topk(self.k_aux, dim=1)
            z = torch.zeros_like(pre).scatter(1, idx, vals.relu())
        else:  # every dead unit is among the k_aux largest: no selection needed
            z = pre.relu()
        dec, mean = b.model.decoder, b.model.likelihood.mean
        r = fp32(b.r).detach()
        if callable(getattr(dec, "columns", None)):  # an affine decoder: g(z) − g(0) = W[:, cols] z
            shift = fp32(z @ dec.columns(cols).to(z.dtype).t())
        else:
            z_aux = torch.zeros_like(b.pre).index_copy(1, cols, z)
            shift = fp32(dec(z_aux) - dec(torch.zeros_like(z_aux[:1])))  # (B, D)
        e_hat = mean(r + shift) - mean(r)
        e = b.x - mean(r)
        total = (e - e.mean(0)).square().sum()
        if total == 0:
            return b.h.new_zeros(())
        return self.coef * (e - e_hat).square().sum() / total

