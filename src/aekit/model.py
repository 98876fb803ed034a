"""The one model: an autoencoder composed of corruption, encoder, decoder, likelihood and penalties.

    x̃ ~ C(x̃ | x),   h = f(x̃),   r = g(h),   loss = −log p(x | r) + Σ Ω(h, x̃, f)

Variants of the family are recipes over these parts (see :mod:`aekit.presets`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .corruption import Corruption, Identity
from .likelihoods import Likelihood


class Penalty(nn.Module, ABC):
    """Interface for a regulariser Ω; called with keyword arguments, never by position."""

    name: str

    @abstractmethod
    def forward(self, *, h: Tensor, x_tilde: Tensor, encoder: nn.Module) -> Tensor:
        """The penalty for one batch, a scalar already averaged over the batch."""


@dataclass
class Output:
    """What :meth:`Autoencoder.forward` returns.

    ``loss`` is the batch mean of the per-sample objective; ``terms`` holds its
    named parts (``"reconstruction"`` and one entry per penalty), which sum to ``loss``.
    """

    loss: Tensor
    terms: dict[str, Tensor]
    h: Tensor
    x_tilde: Tensor
    r: Tensor  # decoder output: the parameters of p(x | h), e.g. logits
    nll: Tensor = field(repr=False)  # (B,) per-sample −log p(x | r)


class Autoencoder(nn.Module):
    """An autoencoder built from parts.

    Parameters
    ----------
    encoder, decoder
        Modules mapping flat batches ``(B, D) → (B, K)`` and ``(B, K) → (B, D)``.
    likelihood
        The decoder's likelihood; reconstruction is scored against the clean ``x``.
    input_shape
        Shape of one sample, e.g. ``(64,)`` or ``(1, 28, 28)``; data is passed flat.
    code_size
        Number of code units K.
    corruption
        C(x̃ | x), applied in training mode only. Default: identity.
    penalties
        Regularisers Ω added to the loss, each reported under its own name.

    Example
    -------
    >>> from aekit.networks import MLP
    >>> from aekit.likelihoods import Gaussian
    >>> ae = Autoencoder(MLP([4, 2]), MLP([2, 4]), Gaussian(), input_shape=(4,), code_size=2)
    >>> out = ae(torch.zeros(3, 4))
    >>> sorted(out.terms), out.h.shape
    (['reconstruction'], torch.Size([3, 2]))
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood,
        *,
        input_shape: Sequence[int],
        code_size: int,
        corruption: Corruption | None = None,
        penalties: Sequence[Penalty] = (),
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.corruption = corruption if corruption is not None else Identity()
        self.penalties = nn.ModuleList(penalties)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.input_size = math.prod(self.input_shape)
        self.code_size = int(code_size)
        # Set by presets.create: the JSON config that rebuilds this model exactly.
        self.config: dict | None = None

    @property
    def is_regularised(self) -> bool:
        """Whether anything (corruption or penalty) stops an overcomplete code from copying x."""
        return len(self.penalties) > 0 or not isinstance(self.corruption, Identity)

    def forward(self, x: Tensor) -> Output:
        x_tilde = self.corruption(x) if self.training else x
        h = self.encoder(x_tilde)
        r = self.decoder(h)
        nll = self.likelihood.nll(r.float(), x)  # (B,) against the clean x; fp32 even under autocast
        terms = {"reconstruction": nll.mean()}
        for p in self.penalties:
            terms[p.name] = p(h=h, x_tilde=x_tilde, encoder=self.encoder)
        loss = sum(terms.values())
        return Output(loss=loss, terms=terms, h=h, x_tilde=x_tilde, r=r, nll=nll)

    def encode(self, x: Tensor) -> Tensor:
        """The code h = f(x), shape (B, K), without corruption."""
        return self.encoder(x)

    def decode(self, h: Tensor) -> Tensor:
        """The mean of p(x | h), shape (B, D)."""
        return self.likelihood.mean(self.decoder(h))

    def reconstruct(self, x: Tensor) -> Tensor:
        """The mean of p(x | g(f(x))), shape (B, D)."""
        return self.decode(self.encode(x))
