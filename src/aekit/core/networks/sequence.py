"""Sequence bodies for windows of a series: dilated temporal convolutions (TCN), a GRU/LSTM
encoder–decoder, and a small Transformer encoder.

A window's shape is ``(T, C)``: time is the first axis, every other axis is a channel (``(T,)`` is one
channel). Like every body they take and return flat batches ``(B, T·C)``; T and C come from
``input_shape``, so any window length works, odd ones included.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..._checks import Interval, OneOf, check, integer
from ..model import Decoder, Encoder
from .mlp import activation

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


def series_shape(input_shape: Sequence[int]) -> tuple[int, int]:
    """``(T, C)`` of a window: the first axis is time, the others are flattened into channels."""
    shape = tuple(int(s) for s in input_shape)
    if not shape:
        raise ValueError("a sequence body needs windows of shape (T,) or (T, C), got ()")
    return shape[0], math.prod(shape[1:])


class _Block(nn.Module):
    """A residual block: a dilated convolution over time ("same" length), its activation, plus the input
    (through a 1×1 convolution where the channel count changes)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int, act: str) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)
        self.act = activation(act)
        self.skip = nn.Identity() if c_in == c_out else nn.Conv1d(c_in, c_out, 1)

    def forward(self, z: Tensor) -> Tensor:
        return self.act(self.conv(z)) + self.skip(z)


class TCNEncoder(Encoder):
    """Residual blocks of dilated 1-D convolutions (dilation 1, 2, 4, …: the receptive field doubles with
    each block), then an affine map of the features at every step to the code.

    Example
    -------
    >>> TCNEncoder((50, 3), (16, 16), 4)(torch.zeros(2, 150)).shape
    torch.Size([2, 4])
    """

    def __init__(self, input_shape: Sequence[int], channels: Sequence[int] = (32, 32, 32), code_size: int = 8,
                 act: str = "relu", kernel: int = 3) -> None:
        super().__init__()
        self.T, self.C = series_shape(input_shape)
        if not channels or not all(isinstance(c, int) and c >= 1 for c in channels):
            raise ValueError(f"channels must be one or more positive integers, got {list(channels)}")
        self.kernel = integer(kernel, "kernel")
        if kernel % 2 == 0:
            raise ValueError(f"kernel must be odd (a centred window keeps the length), got {kernel}")
        self.channels = [int(c) for c in channels]
        sizes = [self.C, *self.channels]
        self.blocks = nn.Sequential(*(_Block(a, b, kernel, 2**i, act) for i, (a, b) in enumerate(zip(sizes, sizes[1:]))))
        self.fc = nn.Linear(self.channels[-1] * self.T, integer(code_size, "code_size"))

    def forward(self, x: Tensor) -> Tensor:
        z = x.view(-1, self.T, self.C).transpose(1, 2)  # (B, T·C) -> (B, C, T)
        return self.fc(self.blocks(z).flatten(1))


class TCNDecoder(nn.Module):
    """Mirror of :class:`TCNEncoder`: an affine map to features at every step, the blocks with the
    dilations in reverse, and a 1×1 convolution to the C channels."""

    def __init__(self, encoder: TCNEncoder, act: str = "relu") -> None:
        super().__init__()
        self.T, self.C, c = encoder.T, encoder.C, encoder.channels
        self.fc = nn.Linear(encoder.fc.out_features, c[-1] * self.T)
        self.act = activation(act)
        sizes = c[::-1]
        n = len(sizes)
        self.blocks = nn.Sequential(*(_Block(a, b, encoder.kernel, 2 ** (n - 1 - i), act)
                                      for i, (a, b) in enumerate(zip(sizes, sizes[1:] + [sizes[-1]]))))
        self.out = nn.Conv1d(c[0], self.C, 1)

    def forward(self, h: Tensor) -> Tensor:
        z = self.act(self.fc(h)).view(len(h), -1, self.T)  # (B, K) -> (B, channels, T)
        return self.out(self.blocks(z)).transpose(1, 2).flatten(1)  # (B, C, T) -> (B, T·C)


class RNNEncoder(Encoder):
    """A GRU or LSTM over the window; the code is an affine map of the last layer's final state.

    Example
    -------
    >>> RNNEncoder((20, 2), 16, 1, 3, "gru")(torch.zeros(4, 40)).shape
    torch.Size([4, 3])
    """

    def __init__(self, input_shape: Sequence[int], hidden_size: int = 64, layers: int = 1, code_size: int = 8,
                 cell: str = "lstm") -> None:
        super().__init__()
        self.T, self.C = series_shape(input_shape)
        self.cell = check(cell, "cell", OneOf(*CELLS))
        self.hidden_size, self.layers = integer(hidden_size, "hidden_size"), integer(layers, "layers")
        self.rnn = CELLS[cell](self.C, self.hidden_size, self.layers, batch_first=True)
        self.fc = nn.Linear(self.hidden_size, integer(code_size, "code_size"))

    def forward(self, x: Tensor) -> Tensor:
        z = x.view(-1, self.T, self.C)
        # the zero initial state made from the input: under torch.func.vmap (the exact contractive penalty) it
        # is then batched like the input, which the GRU's own default state is not
        zero = torch.zeros_like(z[:, 0, :1]).expand(-1, self.hidden_size).expand(self.layers, -1, -1).contiguous()
        out, _ = self.rnn(z, (zero, zero) if self.cell == "lstm" else zero)  # (B, T, H)
        return self.fc(out[:, -1])


class RNNDecoder(Decoder):
    """A GRU or LSTM unrolled from the code: the code sets every layer's initial state (through an affine
    map and tanh) and is part of the input at every step; an affine map reads each step's C values.

    ``teacher_forcing = 0`` (default): the decoder sees the code only, in training as when scoring, so a
    window's reconstruction never leans on the window itself (the reason EncDec-AD's reconstruction error
    flags anomalies). ``teacher_forcing = p > 0``: the decoder is autoregressive, each step is also fed the
    previous step's value (zero before the first); in training that value is the true one with probability
    p per sample and step (1: classic teacher forcing, Malhotra et al. 2016; between: scheduled sampling,
    Bengio et al. 2015) and the decoder's own prediction otherwise; when scoring it is always its own.
    ``mean`` maps a step's output to a value fed back (the likelihood's mean, e.g. a sigmoid of logits).

    Example
    -------
    >>> enc = RNNEncoder((20, 2), 16, 1, 3, "gru")
    >>> dec = RNNDecoder(enc, teacher_forcing=1.0)
    >>> x = torch.randn(4, 40)
    >>> dec(enc(x), x).shape  # training: fed the true previous steps of x
    torch.Size([4, 40])
    """

    def __init__(self, encoder: RNNEncoder, teacher_forcing: float = 0.0,
                 mean: Callable[[Tensor], Tensor] | None = None) -> None:
        super().__init__()
        self.T, self.C, self.cell = encoder.T, encoder.C, encoder.cell
        self.hidden_size, self.layers, k = encoder.hidden_size, encoder.layers, encoder.fc.out_features
        self.teacher_forcing = float(check(teacher_forcing, "teacher_forcing", Interval(float, 0, 1)))
        self.teacher_forced = self.teacher_forcing > 0
        self.mean = mean
        states = 2 if self.cell == "lstm" else 1  # an LSTM has a cell state besides its hidden state
        self.init = nn.Linear(k, states * self.layers * self.hidden_size)
        self.rnn = CELLS[self.cell](k + (self.C if self.teacher_forced else 0), self.hidden_size, self.layers,
                                    batch_first=True)
        self.out = nn.Linear(self.hidden_size, self.C)

    def forward(self, h: Tensor, x: Tensor | None = None) -> Tensor:
        b = len(h)
        s = torch.tanh(self.init(h)).view(b, -1, self.layers, self.hidden_size).permute(1, 2, 0, 3).contiguous()
        state = (s[0], s[1]) if self.cell == "lstm" else s[0]  # each (layers, B, H)
        codes = h.unsqueeze(1).expand(b, self.T, h.shape[1])  # (B, T, K)
        if not self.teacher_forced:
            return self.out(self.rnn(codes, state)[0]).flatten(1)  # (B, T, C) -> (B, T·C)
        true = None if x is None else x.view(b, self.T, self.C).to(h.dtype)
        if true is not None and self.teacher_forcing == 1.0:  # every step is fed the true previous one: one pass
            prev = torch.cat([true.new_zeros(b, 1, self.C), true[:, :-1]], 1)
            return self.out(self.rnn(torch.cat([codes, prev], 2), state)[0]).flatten(1)
        # step by step: a step's input is the previous prediction, or (in training, with probability p) the truth
        forced = None if true is None else torch.rand(b, self.T, 1, device=h.device) < self.teacher_forcing
        y, r = h.new_zeros(b, self.C), []
        for t in range(self.T):
            if forced is not None and t > 0:
                y = torch.where(forced[:, t], true[:, t - 1], y)
            out, state = self.rnn(torch.cat([h, y], 1).unsqueeze(1), state)
            r.append(self.out(out[:, 0]))  # (B, C)
            y = self.mean(r[-1]) if self.mean is not None else r[-1]
        return torch.stack(r, 1).flatten(1)


def positional(T: int, d: int) -> Tensor:
    """Sinusoidal positional encoding (Vaswani et al. 2017), shape (T, d)."""
    pos = torch.arange(T, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10_000.0) / d))
    pe = torch.zeros(T, d)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: d // 2])
    return pe


def _layers(d_model: int, heads: int, layers: int) -> nn.TransformerEncoder:
    if d_model % heads:
        raise ValueError(f"d_model must be a multiple of heads, got d_model={d_model}, heads={heads}")
    layer = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout=0.0, batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class AttentionEncoder(Encoder):
    """A small Transformer encoder over the window (each step's C values embedded, plus sinusoidal
    positions); the code is an affine map of the steps' mean.

    Example
    -------
    >>> AttentionEncoder((30, 2), 16, 2, 1, 5)(torch.zeros(3, 60)).shape
    torch.Size([3, 5])
    """

    def __init__(self, input_shape: Sequence[int], d_model: int = 32, heads: int = 4, layers: int = 2,
                 code_size: int = 8) -> None:
        super().__init__()
        self.T, self.C = series_shape(input_shape)
        self.d_model, self.heads = integer(d_model, "d_model"), integer(heads, "heads")
        self.layers = integer(layers, "layers")
        self.embed = nn.Linear(self.C, d_model)
        self.register_buffer("pe", positional(self.T, d_model))  # saved: a model loaded onto "meta" gets it back
        self.body = _layers(d_model, heads, layers)
        self.fc = nn.Linear(d_model, integer(code_size, "code_size"))

    def forward(self, x: Tensor) -> Tensor:
        z = self.embed(x.view(-1, self.T, self.C)) + self.pe  # (B, T, d_model)
        if x.requires_grad:  # a penalty differentiates the code by the input (contractive): a second derivative,
            with sdpa_kernel(SDPBackend.MATH):  # which only the plain attention kernel has on every device
                return self.fc(self.body(z).mean(1))
        return self.fc(self.body(z).mean(1))


class AttentionDecoder(nn.Module):
    """The code mapped to every step, plus the positions, through Transformer layers, then to C values."""

    def __init__(self, encoder: AttentionEncoder) -> None:
        super().__init__()
        self.T, self.C = encoder.T, encoder.C
        self.expand = nn.Linear(encoder.fc.out_features, encoder.d_model)
        self.register_buffer("pe", positional(self.T, encoder.d_model))
        self.body = _layers(encoder.d_model, encoder.heads, encoder.layers)
        self.out = nn.Linear(encoder.d_model, self.C)

    def forward(self, h: Tensor) -> Tensor:
        z = self.body(self.expand(h)[:, None, :] + self.pe)  # (B, T, d_model)
        return self.out(z).flatten(1)  # (B, T, C) -> (B, T·C)
