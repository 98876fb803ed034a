"""Predictive sparse decomposition (Kavukcuoglu, Ranzato & LeCun 2008; Goodfellow et al., *Deep Learning* §14.8).

The energy of a code h for an input x (the paper's, with ½ factors so that γ → 0 is scikit-learn's lasso):

    E(h) = ½‖x − W h‖²/σ² + λ‖h‖₁ + ½γ‖h − f(x)‖²      W (D, K): the dictionary, columns of unit norm
    f(x) = s ⊙ tanh(V x + c)                             the fast predictor (the paper's F, s a gain per unit)

Training alternates inside every step: FISTA (Beck & Teboulle 2009) finds h* = argmin E for the batch, from
f(x) and with the parameters fixed; the optimiser's step on E at h* then updates W through the reconstruction
(the Gaussian likelihood's −log p(x | Wh*)) and f through ½γ‖h* − f(x)‖². At test time f(x) alone is the code:
one matrix product instead of an optimisation; :func:`optimal_code` solves for h* when the sparse code is wanted.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .._checks import integer, number
from ..core.model import Autoencoder, Batch, Encoder, Penalty, evaluating, fp32
from .sae import INIT_NORM, UnitColumns

__all__ = ["DictionaryDecoder", "PSDEncoder", "Predictor", "PredictionError", "optimal_code", "sparse_code"]


@torch.no_grad()
def sparse_code(x: Tensor, w: Tensor, lam: float, *, sigma: float = 1.0, gamma: float = 0.0,
                target: Tensor | None = None, steps: int = 100, h0: Tensor | None = None,
                tol: float = 0.0) -> Tensor:
    """h* = argmin_h ½‖x − W h‖²/σ² + λ‖h‖₁ + ½γ‖h − target‖² per row, by FISTA; shape (B, K).

    ``x`` (B, D), ``w`` (D, K); ``h0`` starts the iteration (default: ``target``, else 0). Stops after
    ``steps`` iterations, or earlier once no entry moves by more than ``tol``. With γ = 0 this is the lasso
    that scikit-learn's ``sparse_encode(x, w.T, alpha=λσ², algorithm="lasso_cd")`` solves.

    Example
    -------
    >>> w = torch.eye(2)
    >>> sparse_code(torch.tensor([[3.0, 0.5]]), w, lam=1.0)  # soft thresholding: an orthonormal dictionary
    tensor([[2., 0.]])
    """
    dtype = torch.promote_types(fp32(x).dtype, fp32(w).dtype)  # bf16 (autocast) computes in fp32, fp64 stays fp64
    x, w = x.to(dtype), w.to(dtype)
    if gamma and target is None:
        raise ValueError("gamma > 0 needs the target code f(x)")
    target = target.to(dtype) if target is not None else None
    gram, xw = w.t() @ w / sigma**2, x @ w / sigma**2  # (K, K), (B, K): each iteration is then O(B K²)
    # the gradient's Lipschitz constant ‖W‖₂²/σ² + γ, from the smaller of WᵀW and WWᵀ (one value; for K = 2D the
    # (D, D) one is ~9× cheaper, and this runs every training step)
    small = gram if w.shape[1] <= w.shape[0] else w @ w.t() / sigma**2
    lip = float(torch.linalg.eigvalsh(small.double())[-1]) + gamma
    h = (h0 if h0 is not None else target if target is not None else x.new_zeros(len(x), w.shape[1])).to(dtype)
    y, t = h, 1.0
    for _ in range(integer(steps, "steps", 1)):
        grad = y @ gram - xw
        if gamma:
            grad = grad + gamma * (y - target)
        h_new = F.softshrink(y - grad / lip, lam / lip) if lam else y - grad / lip
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        y = h_new + (t - 1) / t_new * (h_new - h)
        moved = (h_new - h).abs().max() if tol else None
        h, t = h_new, t_new
        if moved is not None and moved <= tol:
            break
    return h


class Predictor(nn.Module):
    """f(x) = s ⊙ tanh(V x + c), (B, D) → (B, K): the paper's fast encoder; the gain s starts at 1."""

    def __init__(self, d: int, code_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(d, code_size)
        self.gain = nn.Parameter(torch.ones(code_size))

    def forward(self, x: Tensor) -> Tensor:
        return self.gain * torch.tanh(self.linear(x))


class DictionaryDecoder(nn.Module):
    """r = W h, (B, K) → (B, D): a dictionary of K unit-norm columns (a parametrisation, exact after every step),
    no bias (as in the paper and in scikit-learn's dictionary learning)."""

    def __init__(self, code_size: int, d: int) -> None:
        super().__init__()
        w = torch.randn(d, code_size)
        self.weight = nn.Parameter(w / w.norm(dim=0, keepdim=True) * INIT_NORM)
        parametrize.register_parametrization(self, "weight", UnitColumns())

    def forward(self, h: Tensor) -> Tensor:
        return F.linear(h, self.weight.to(h.dtype))


class PSDEncoder(Encoder):
    """In training, h* found by FISTA from f(x) (a constant for the optimiser); otherwise f(x).

    ``pred`` holds the last f(x) (B, K), with its graph, for :class:`PredictionError`.
    """

    def __init__(self, predictor: Predictor, decoder: DictionaryDecoder, lam: float, gamma: float, steps: int,
                 sigma: float) -> None:
        super().__init__()
        self.predictor = predictor
        object.__setattr__(self, "decoder", decoder)  # a reference: W belongs to the decoder
        # γ = 0 would leave f untrained: the code at test time would be noise
        self.lam, self.gamma = number(lam, "lam", 0), number(gamma, "gamma", 0, low_open=True)
        self.steps, self.sigma = integer(steps, "steps", 1), sigma
        self.pred: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        p = self.pred = self.predictor(x)
        if not self.training:
            return p
        return sparse_code(x, self.decoder.weight.detach(), self.lam, sigma=self.sigma, gamma=self.gamma,
                           target=p.detach(), steps=self.steps).to(p.dtype)


class PredictionError(Penalty):
    """½γ‖h* − f(x)‖² per sample, averaged: trains the predictor towards the optimal codes (0 outside training,
    where the code is f(x) itself)."""

    name = "prediction"

    def __init__(self, gamma: float) -> None:
        super().__init__()
        self.gamma = number(gamma, "gamma", 0)

    def check(self, model: Autoencoder) -> None:
        if not isinstance(model.encoder, PSDEncoder):
            raise ValueError("the prediction penalty needs a PSD encoder (preset 'psd')")

    def forward(self, b: Batch) -> Tensor:
        pred = b.model.encoder.pred
        return 0.5 * self.gamma * (b.h.detach() - pred).square().sum(1).mean()


@torch.no_grad()
def optimal_code(model: Autoencoder, x: Tensor, *, gamma: float = 0.0, steps: int = 500, tol: float = 1e-6) -> Tensor:
    """The sparse code h* of a PSD model for ``x`` (B, D): FISTA on its dictionary, from f(x), shape (B, K).

    γ = 0 (default): the lasso code argmin ½‖x − W h‖²/σ² + λ‖h‖₁ that f(x) learns to predict; the model's γ:
    the code its training used.

    Example
    -------
    >>> import aekit
    >>> model = aekit.create("psd", (4,), code_size=3)
    >>> optimal_code(model, torch.ones(2, 4)).shape
    torch.Size([2, 3])
    """
    enc = model.encoder
    if not isinstance(enc, PSDEncoder):
        raise ValueError("optimal_code needs a PSD model (preset 'psd')")
    with evaluating(model):
        p = enc.predictor(x.to(enc.predictor.linear.weight))
        return sparse_code(x, model.decoder.weight, enc.lam, sigma=enc.sigma, gamma=gamma, target=p if gamma else None,
                           h0=p, steps=steps, tol=tol)
