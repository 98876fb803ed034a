"""Corruption C(x̃ | x): drawn fresh per batch, on x's device, from torch's seeded RNG.

The model corrupts in training mode only (or when asked to, for denoising
metrics); the loss always scores the reconstruction against the clean x.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._checks import number


class Corruption(nn.Module, ABC):
    """Interface: ``forward(x)`` draws x̃ ~ C(x̃ | x) on x's device."""

    name: str

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor: ...

    def prepare(self, x: Tensor) -> None:
        """Take data-dependent defaults from the training data ``x`` (N, D); nothing by default."""


class Identity(Corruption):
    """No corruption: x̃ = x.

    Example
    -------
    >>> Identity()(torch.ones(2)).tolist()
    [1.0, 1.0]
    """

    name = "identity"

    def forward(self, x: Tensor) -> Tensor:
        return x


class GaussianNoise(Corruption):
    """Additive isotropic Gaussian noise: x̃ = x + σ·ε, ε ~ N(0, I).

    Example
    -------
    >>> GaussianNoise(0.5)(torch.zeros(1000, 10)).std().item() // 0.1 / 10
    0.5
    """

    name = "gaussian"

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = number(sigma, "Gaussian noise sigma", 0, low_open=True)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.sigma * torch.randn_like(x)


class MaskingNoise(Corruption):
    """Masking noise: each input is set to 0 with probability ν (the "missing inputs" case).

    Example
    -------
    >>> round((MaskingNoise(0.3)(torch.ones(100, 100)) == 0).float().mean().item(), 1)
    0.3
    """

    name = "masking"

    def __init__(self, nu: float) -> None:
        super().__init__()
        self.nu = number(nu, "masking fraction", 0, 1, high_open=True)

    def forward(self, x: Tensor) -> Tensor:
        return x * (torch.rand_like(x) >= self.nu)


class SaltAndPepper(Corruption):
    """Salt-and-pepper noise: each input is, with probability ν, set to ``low`` or ``high`` (even odds).

    ``low``/``high`` default to the minimum and maximum of the training data, taken by
    :func:`~aekit.training.loop.fit` before the first step (and saved with the model); until then, those
    of the batch being corrupted. Pass them to fix the values, e.g. 0 and 1 for pixels.

    Example
    -------
    >>> sorted(SaltAndPepper(0.99, low=-1, high=2)(torch.zeros(1000)).unique().tolist())
    [-1.0, 0.0, 2.0]
    """

    name = "salt_pepper"

    def __init__(self, nu: float, low: float | None = None, high: float | None = None) -> None:
        super().__init__()
        self.nu = number(nu, "salt-and-pepper fraction", 0, 1, high_open=True)
        low = math.nan if low is None else number(low, "salt-and-pepper low")
        high = math.nan if high is None else number(high, "salt-and-pepper high")
        if not (math.isnan(low) or math.isnan(high) or low < high):
            raise ValueError(f"salt-and-pepper needs low < high, got low={low}, high={high}")
        # NaN: not given, taken from the data
        self.register_buffer("low", torch.tensor(low))
        self.register_buffer("high", torch.tensor(high))

    def prepare(self, x: Tensor) -> None:
        if self.low.isnan():
            self.low.fill_(float(x.min()))
        if self.high.isnan():
            self.high.fill_(float(x.max()))

    def forward(self, x: Tensor) -> Tensor:
        low = torch.where(self.low.isnan(), x.min(), self.low).to(x.dtype)
        high = torch.where(self.high.isnan(), x.max(), self.high).to(x.dtype)
        hit = torch.rand_like(x) < self.nu
        salt = torch.rand_like(x) < 0.5
        return torch.where(hit, torch.where(salt, high, low), x)


class Compose(Corruption):
    """Several corruptions applied in order, e.g. masking then Gaussian noise."""

    name = "compose"

    def __init__(self, parts: Sequence[Corruption]) -> None:
        super().__init__()
        if not parts:
            raise ValueError("Compose needs at least one corruption")
        self.parts = nn.ModuleList(parts)

    def forward(self, x: Tensor) -> Tensor:
        for c in self.parts:
            x = c(x)
        return x

    def prepare(self, x: Tensor) -> None:
        for c in self.parts:
            c.prepare(x)


KINDS: dict[str, type[Corruption]] = {"gaussian": GaussianNoise, "masking": MaskingNoise, "salt_pepper": SaltAndPepper}


def parse_noise(name: str) -> list[tuple[str, float | None]]:
    """``"masking:0.25+gaussian"`` → ``[("masking", 0.25), ("gaussian", None)]``; unknown kinds are errors.

    Example
    -------
    >>> parse_noise("masking:0.25+gaussian")
    [('masking', 0.25), ('gaussian', None)]
    """
    parts = []
    for part in str(name).split("+"):
        kind, _, own = part.partition(":")
        if kind not in KINDS:
            raise ValueError(f"unknown corruption {kind!r}; choose from {sorted(KINDS)} (join several with '+')")
        try:
            parts.append((kind, float(own) if own else None))
        except ValueError:
            raise ValueError(f"corruption level in {part!r} is not a number") from None
    return parts


def make_corruption(name: str | None, level: float | None = None) -> Corruption:
    """A corruption by name: ``gaussian`` (σ), ``masking`` (ν), ``salt_pepper`` (ν), or ``None``.

    Join several with ``+``; each may carry its own level after a colon, else
    ``level`` is used: ``"masking:0.25+gaussian:0.1"``. A ``level`` that no part uses is an error.

    Example
    -------
    >>> make_corruption("masking:0.25+gaussian:0.1").parts[1].sigma
    0.1
    """
    parts = [] if name in (None, "none", "identity") else parse_noise(name)
    if level is not None and all(own is not None for _, own in parts):
        raise ValueError(f"noise level {level!r} has no effect: every part of {name!r} sets its own level")
    if not parts:
        return Identity()
    for kind, own in parts:
        if own is None and level is None:
            raise ValueError(f"corruption {kind!r} needs a noise level")
    made = [KINDS[kind](level if own is None else own) for kind, own in parts]
    return made[0] if len(made) == 1 else Compose(made)
