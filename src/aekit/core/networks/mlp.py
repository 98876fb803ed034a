"""MLP bodies (optionally tied), and the activations every body names."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..._checks import is_int
from ..model import Encoder

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
    "linear": nn.Identity,
}


def activation(name: str | nn.Module | None) -> nn.Module:
    """An activation module by name (a module passes through); ``None`` or ``"linear"`` is the identity."""
    if isinstance(name, nn.Module):
        return name
    if name is None:
        return nn.Identity()
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def _check_sizes(sizes: Sequence[int]) -> list[int]:
    sizes = list(sizes)
    if len(sizes) < 2 or not all(is_int(s) and s >= 1 for s in sizes):
        raise ValueError(f"layer sizes (input, hidden..., code) must be positive integers, got {sizes}")
    return [int(s) for s in sizes]


# σ'(a) written in terms of h = σ(a), for the closed-form Jacobian of one layer
DERIVATIVE_FROM_OUTPUT = {
    nn.Sigmoid: lambda h: h * (1 - h),
    nn.Tanh: lambda h: 1 - h * h,
    nn.ReLU: lambda h: (h > 0).to(h.dtype),
    nn.Softplus: lambda h: -torch.expm1(-h),  # σ'(a) = sigmoid(a) = 1 − e^{−softplus(a)}
    nn.Identity: lambda h: torch.ones_like(h),
}


def frobenius_closed(h: Tensor, layer: nn.Linear, act: type) -> Tensor:
    """Per-sample ‖J‖²_F, shape (B,), for h = act(W x + b): Σⱼ σ'(aⱼ)² ‖Wⱼ‖², σ' read off h itself."""
    d = DERIVATIVE_FROM_OUTPUT[act](h)  # (B, K)
    w2 = layer.weight.square().sum(1)  # (K,) = ‖Wⱼ‖²
    return (d.square() * w2).sum(1)


class MLP(Encoder):
    """Affine layers ``sizes[0] → … → sizes[-1]``, ``act`` between, ``final`` after the last.

    As an encoder of one layer with a sigmoid, tanh, relu, softplus or no final activation, it has a
    closed-form Jacobian norm (:meth:`jacobian_norm`, the contractive penalty's ``closed`` method).

    Example
    -------
    >>> MLP([64, 32, 8], "relu")(torch.zeros(5, 64)).shape
    torch.Size([5, 8])
    """

    def __init__(self, sizes: Sequence[int], act: str = "relu", final: str | nn.Module | None = None) -> None:
        super().__init__()
        self.sizes = _check_sizes(sizes)
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(self.sizes, self.sizes[1:]))
        self.act = activation(act)
        self.final = activation(final)

    def forward(self, x: Tensor) -> Tensor:
        for i, lin in enumerate(self.linears):
            x = lin(x)
            x = self.act(x) if i < len(self.linears) - 1 else self.final(x)
        return x

    def jacobian_norm(self, h: Tensor) -> Tensor | None:
        final = self.final
        # exactly aekit's MLP over a plain nn.Linear: a subclass, or a layer swapped for another module, may compute
        # something else (3·(Wx + b)) while inheriting forward, and the formula would silently be wrong for it
        if type(self) is not MLP or type(self.linears[0]) is not nn.Linear:
            return None
        if len(self.linears) != 1 or type(final) not in DERIVATIVE_FROM_OUTPUT:
            return None
        if isinstance(final, nn.Softplus) and (final.beta != 1 or final.threshold < 20):
            return None
        return frobenius_closed(h, self.linears[0], type(final))


class TiedMLP(nn.Module):
    """Decoder that reuses an encoder MLP's weights transposed, with its own biases.

    Example
    -------
    >>> enc = MLP([64, 32, 8], "relu")
    >>> TiedMLP(enc, "relu")(torch.zeros(5, 8)).shape
    torch.Size([5, 64])
    """

    def __init__(self, encoder: MLP, act: str = "relu", final: str | None = None) -> None:
        super().__init__()
        # A plain reference, not a submodule: the weights belong to (and are saved with) the encoder.
        object.__setattr__(self, "encoder", encoder)
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(s)) for s in reversed(encoder.sizes[:-1]))
        self.act = activation(act)
        self.final = activation(final)

    def forward(self, h: Tensor) -> Tensor:
        lins = list(reversed(self.encoder.linears))
        for i, (lin, b) in enumerate(zip(lins, self.biases)):
            h = F.linear(h, lin.weight.t(), b)
            h = self.act(h) if i < len(lins) - 1 else self.final(h)
        return h
