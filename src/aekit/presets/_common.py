"""What the preset families share: the likelihood and MLP body option groups, and the checks of their options."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from .._checks import integer
from ..core.corruption import Corruption
from ..core.likelihoods import Likelihood, make_likelihood
from ..core.model import Autoencoder, Penalty
from ..core.networks.mlp import MLP, TiedMLP
from ._registry import OptionGroup


@dataclass(frozen=True)
class Output(OptionGroup):
    """p(x | h): the likelihood by name, and the σ of a Gaussian one."""

    likelihood: str = "bernoulli"
    sigma: float = 1.0

    def make(self, input_shape: Sequence[int]) -> Likelihood:
        return make_likelihood(self.likelihood, self.sigma, math.prod(input_shape))


@dataclass(frozen=True)
class MLPBody(OptionGroup):
    """An MLP encoder ``D → hidden → K`` and its mirror, or its transpose (``tied``)."""

    hidden: Sequence[int] = ()
    activation: str = "sigmoid"
    tied: bool = False

    def autoencoder(self, input_shape: tuple[int, ...], code_size: int, out: Output,
                    code_activation: str | nn.Module | None, corruption: Corruption | None = None,
                    penalties: Sequence[Penalty] = ()) -> Autoencoder:
        """The autoencoder of this body with ``code_activation`` on the code, ``out``'s likelihood and the parts."""
        sizes = [math.prod(input_shape), *self.hidden, code_size]
        encoder = MLP(sizes, self.activation, final=code_activation)
        decoder = TiedMLP(encoder, self.activation) if self.tied else MLP(sizes[::-1], self.activation)
        return Autoencoder(encoder, decoder, out.make(input_shape), input_shape=input_shape, code_size=code_size,
                           corruption=corruption, penalties=penalties)


def need_code_size(code_size: Any) -> int:
    """``code_size``, checked: a positive integer."""
    return integer(code_size, "code_size")


def unused(used: bool, **given_vs_default: tuple[Any, Any]) -> None:
    """Refuse an option that was changed from its default but that this configuration ignores."""
    for name, (value, default) in given_vs_default.items():
        if not used and value != default:
            raise ValueError(f"option {name}={value!r} has no effect here: {name} {_WHEN[name]}")


_WHEN = {
    "code_noise": "applies to binary='noise' only",
    "balance": "applies to the trained bits only (binary='noise' or 'ste')",
    "decorrelation": "applies to the trained bits only (binary='noise' or 'ste')",
    "rho": "applies to penalty='kl' only",
    "rho_momentum": "applies to penalty='kl' only",
    "activation": "applies to hidden layers only (set hidden=...)",
    "k_start": "needs anneal_steps > 0",
    "anneal_steps": "needs k_start > k",
    "aux_coef": "needs aux_k > 0",
    "dead_after": "needs aux_k > 0 (it decides which units AuxK revives)",
    "free_bits": "needs beta > 0 (the KL it floors is weighted by beta)",
    "level": "is used only by noise parts without a level of their own (e.g. 'masking', not 'masking:0.3')",
}
