"""Named recipes over the parts of :class:`~aekit.model.Autoencoder`.

A preset is a function ``(input_shape, **options) -> Autoencoder`` registered by
name with its training defaults. :func:`create` builds one and records the JSON
config that rebuilds it exactly (used by checkpoints).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .likelihoods import make_likelihood
from .model import Autoencoder
from .networks import MLP, ConvDecoder, ConvEncoder, TiedMLP


@dataclass(frozen=True)
class Preset:
    """A registered recipe: its builder, a one-line summary and training defaults."""

    name: str
    build: Callable[..., Autoencoder]
    summary: str
    train_defaults: dict[str, Any] = field(default_factory=dict)

    def options(self) -> dict[str, Any]:
        """The builder's options and their defaults (everything but ``input_shape``)."""
        sig = inspect.signature(self.build)
        return {k: p.default for k, p in sig.parameters.items() if k != "input_shape"}


PRESETS: dict[str, Preset] = {}


def register(name: str, summary: str, **train_defaults: Any) -> Callable:
    """Decorator: register a builder as preset ``name`` with training defaults."""

    def deco(fn: Callable[..., Autoencoder]) -> Callable[..., Autoencoder]:
        if name in PRESETS:
            raise ValueError(f"preset {name!r} is already registered")
        PRESETS[name] = Preset(name, fn, summary, dict(train_defaults))
        return fn

    return deco


def get_preset(name: str) -> Preset:
    """The registered preset ``name``, or a ``ValueError`` listing the known ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def create(name: str, input_shape: Sequence[int], **options: Any) -> Autoencoder:
    """Build preset ``name`` for samples of shape ``input_shape``.

    Options that are ``None`` take the preset's default; an unknown option is a
    ``ValueError`` that lists the accepted ones.

    Example
    -------
    >>> ae = create("undercomplete", (64,), code_size=8)
    >>> ae.config["preset"], ae.code_size
    ('undercomplete', 8)
    """
    preset = get_preset(name)
    accepted = preset.options()
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for preset {name!r}; accepted: {', '.join(accepted)}"
        )
    input_shape = tuple(int(s) for s in input_shape)
    if not input_shape or any(s < 1 for s in input_shape):
        raise ValueError(f"input_shape must be positive integers, got {input_shape}")
    resolved = {k: (options[k] if options.get(k) is not None else d) for k, d in accepted.items()}
    model = preset.build(input_shape, **resolved)
    model.config = {
        "preset": name,
        "input_shape": list(input_shape),
        "options": {k: _jsonable(v) for k, v in resolved.items()},
    }
    return model


def from_config(config: dict) -> Autoencoder:
    """Rebuild a model from the ``config`` recorded by :func:`create`."""
    try:
        return create(config["preset"], config["input_shape"], **config.get("options", {}))
    except (KeyError, TypeError) as e:
        raise ValueError(f"malformed model config ({e!r}): {config}") from None


def _mlp_autoencoder(
    input_shape: tuple[int, ...],
    hidden: Sequence[int],
    code_size: int,
    activation: str,
    code_activation: str | None,
    likelihood: str,
    sigma: float,
    tied: bool,
) -> Autoencoder:
    d = math.prod(input_shape)
    sizes = [d, *hidden, code_size]
    encoder = MLP(sizes, activation, final=code_activation)
    decoder = TiedMLP(encoder, activation) if tied else MLP(sizes[::-1], activation)
    return Autoencoder(
        encoder, decoder, make_likelihood(likelihood, sigma), input_shape=input_shape, code_size=code_size
    )


def _need_code_size(code_size: Any) -> int:
    if not isinstance(code_size, int) or isinstance(code_size, bool) or code_size < 1:
        raise ValueError(f"code_size must be a positive integer, got {code_size!r}")
    return code_size


@register("undercomplete", "MLP autoencoder with a code smaller than the input", epochs=60, lr=3e-3)
def undercomplete(
    input_shape: tuple[int, ...],
    code_size: int = 16,
    hidden: Sequence[int] = (256,),
    activation: str = "relu",
    code_activation: str | None = None,
    likelihood: str = "bernoulli",
    sigma: float = 1.0,
    tied: bool = False,
) -> Autoencoder:
    """MLP ``D → hidden → K → hidden → D`` with K < D."""
    d = math.prod(input_shape)
    if _need_code_size(code_size) >= d:
        raise ValueError(
            f"undercomplete needs code_size < input size {d}, got {code_size}; use the 'overcomplete' preset"
        )
    return _mlp_autoencoder(input_shape, hidden, code_size, activation, code_activation, likelihood, sigma, tied)


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
    if _need_code_size(code_size) >= d:
        raise ValueError(f"linear needs code_size < input size {d}, got {code_size}")
    return _mlp_autoencoder(input_shape, (), code_size, "linear", None, "gaussian", sigma, False)


@register("overcomplete", "one-hidden-layer autoencoder with a code at least as large as the input", epochs=30)
def overcomplete(
    input_shape: tuple[int, ...],
    code_size: int = 0,
    activation: str = "sigmoid",
    likelihood: str = "bernoulli",
    sigma: float = 1.0,
    tied: bool = False,
) -> Autoencoder:
    """``D → K → D`` with K ≥ D (``code_size=0`` means 2·D). Needs a regulariser to learn anything but a copy."""
    d = math.prod(input_shape)
    code_size = code_size or 2 * d
    if _need_code_size(code_size) < d:
        raise ValueError(f"overcomplete needs code_size >= input size {d}, got {code_size}")
    return _mlp_autoencoder(input_shape, (), code_size, activation, activation, likelihood, sigma, tied)


@register(
    "hinton2006",
    "deep 784-1000-500-250-30 autoencoder of Hinton & Salakhutdinov (2006), linear code",
    epochs=200,
    batch_size=256,
    lr=3e-3,
    optimizer="adamw",
    schedule="onecycle",
    precision="bf16",
)
def hinton2006(
    input_shape: tuple[int, ...],
    code_size: int = 30,
    hidden: Sequence[int] = (1000, 500, 250),
    activation: str = "gelu",
    likelihood: str = "bernoulli",
    sigma: float = 1.0,
) -> Autoencoder:
    """The deep autoencoder of Hinton & Salakhutdinov (2006), trained end to end (no RBM pre-training)."""
    _need_code_size(code_size)
    return _mlp_autoencoder(input_shape, hidden, code_size, activation, None, likelihood, sigma, False)


@register("conv", "convolutional autoencoder for (C, H, W) images; shapes inferred", epochs=30, lr=2e-3)
def conv(
    input_shape: tuple[int, ...],
    code_size: int = 16,
    channels: Sequence[int] = (32, 64),
    activation: str = "relu",
    likelihood: str = "bernoulli",
    sigma: float = 1.0,
) -> Autoencoder:
    """Strided 3×3 convolutions to a linear code and transposed convolutions back."""
    encoder = ConvEncoder(input_shape, channels, _need_code_size(code_size), activation)
    decoder = ConvDecoder(encoder, activation)
    return Autoencoder(
        encoder, decoder, make_likelihood(likelihood, sigma), input_shape=input_shape, code_size=code_size
    )
