"""Convolutional bodies for images (C, H, W): strided 3×3 convolutions and their transposed mirror."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from .mlp import activation


def _conv_out(n: int) -> int:
    # kernel 3, stride 2, padding 1
    return (n - 1) // 2 + 1


class ConvEncoder(nn.Module):
    """Strided 3×3 convolutions, then an affine map to the code.

    Example
    -------
    >>> import torch
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
