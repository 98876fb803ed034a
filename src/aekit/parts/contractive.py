"""The contractive penalty λ‖∂f(x)/∂x‖²_F (Rifai et al. 2011), three ways.

- ``closed``: the encoder says it in closed form (:meth:`~aekit.core.model.Encoder.jacobian_norm`); for
  one affine map W x + b and an elementwise σ (:class:`~aekit.core.networks.mlp.MLP`),
  ‖J‖²_F = Σⱼ σ'(aⱼ)² ‖Wⱼ‖², σ' read off h = σ(a) itself: no extra forward or backward pass.
- ``stochastic``: for any f, E_u ‖Jᵀu‖² = ‖J‖²_F for u with E[uuᵀ] = I
  (Rademacher). Each of ``projections`` vector-Jacobian products is one backward
  pass through the encoder on the graph already built: the cost does not grow
  with the code size, and the estimate and its gradient are unbiased.
- ``exact``: the full Jacobian with ``torch.func`` (vmap of jacrev), for small
  sizes and for tests.

Never one backward pass per code unit.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import jacrev, vmap

from .._checks import OneOf, check, integer, number
from ..core.model import Autoencoder, Batch, Encoder, Penalty

METHODS = ("auto", "closed", "stochastic", "exact")

def frobenius_stochastic(h: Tensor, x: Tensor, projections: int) -> Tensor:
    """Per-sample unbiased estimate of ‖∂h/∂x‖²_F, shape (B,); ``h`` must be computed from ``x``."""
    est = 0.0
    for _ in range(projections):
        u = torch.empty_like(h).bernoulli_(0.5).mul_(2).sub_(1)  # Rademacher: E[uuᵀ] = I
        (g,) = torch.autograd.grad(h, x, u, create_graph=True, retain_graph=True)
        est = est + g.flatten(1).square().sum(1)
    return est / projections


def frobenius_exact(encoder: nn.Module, x: Tensor) -> Tensor:
    """Per-sample exact ‖∂f/∂x‖²_F, shape (B,), from the full Jacobian (B, K, D)."""
    jac = vmap(jacrev(lambda xi: encoder(xi.unsqueeze(0)).squeeze(0)))(x)
    return jac.flatten(1).square().sum(1)


class Contractive(Penalty):
    """λ‖∂f(x̃)/∂x̃‖²_F averaged over the batch.

    Parameters
    ----------
    lam
        Weight λ ≥ 0.
    method
        ``"auto"`` (closed form when the encoder allows it, else exact for codes of at
        most 8 units, else stochastic), ``"closed"``, ``"stochastic"`` or ``"exact"``.
    projections
        Number m of random projections of the stochastic estimate (any other method: an error if not 1).

    Example
    -------
    >>> from aekit import create
    >>> create("contractive", (1, 8, 8), code_size=32).penalties[0].method
    'closed'
    """

    name = "contractive"

    def __init__(self, lam: float, method: str = "auto", projections: int = 1) -> None:
        super().__init__()
        check(method, "contractive method", OneOf(*METHODS))
        self.lam, self.method = number(lam, "contractive lam", 0), method
        self.projections = integer(projections, "projections")

    @property
    def needs_input_grad(self) -> bool:  # type: ignore[override]
        return self.method == "stochastic"

    def _method(self, model: Autoencoder) -> str:
        """The method this penalty uses on ``model``: ``method``, with "auto" resolved."""
        if self.method != "auto":
            return self.method
        return "closed" if _has_closed_form(model) else ("exact" if model.code_size <= 8 else "stochastic")

    def check(self, model: Autoencoder) -> None:
        if self.method == "closed" and not _has_closed_form(model):
            raise ValueError(
                "the closed-form contractive penalty needs an encoder that has one (aekit's MLP of one affine layer "
                "and a sigmoid, tanh, relu, softplus or linear activation); use method='stochastic' or 'exact'"
            )
        method = self._method(model)
        if method != "stochastic" and self.projections != 1:
            raise ValueError(f"option projections={self.projections} has no effect here: the contractive penalty "
                             f"is computed by method {method!r}; projections applies to method='stochastic'")

    def setup(self, model: Autoencoder) -> None:
        self.method = self._method(model)

    def frobenius(self, b: Batch) -> Tensor:
        """Per-sample ‖J‖²_F, shape (B,), by this penalty's method."""
        encoder = b.model.encoder
        if self.method == "closed":
            return encoder.jacobian_norm(b.h)
        if self.method == "exact":
            return frobenius_exact(encoder, b.x_tilde)
        if not b.x_tilde.requires_grad:  # no graph (evaluation under no_grad): build one
            with torch.enable_grad():
                x = b.x_tilde.detach().requires_grad_(True)
                return frobenius_stochastic(encoder(x), x, self.projections).detach()
        return frobenius_stochastic(b.h, b.x_tilde, self.projections)

    def forward(self, b: Batch) -> Tensor:
        return self.lam * self.frobenius(b).mean()


def _has_closed_form(model: Autoencoder) -> bool:
    """Whether ``model``'s encoder gives its Jacobian norm in closed form (:class:`~aekit.core.model.Encoder`)."""
    enc = model.encoder
    if not isinstance(enc, Encoder):
        return False
    w = next(enc.parameters(), None)
    return enc.jacobian_norm(torch.zeros(1, model.code_size, device=w.device if w is not None else None)) is not None
