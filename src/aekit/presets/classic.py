"""The classic family: undercomplete, linear, overcomplete, hinton2006, conv, sparse, ksparse, denoising,
contractive, the sequence bodies (tcn, lstm, transformer) and vae, each registered on import.

Each is a builder ``(input_shape, **options) -> Autoencoder`` registered by name with its training
defaults (:mod:`aekit.presets.catalog` looks them up; a user's own presets are registered the same way).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..core.corruption import make_corruption, parse_noise
from ..core.model import Autoencoder, Penalty
from ..core.networks.conv import ConvDecoder, ConvEncoder
from ..core.networks.mlp import MLP
from ..core.networks.sequence import AttentionDecoder, AttentionEncoder, RNNDecoder, RNNEncoder, TCNDecoder, TCNEncoder
from ..parts.contractive import Contractive
from ..parts.denoising import Walkback
from ..parts.sparse import L1, AuxK, KLSparsity, TopK
from ..parts.variational import GaussianEncoder, GaussianKL
from ._common import MLPBody, Output, need_code_size, unused
from ._registry import register


@register("undercomplete", "MLP autoencoder with a code smaller than the input", epochs=60, lr=3e-3)
def undercomplete(
    input_shape: tuple[int, ...],
    code_size: int = 16,
    code_activation: str | None = None,
    body: MLPBody = MLPBody(hidden=(256,), activation="relu"),
    out: Output = Output(),
) -> Autoencoder:
    """MLP ``D → hidden → K → hidden → D`` with K < D."""
    unused(bool(body.hidden), activation=(body.activation, "relu"))
    d = math.prod(input_shape)
    if need_code_size(code_size) >= d:
        raise ValueError(
            f"undercomplete needs code_size < input size {d}, got {code_size}; use the 'overcomplete' preset"
        )
    return body.autoencoder(input_shape, code_size, out, code_activation)


@register(
    "linear",
    "linear encoder and decoder, Gaussian likelihood: spans PCA's subspace",
    epochs=600,
    batch_size=64,
    lr=1e-2,
    schedule="cosine",
)
def linear(input_shape: tuple[int, ...], code_size: int = 16, sigma: float = 1.0) -> Autoencoder:
    """Linear ``f`` and ``g`` with squared error: at the optimum, g's columns span PCA's top-K subspace."""
    d = math.prod(input_shape)
    if need_code_size(code_size) >= d:
        raise ValueError(f"linear needs code_size < input size {d}, got {code_size}")
    return MLPBody(activation="linear").autoencoder(input_shape, code_size, Output("gaussian", sigma), None)


@register("overcomplete", "one-hidden-layer autoencoder with a code at least as large as the input", epochs=30)
def overcomplete(
    input_shape: tuple[int, ...],
    code_size: int = 0,
    body: MLPBody = MLPBody(),
    out: Output = Output(),
) -> Autoencoder:
    """``D → K → D`` with K ≥ D (``code_size=0`` means 2·D). Needs a regulariser to learn anything but a copy."""
    d = math.prod(input_shape)
    code_size = code_size or 2 * d
    if need_code_size(code_size) < d:
        raise ValueError(f"overcomplete needs code_size >= input size {d}, got {code_size}")
    return body.autoencoder(input_shape, code_size, out, body.activation)


@register(
    "hinton2006",
    "deep 784-1000-500-250-30 autoencoder of Hinton & Salakhutdinov (2006), linear code",
    epochs=200,
    batch_size=256,
    lr=3e-3,
    optimizer="adamw",
    weight_decay=0.1,
    schedule="onecycle",
    precision="bf16",
)
def hinton2006(
    input_shape: tuple[int, ...],
    code_size: int = 30,
    body: MLPBody = MLPBody(hidden=(1000, 500, 250), activation="gelu"),
    out: Output = Output(),
) -> Autoencoder:
    """The deep autoencoder of Hinton & Salakhutdinov (2006), trained end to end (no RBM pre-training)."""
    unused(bool(body.hidden), activation=(body.activation, "gelu"))
    return body.autoencoder(input_shape, need_code_size(code_size), out, None)


@register("conv", "convolutional autoencoder for (C, H, W) images; shapes inferred", epochs=30, lr=2e-3)
def conv(
    input_shape: tuple[int, ...],
    code_size: int = 16,
    channels: Sequence[int] = (32, 64),
    activation: str = "relu",
    out: Output = Output(),
) -> Autoencoder:
    """Strided 3×3 convolutions to a linear code and transposed convolutions back."""
    encoder = ConvEncoder(input_shape, channels, need_code_size(code_size), activation)
    return Autoencoder(encoder, ConvDecoder(encoder, activation), out.make(input_shape), input_shape=input_shape,
                       code_size=code_size)


# ---------------------------------------------------------------------------- the regularised family
# One hidden layer D → K → D by default (``hidden`` adds layers); ``code_size=0`` means 2·D, overcomplete.


def _code_size_or_double(input_shape: tuple[int, ...], code_size: int) -> int:
    """``code_size``, or 2·D (an overcomplete code) when it is 0; validated."""
    return need_code_size(code_size or 2 * math.prod(input_shape))


@register("sparse", "code made sparse by an L1 penalty or KL(rho || mean activation)", epochs=30, lr=1e-3)
def sparse(
    input_shape: tuple[int, ...],
    code_size: int = 0,
    penalty: str = "l1",
    lam: float = 1e-3,
    rho: float = 0.05,
    rho_momentum: float = 0.0,
    body: MLPBody = MLPBody(),
    out: Output = Output(),
) -> Autoencoder:
    """Sigmoid code with λ‖h‖₁ (``penalty="l1"``) or λ·Σⱼ KL(ρ ‖ ρ̂ⱼ) (``penalty="kl"``).

    With ``rho_momentum`` m > 0, ρ̂ is a running mean over batches (see :class:`~aekit.parts.sparse.KLSparsity`).
    """
    code_size = _code_size_or_double(input_shape, code_size)
    omega: Penalty = L1(lam) if penalty == "l1" else KLSparsity(rho, lam, rho_momentum)  # create checked it
    unused(penalty == "kl", rho=(rho, 0.05), rho_momentum=(rho_momentum, 0.0))
    return body.autoencoder(input_shape, code_size, out, body.activation, penalties=[omega])


@register("ksparse", "k-sparse code: the k largest units per sample (Makhzani & Frey), AuxK optional",
          epochs=30, lr=1e-3)
def ksparse(
    input_shape: tuple[int, ...],
    code_size: int = 0,
    k: int = 25,
    alpha: float = 1.0,
    k_start: int = 0,
    anneal_steps: int = 0,
    aux_k: int = 0,
    aux_coef: float = 1 / 32,
    dead_after: int = 10_000,
    body: MLPBody = MLPBody(activation="relu", tied=True),
    out: Output = Output(),
) -> Autoencoder:
    """Linear code units of which only the top k per sample survive (αk at encode time, for features only).

    ``aux_k`` > 0 adds Gao et al.'s AuxK loss, weighted by ``aux_coef``, for units dead for more
    than ``dead_after`` training samples (see :class:`~aekit.parts.sparse.AuxK`).
    """
    code_size = _code_size_or_double(input_shape, code_size)
    unused(bool(body.hidden), activation=(body.activation, "relu"))
    unused(anneal_steps > 0, k_start=(k_start, 0))
    unused(k_start > k, anneal_steps=(anneal_steps, 0))
    unused(aux_k > 0, aux_coef=(aux_coef, 1 / 32), dead_after=(dead_after, 10_000))
    topk = TopK(k, alpha, k_start or None, anneal_steps, dead_after)
    topk.check_size(code_size)
    penalties = [AuxK(aux_k, aux_coef)] if aux_k else []
    return body.autoencoder(input_shape, code_size, out, topk, penalties=penalties)


@register("denoising", "reconstructs the clean x from a corrupted copy (masking, Gaussian, salt-and-pepper)",
          epochs=30, lr=1e-3)
def denoising(
    input_shape: tuple[int, ...],
    code_size: int = 0,
    noise: str = "masking",
    level: float = 0.25,
    walkback: int = 0,
    body: MLPBody = MLPBody(),
    out: Output = Output(),
) -> Autoencoder:
    """Corruption ``noise`` at ``level`` (ν or σ; ``"masking:0.3+gaussian:0.1"`` composes) on training batches;
    ``walkback`` > 0 also trains on that many further corruptions along the model's own Markov chain
    (:class:`~aekit.parts.denoising.Walkback`)."""
    code_size = _code_size_or_double(input_shape, code_size)
    uses_level = noise not in ("none", "identity") and any(own is None for _, own in parse_noise(noise))
    unused(uses_level, level=(level, 0.25))
    corruption = make_corruption(noise, level if uses_level else None)
    penalties = [Walkback(walkback)] if walkback else []
    return body.autoencoder(input_shape, code_size, out, body.activation, corruption=corruption, penalties=penalties)


@register("contractive", "penalises the encoder Jacobian: lam * ||df/dx||_F^2 (closed form or estimated)",
          epochs=30, lr=1e-3)
def contractive(
    input_shape: tuple[int, ...],
    code_size: int = 0,
    lam: float = 0.1,
    method: str = "auto",
    projections: int = 1,
    body: MLPBody = MLPBody(),
    out: Output = Output(),
) -> Autoencoder:
    """λ‖∂f/∂x‖²_F: closed form for one sigmoid/tanh/relu/softplus layer, else a stochastic estimate."""
    code_size = _code_size_or_double(input_shape, code_size)
    return body.autoencoder(input_shape, code_size, out, body.activation,
                            penalties=[Contractive(lam, method, projections)])


# ---------------------------------------------------------------------------- sequences
# Windows (T, C) of a series (time first; see aekit.core.networks.sequence); a Gaussian likelihood by default, since
# a series is standardised per channel rather than scaled to [0, 1].
SERIES = Output(likelihood="gaussian")


@register("tcn", "dilated temporal convolutions for windows (T, C) of a series, linear code", epochs=30, lr=1e-3)
def tcn(input_shape: tuple[int, ...], code_size: int = 8, channels: Sequence[int] = (32, 32, 32), kernel: int = 3,
        activation: str = "relu", out: Output = SERIES) -> Autoencoder:
    """Residual blocks of dilated 1-D convolutions (receptive field 1 + (kernel − 1)(2^blocks − 1) steps)."""
    encoder = TCNEncoder(input_shape, channels, need_code_size(code_size), activation, kernel)
    return Autoencoder(encoder, TCNDecoder(encoder, activation), out.make(input_shape), input_shape=input_shape,
                       code_size=code_size)


@register("lstm", "GRU/LSTM encoder-decoder for windows (T, C) of a series (EncDec-AD)", epochs=30, lr=1e-3)
def lstm(input_shape: tuple[int, ...], code_size: int = 8, hidden_size: int = 64, layers: int = 1,
         cell: str = "lstm", teacher_forcing: float = 0.0, out: Output = SERIES) -> Autoencoder:
    """The code is an affine map of the final state; the decoder is unrolled from it, autoregressive and
    fed the true previous steps in training where ``teacher_forcing`` > 0 (scoring always runs free)."""
    encoder = RNNEncoder(input_shape, hidden_size, layers, need_code_size(code_size), cell)
    likelihood = out.make(input_shape)
    return Autoencoder(encoder, RNNDecoder(encoder, teacher_forcing, likelihood.mean), likelihood,
                       input_shape=input_shape, code_size=code_size)


@register("transformer", "small Transformer encoder for windows (T, C) of a series, mean-pooled code",
          epochs=30, lr=1e-3)
def transformer(input_shape: tuple[int, ...], code_size: int = 8, d_model: int = 32, heads: int = 4,
                layers: int = 2, out: Output = SERIES) -> Autoencoder:
    """Pre-norm Transformer layers with sinusoidal positions; the decoder attends over the code at every step."""
    encoder = AttentionEncoder(input_shape, d_model, heads, layers, need_code_size(code_size))
    return Autoencoder(encoder, AttentionDecoder(encoder), out.make(input_shape), input_shape=input_shape,
                       code_size=code_size)


# ---------------------------------------------------------------------------- stochastic


@register("vae", "variational autoencoder: Gaussian q(h|x), N(0, I) prior, loss = negative ELBO in nats",
          epochs=100, batch_size=100, lr=1e-3)
def vae(
    input_shape: tuple[int, ...],
    code_size: int = 50,
    hidden: Sequence[int] = (200, 200),
    activation: str = "tanh",
    out: Output = Output(),
    beta: float = 1.0,
    free_bits: float = 0.0,
) -> Autoencoder:
    """MLP encoder to (mu, log σ²) of q(h | x), MLP decoder to the parameters of p(x | h).

    The defaults are Burda et al.'s (2015) one-stochastic-layer MNIST model, 784-200-200-50.
    ``likelihood="gaussian_learned"`` learns one σ per dimension (``sigma`` is its start).
    ``beta`` weighs the KL (β-VAE); ``free_bits`` is a floor in nats per code unit.
    """
    d = math.prod(input_shape)
    code_size = need_code_size(code_size)
    unused(beta > 0, free_bits=(free_bits, 0.0))
    if not hidden:
        raise ValueError("vae needs at least one hidden layer (hidden=[...]) before the mu and log-variance heads")
    body = MLP([d, *hidden], activation, final=activation)
    encoder = GaussianEncoder(body, body.sizes[-1], code_size)
    decoder = MLP([code_size, *reversed(hidden), d], activation)
    return Autoencoder(encoder, decoder, out.make(input_shape), input_shape=input_shape,
                       code_size=code_size, penalties=[GaussianKL(beta, free_bits)])
