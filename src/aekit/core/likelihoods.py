"""Decoder likelihoods −log p(x | r), where r is the decoder output.

Every likelihood returns a per-sample negative log-likelihood in nats, **summed
over the data dimensions**; the model averages it over the batch. This is the
quantity papers report (e.g. 784-pixel sums on MNIST), not a per-pixel mean.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import number


class Likelihood(nn.Module, ABC):
    """Interface: ``nll(r, x)`` per sample, ``mean(r)`` the mean of p(x | r)."""

    name: str

    @abstractmethod
    def nll(self, r: Tensor, x: Tensor) -> Tensor:
        """−log p(x | r), shape (B,): summed over all dimensions of x."""

    @abstractmethod
    def mean(self, r: Tensor) -> Tensor:
        """E[x | r], the reconstruction, same shape as x."""

    @abstractmethod
    def sample(self, r: Tensor) -> Tensor:
        """A draw x ~ p(x | r), same shape as x (torch's RNG)."""

    def validate(self, x: Tensor) -> None:
        """Raise ``ValueError`` if ``x`` is outside this likelihood's support."""


class Bernoulli(Likelihood):
    """Bernoulli on logits: binary cross-entropy for x in [0, 1].

    Example
    -------
    >>> Bernoulli().nll(torch.zeros(2, 3), torch.ones(2, 3)).shape
    torch.Size([2])
    """

    name = "bernoulli"

    def nll(self, r: Tensor, x: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(r, x, reduction="none").flatten(1).sum(1)

    def mean(self, r: Tensor) -> Tensor:
        return torch.sigmoid(r)

    def sample(self, r: Tensor) -> Tensor:
        return torch.bernoulli(torch.sigmoid(r))

    def validate(self, x: Tensor) -> None:
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"the Bernoulli likelihood needs data in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; "
                "scale the data to [0, 1] or use likelihood='gaussian'"
            )


class Gaussian(Likelihood):
    """Gaussian with fixed standard deviation ``sigma``: a scaled squared error.

    −log p(x | r) = ‖x − r‖² / (2σ²) + (D/2)·log(2πσ²), summed over the D dimensions.

    Example
    -------
    >>> Gaussian(sigma=1.0).nll(torch.zeros(1, 2), torch.ones(1, 2))  # 1 + log(2π)
    tensor([2.8379])
    """

    name = "gaussian"

    def __init__(self, sigma: float = 1.0) -> None:
        super().__init__()
        self.sigma = number(sigma, "sigma", 0, low_open=True)

    def nll(self, r: Tensor, x: Tensor) -> Tensor:
        sq = (r - x).square().flatten(1).sum(1)
        d = x[0].numel()
        return 0.5 * sq / self.sigma**2 + 0.5 * d * math.log(2 * math.pi * self.sigma**2)

    def mean(self, r: Tensor) -> Tensor:
        return r

    def std(self, r: Tensor) -> Tensor:
        """Standard deviation of p(x | r), broadcastable to x."""
        return torch.full_like(r, self.sigma)

    def sample(self, r: Tensor) -> Tensor:
        return r + self.std(r) * torch.randn_like(r)


class LearnedGaussian(Likelihood):
    """Gaussian with one learned standard deviation per data dimension (a parameter of the model).

    −log p(x | r) = Σ_d [(x_d − r_d)² / (2σ_d²) + log σ_d + ½ log 2π]; σ starts at ``sigma``.

    Example
    -------
    >>> lik = LearnedGaussian(size=2, sigma=1.0)
    >>> lik.nll(torch.zeros(1, 2), torch.ones(1, 2))  # the same as Gaussian(1.0) before training
    tensor([2.8379], grad_fn=<SumBackward1>)
    """

    name = "gaussian_learned"

    def __init__(self, size: int, sigma: float = 1.0) -> None:
        super().__init__()
        sigma = number(sigma, "initial sigma", 0, low_open=True)
        self.log_sigma = nn.Parameter(torch.full((int(size),), math.log(sigma)))

    def nll(self, r: Tensor, x: Tensor) -> Tensor:
        z = (x - r).flatten(1) * (-self.log_sigma).exp()
        return (0.5 * z.square() + self.log_sigma + 0.5 * math.log(2 * math.pi)).sum(1)

    def mean(self, r: Tensor) -> Tensor:
        return r

    def std(self, r: Tensor) -> Tensor:
        return self.log_sigma.exp().expand_as(r)

    def sample(self, r: Tensor) -> Tensor:
        return r + self.std(r) * torch.randn_like(r)


LIKELIHOODS = ("bernoulli", "gaussian", "gaussian_learned")


def make_likelihood(name: str, sigma: float = 1.0, size: int | None = None) -> Likelihood:
    """Build a likelihood by name: ``"bernoulli"``, ``"gaussian"`` (fixed ``sigma``) or
    ``"gaussian_learned"`` (one σ per dimension, ``size`` of them, starting at ``sigma``).

    The Bernoulli has no σ: a ``sigma`` other than the default 1 is then an error, not ignored.

    Example
    -------
    >>> make_likelihood("gaussian", sigma=0.5).sigma
    0.5
    """
    if name == "bernoulli":
        if sigma != 1.0:
            raise ValueError(f"option sigma={sigma!r} has no effect here: the Bernoulli likelihood has no sigma "
                             "(use likelihood='gaussian')")
        return Bernoulli()
    if name == "gaussian":
        return Gaussian(sigma)
    if name == "gaussian_learned":
        if size is None:
            raise ValueError("likelihood 'gaussian_learned' needs the data size (one sigma per dimension)")
        return LearnedGaussian(size, sigma)
    raise ValueError(f"unknown likelihood {name!r}; choose one of {', '.join(LIKELIHOODS)}")
