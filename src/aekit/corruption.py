"""Corruption C(x̃ | x): applied to training batches only; the loss scores the clean x."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn


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
    >>> import torch
    >>> Identity()(torch.ones(2)).tolist()
    [1.0, 1.0]
    """

    name = "identity"

    def forward(self, x: Tensor) -> Tensor:
        return x
