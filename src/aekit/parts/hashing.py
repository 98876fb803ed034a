"""Binary codes for semantic hashing (Salakhutdinov & Hinton 2009; Goodfellow et al., *Deep Learning* §14.9).

Three ways to get K bits from an autoencoder's code:

- ``binary="itq"`` (the preset's default): the code is real-valued in training, a plain autoencoder's; when
  training ends, iterative quantisation (Gong & Lazebnik 2011) fits a centre and a rotation to the training
  codes, and the bits are the signs of the centred, rotated code (:class:`ITQCode`);

The other two push the code layer to 0/1 in training, so that thresholding it at test time loses little:

- ``binary="noise"`` (the paper's): Gaussian noise of standard deviation σ (the paper's 4, variance 16) is added
  to each code unit's input before the sigmoid, so only inputs far from 0 carry information reliably;
- ``binary="ste"``: the forward pass is the hard bit 1[a > 0], the backward pass the sigmoid's gradient (a
  straight-through estimator, Bengio et al. 2013).

Outside training their code is the bit 1[a > 0]: the decoder, the scores and the index all see the binary
code. An ``itq`` model's decoder and scores see the real-valued code; only its features (``encode``) are bits.
:mod:`aekit.evaluation.retrieval` indexes the bits and searches them by Hamming distance.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from .._checks import OneOf, check, number
from ..core.model import Batch, CodeConstraint, Penalty, fp32
from .projections import ITQ

__all__ = ["BinaryCode", "BitDecorrelation", "ITQCode"]


class BinaryCode(CodeConstraint):
    """Code units driven to 0/1: noisy sigmoid or straight-through in training, 1[a > 0] otherwise.

    Example
    -------
    >>> BinaryCode("ste").eval()(torch.tensor([[-0.5, 0.0, 2.0]]))
    tensor([[0., 0., 1.]])
    """

    code_range = (0.0, 1.0)  # for penalties on mean activations (the bit balance's KL)

    def __init__(self, binary: str = "noise", noise: float = 4.0) -> None:
        super().__init__()
        self.binary = check(binary, "binary", OneOf("noise", "ste"))
        self.noise = number(noise, "code_noise", 0, low_open=True)

    def forward(self, a: Tensor) -> Tensor:
        bits = (a > 0).to(a.dtype)
        if not self.training:
            return bits
        if self.binary == "noise":
            return torch.sigmoid(a + self.noise * torch.randn_like(a))
        soft = torch.sigmoid(a)
        return bits + (soft - soft.detach())  # forward: exactly the bits (x − x = 0); backward: the sigmoid's gradient


class ITQCode(CodeConstraint):
    """A real-valued code whose features are ITQ's bits 1[(h − μ) R > 0], μ and R fitted after training.

    In training, and wherever the model reconstructs or scores, the code passes unchanged. :meth:`finish`
    (called by :func:`~aekit.training.loop.fit` once training ends) fits ITQ to the training codes: their mean μ, and
    the principal directions turned by the rotation that minimises the quantisation error (``iters``
    Procrustes alternations from a random rotation drawn with ``seed``). Until then the bits are 1[h > 0].

    Example
    -------
    >>> code = ITQCode(2).eval()
    >>> code.finish(torch.tensor([[3.0, 2.0], [2.0, 3.0], [-2.0, -3.0], [-3.0, -2.0]]) + 10)
    >>> code.features = True
    >>> b = code(torch.tensor([[13.0, 12.0], [7.0, 8.0]]))  # opposite about the mean: complementary bits
    >>> (b[0] + b[1]).tolist()
    [1.0, 1.0]
    """

    limits = False  # training sees the real-valued code: nothing stops it copying x

    def __init__(self, size: int, iters: int = 50, seed: int = 0) -> None:
        super().__init__()
        self.iters, self.seed = iters, seed
        self.register_buffer("center", torch.zeros(size))  # (K,)
        # (K, K): PCA directions times ITQ's rotation; the identity by fill_diagonal_, as torch.eye on the meta device
        # (the memory check builds models there) imports torch._dynamo: 1.4 s more for `aekit index` and `search`
        self.register_buffer("rotation", torch.zeros(size, size).fill_diagonal_(1.0))

    def forward(self, a: Tensor) -> Tensor:
        if not self.features:
            return a
        return ((a - self.center.to(a.dtype)) @ self.rotation.to(a.dtype) > 0).to(a.dtype)

    def finish(self, h: Tensor) -> None:
        """Fit μ and R to the training codes ``h`` (N, K)."""
        h = h.detach()
        k = self.center.numel()
        if len(h) < k:  # PCA needs as many rows as bits: keep every bit, unrotated
            warnings.warn(f"{len(h)} training rows are fewer than the {k} bits: the bits are the signs of the "
                          "centred code, without ITQ's rotation", stacklevel=2)
            self.center.copy_(h.float().mean(0))
            self.rotation.copy_(torch.eye(k))
            return
        itq = ITQ(k, self.iters, self.seed).fit(h.double().cpu().numpy())
        self.center.copy_(torch.from_numpy(itq.mean_))
        self.rotation.copy_(torch.from_numpy(itq.proj_))


class BitDecorrelation(Penalty):
    """β times the mean over pairs of bits j ≠ k of 16·Cov(hⱼ, hₖ)² over the batch: uncorrelated bits.

    Weiss et al.'s (2008) second condition on good codes, next to balanced bits: bits that agree on most items
    spend several bits on one split of the data. For balanced bits (variance ¼) the term is their squared
    correlation; it is 1 for two copies of a balanced bit and 0 for independent ones.

    Example
    -------
    >>> from aekit import create
    >>> create("hashing", (4,), code_size=2, hidden=[8], binary="noise", decorrelation=2.0).penalties[-1].beta
    2.0
    """

    name = "bit_decorrelation"

    def __init__(self, beta: float) -> None:
        super().__init__()
        self.beta = number(beta, "decorrelation", 0)

    def forward(self, b: Batch) -> Tensor:
        h = fp32(b.h).flatten(1)  # (B, K)
        c = h - h.mean(0)
        cov = c.T @ c / len(h)  # (K, K)
        k = cov.shape[0]
        off = cov - torch.diag(torch.diag(cov))
        return self.beta * 16 * off.pow(2).sum() / max(k * (k - 1), 1)
