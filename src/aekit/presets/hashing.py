"""Semantic hashing (Salakhutdinov & Hinton 2009) as the preset ``hashing``, registered on import."""

from __future__ import annotations

from .._checks import OneOf, check, number
from ..core.model import Autoencoder
from ..parts.hashing import BinaryCode, BitDecorrelation, ITQCode
from ..parts.sparse import KLSparsity
from ._common import MLPBody, Output, need_code_size, unused
from ._registry import register


@register("hashing", "semantic hashing: a deep autoencoder whose code gives K bits (ITQ on the code, noisy "
          "sigmoid or straight-through), for Hamming-distance search (Salakhutdinov & Hinton 2009)",
          epochs=10, lr=1e-3)
def hashing(input_shape: tuple[int, ...], code_size: int = 32, binary: str = "itq", code_noise: float = 4.0,
            balance: float = 1.6, decorrelation: float = 0.0,
            body: MLPBody = MLPBody(hidden=(1000, 500, 250), activation="relu"),
            out: Output = Output()) -> Autoencoder:
    """``code_size`` bits; ``binary`` how the code becomes bits: ``"itq"`` after training, by ITQ's rotation
    of the real-valued code (:class:`ITQCode`), or in training, ``"noise"`` / ``"ste"`` (:class:`BinaryCode`;
    ``code_noise``: the noise's σ). For the trained bits, ``balance`` β > 0 adds β times the mean over the K
    bits of KL(½ ‖ ρ̂ⱼ), each bit on for half the batch (Weiss et al. 2008's balance; a mean, so that one β
    weighs the same against the reconstruction at any K), and ``decorrelation`` > 0 that weight times the
    bits' mean squared correlation over the batch (:class:`BitDecorrelation`, uncorrelated bits).

    The body is Hinton & Salakhutdinov's (2006) deep autoencoder. ``"itq"`` is the default because it retrieves
    best on MNIST (``benchmarks/hashing.py``; the README quotes its table): trained bits must carry the
    reconstruction through a 0/1 bottleneck, while a real-valued code keeps its neighbourhoods and ITQ's rotation
    loses little of them at the threshold."""
    code_size = need_code_size(code_size)
    check(binary, "binary", OneOf("itq", "noise", "ste"))
    unused(binary == "noise", code_noise=(code_noise, 4.0))
    unused(bool(body.hidden), activation=(body.activation, "relu"))
    unused(binary != "itq", balance=(balance, 1.6), decorrelation=(decorrelation, 0.0))
    if binary == "itq":
        return body.autoencoder(input_shape, code_size, out, ITQCode(code_size))
    penalties: list = [KLSparsity(0.5, balance / code_size)] if number(balance, "balance", 0) else []
    if number(decorrelation, "decorrelation", 0):
        penalties.append(BitDecorrelation(decorrelation))
    return body.autoencoder(input_shape, code_size, out, BinaryCode(binary, code_noise), penalties=penalties)

