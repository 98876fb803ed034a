"""Encoder and decoder bodies: MLPs (optionally tied) and convolutional stacks.

All bodies take and return flat batches ``(B, D)``; a conv body reshapes to its
``input_shape`` internally, so the model, likelihoods and trainer never see
image shapes. Every shape is inferred from ``input_shape``, never hard-coded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import is_int
from .model import Encoder

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
        if type(self).forward is not MLP.forward:  # a subclass computes something else: the formula is not its
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


def _conv_out(n: int) -> int:
    # kernel 3, stride 2, padding 1
    return (n - 1) // 2 + 1


class ConvEncoder(nn.Module):
    """Strided 3×3 convolutions, then an affine map to the code.

    Example
    -------
    >>> ConvEncoder((1, 28, 28), (16, 32), 10)(torch.zeros(2, 784)).shape
    torch.Size([2, 10])
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        channels: Sequence[int],
        code_size: int,
        act: str = "relu",
        code_act: str | None = None,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        if len(self.input_shape) != 3:
            raise ValueError(f"a conv network needs image data of shape (C, H, W), got {self.input_shape}")
        if not channels or any(int(k) < 1 for k in channels):
            raise ValueError(f"channels must be one or more positive integers, got {list(channels)}")
        c, hw = self.input_shape[0], list(self.input_shape[1:])
        layers: list[nn.Module] = []
        for c_out in channels:
            layers += [nn.Conv2d(c, c_out, 3, stride=2, padding=1), activation(act)]
            c, hw = c_out, [_conv_out(n) for n in hw]
        self.convs = nn.Sequential(*layers)
        self.feature_shape = (c, *hw)
        self.fc = nn.Linear(math.prod(self.feature_shape), code_size)
        self.code_act = activation(code_act)

    def forward(self, x: Tensor) -> Tensor:
        x = x.view(-1, *self.input_shape)  # (B, D) -> (B, C, H, W)
        return self.code_act(self.fc(self.convs(x).flatten(1)))


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: affine map, then strided transposed convolutions.

    ``output_padding`` of each layer is chosen so that the output has exactly the
    encoder's input shape (odd sizes such as 7 or 28 → 14 → 7 → 4 round-trip).
    """

    def __init__(self, encoder: ConvEncoder, act: str = "relu") -> None:
        super().__init__()
        self.input_shape = encoder.input_shape
        self.feature_shape = encoder.feature_shape
        self.fc = nn.Linear(encoder.fc.out_features, math.prod(self.feature_shape))
        # spatial sizes along the encoder, e.g. [28, 14, 7] for two layers
        sizes = [list(self.input_shape[1:])]
        for _ in range(len(encoder.convs) // 2):
            sizes.append([_conv_out(n) for n in sizes[-1]])
        chans = [self.input_shape[0]] + [m.out_channels for m in encoder.convs if isinstance(m, nn.Conv2d)]
        layers: list[nn.Module] = [activation(act)]
        for i in range(len(chans) - 1, 0, -1):
            # transposed conv k3 s2 p1: out = 2·in − 1 + output_padding
            pad = tuple(big - (2 * small - 1) for big, small in zip(sizes[i - 1], sizes[i]))
            layers.append(nn.ConvTranspose2d(chans[i], chans[i - 1], 3, stride=2, padding=1, output_padding=pad))
            if i > 1:
                layers.append(activation(act))
        self.deconvs = nn.Sequential(*layers)

    def forward(self, h: Tensor) -> Tensor:
        z = self.fc(h).view(-1, *self.feature_shape)
        return self.deconvs(z).flatten(1)  # (B, C, H, W) -> (B, C*H*W)
