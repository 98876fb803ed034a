"""Corruption C(x̃ | x): drawn fresh per batch, on x's device, from torch's seeded RNG.

The model corrupts in training mode only (or when asked to, for denoising
metrics); the loss always scores the reconstruction against the clean x.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._checks import number


class Corruption(nn.Module, ABC):
    """Interface: ``forward(x)`` draws x̃ ~ C(x̃ | x) on x's device."""

    name: str

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor: ...

    def config(self) -> dict:
        return {"name": self.name}


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
    >>> (MaskingNoise(0.3)(torch.ones(100, 100)) == 0).float().mean().item() // 0.1 / 10
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

    ``low``/``high`` are the data's minimum and maximum (0 and 1 for pixels in [0, 1]).
    """

    name = "salt_pepper"

    def __init__(self, nu: float, low: float = 0.0, high: float = 1.0) -> None:
        super().__init__()
        self.nu = number(nu, "salt-and-pepper fraction", 0, 1, high_open=True)
        if not low < high:
            raise ValueError(f"salt-and-pepper needs low < high, got low={low}, high={high}")
        self.low, self.high = float(low), float(high)

    def forward(self, x: Tensor) -> Tensor:
        hit = torch.rand_like(x) < self.nu
        salt = torch.rand_like(x) < 0.5
        return torch.where(hit, torch.where(salt, self.high, self.low), x)


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


def make_corruption(name: str | None, level: float | None = None) -> Corruption:
    """A corruption by name: ``gaussian`` (σ), ``masking`` (ν), ``salt_pepper`` (ν), or ``None``.

    Join several with ``+``; each may carry its own level after a colon, else
    ``level`` is used: ``"masking:0.25+gaussian:0.1"``.

    Example
    -------
    >>> make_corruption("masking:0.25+gaussian:0.1").parts[1].sigma
    0.1
    """
    if name in (None, "none", "identity"):
        return Identity()
    kinds = {"gaussian": GaussianNoise, "masking": MaskingNoise, "salt_pepper": SaltAndPepper}
    parts = []
    for part in str(name).split("+"):
        kind, _, own = part.partition(":")
        if kind not in kinds:
            raise ValueError(f"unknown corruption {kind!r}; choose from {sorted(kinds)} (join several with '+')")
        try:
            lv = float(own) if own else level
        except ValueError:
            raise ValueError(f"corruption level in {part!r} is not a number") from None
        if lv is None:
            raise ValueError(f"corruption {kind!r} needs a noise level")
        parts.append(kinds[kind](lv))
    return parts[0] if len(parts) == 1 else Compose(parts)
