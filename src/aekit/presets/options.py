"""What each preset option means and accepts, in one place.

An option keeps one meaning in every preset that has it (``lam`` is always a penalty's weight, ``k`` the
latents kept per sample). This table is the home of its help — ``aekit train --help``, ``aekit presets`` —
and of its constraint, which :func:`aekit.create` checks before a builder runs, for aekit's presets and a
user's alike. Its defaults live in the builders' signatures, which differ by preset; values a part parses
itself (an activation's or a likelihood's name, a noise recipe) are checked by that part, with the same
wording (:func:`aekit._checks.check`).

Example
-------
>>> print(OPTIONS["lam"].help)
penalty weight λ (sparse, contractive, psd; the L1/L0 weight of an SAE)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._checks import BOOL, Constraint, Interval, OneOf, Sizes, Text, validate


@dataclass(frozen=True)
class Option:
    """One preset option: what it means (``help``) and what it accepts (any of ``accepts``)."""

    help: str
    accepts: tuple[Constraint, ...]


def _opt(help: str, *accepts: Constraint) -> Option:
    return Option(help, accepts)


_COUNT, _WEIGHT = Interval(int, 0), Interval(float, 0)
_POSITIVE, _SHARE = Interval(float, 0, None, "neither"), Interval(float, 0, 1, "neither")

OPTIONS: dict[str, Option] = {
    # the body and the output, shared by the classic presets
    "code_size": _opt("code units K (0: the preset's own size, e.g. 2·D when overcomplete, expansion × D for SAEs)",
                      _COUNT),
    "hidden": _opt("hidden layer sizes, e.g. 512,256 (empty: none)", Sizes()),
    "channels": _opt("convolution channels per stride-2 stage, e.g. 32,64", Sizes()),
    "activation": _opt("hidden activation: relu, gelu, sigmoid, tanh, softplus, elu, linear", Text()),
    "code_activation": _opt("activation of the code units (by default none: a linear code)", OneOf(None), Text()),
    "likelihood": _opt("p(x | h): bernoulli (data in [0, 1]), gaussian, or gaussian_learned (σ per dimension)",
                       Text()),
    "sigma": _opt("σ of the Gaussian likelihood (the start of a learned one)", _POSITIVE),
    "tied": _opt("decoder weights are the encoder's transposed (--tied / --no-tied)", BOOL),
    # the regularised family
    "penalty": _opt("sparse: l1 (λ‖h‖₁) or kl (λ·Σ KL(ρ ‖ ρ̂ⱼ))", OneOf("l1", "kl")),
    "lam": _opt("penalty weight λ (sparse, contractive, psd; the L1/L0 weight of an SAE)", _WEIGHT),
    "rho": _opt("sparse kl: target mean activation ρ", _SHARE),
    "rho_momentum": _opt("sparse kl: running-mean momentum of ρ̂ (0: the batch's mean)", Interval(float, 0, 1, "left")),
    "k": _opt("latents kept per sample (ksparse, sae-topk; the mean per token for sae-batchtopk)", Interval(int, 1)),
    "alpha": _opt("ksparse: keep α·k units in encoded features (training keeps k)", Interval(float, 1)),
    "k_start": _opt("ksparse: anneal k down from this value (0: off) ...", _COUNT),
    "anneal_steps": _opt("... over this many batches", _COUNT),
    "aux_k": _opt("AuxK: model the residual with this many dead units (0: off)", _COUNT),
    "aux_coef": _opt("AuxK: weight of its loss", _WEIGHT),
    "dead_after": _opt("a unit that has not fired for this many training samples is dead (AuxK revives it)",
                       Interval(int, 1)),
    "noise": _opt("denoising: masking, gaussian, salt_pepper, or e.g. masking:0.3+gaussian:0.1", Text()),
    "level": _opt("denoising: noise level (fraction ν or σ) of parts without their own", _WEIGHT),
    "walkback": _opt("denoising: further corruptions per step along the model's own Markov chain (walkback "
                     "training, Bengio et al. 2013; 0: off)", _COUNT),
    "method": _opt("contractive: auto, closed, stochastic or exact", Text()),
    "projections": _opt("contractive: random projections of the stochastic estimate", Interval(int, 1)),
    "gamma": _opt("psd: weight γ of ½‖h* − f(x)‖², which pulls the fast predictor to the sparse codes", _POSITIVE),
    "steps": _opt("psd: FISTA iterations that find each training batch's sparse codes", Interval(int, 1)),
    "binary": _opt("hashing: how the code becomes bits: itq (ITQ's rotation of the real-valued code, after "
                   "training), noise (Gaussian noise before the sigmoid) or ste (hard bits, the sigmoid's "
                   "gradient)", OneOf("itq", "noise", "ste")),
    "code_noise": _opt("hashing binary=noise: σ of the noise added before each bit's sigmoid", _POSITIVE),
    "balance": _opt("hashing binary=noise/ste: weight β of the mean over the bits of KL(½ ‖ each bit's rate), "
                    "each bit on for half the items (0: off)", _WEIGHT),
    "decorrelation": _opt("hashing binary=noise/ste: weight of the bits' mean squared correlation over the batch "
                          "(0: off)", _WEIGHT),
    # sequence bodies (windows of a series)
    "kernel": _opt("tcn: width of each temporal convolution (odd)", Interval(int, 1)),
    "hidden_size": _opt("lstm: units of each recurrent layer", Interval(int, 1)),
    "cell": _opt("lstm: the recurrent cell, lstm or gru", OneOf("lstm", "gru")),
    "teacher_forcing": _opt("lstm: chance a training step of the decoder is fed the true previous value, not "
                            "its own prediction (0: it sees the code only; scoring always runs free)",
                            Interval(float, 0, 1)),
    "layers": _opt("lstm, transformer: stacked layers", Interval(int, 1)),
    "d_model": _opt("transformer: width of each step's embedding (a multiple of heads)", Interval(int, 1)),
    "heads": _opt("transformer: attention heads", Interval(int, 1)),
    # stochastic
    "beta": _opt("vae: weight β of the KL term", _WEIGHT),
    "free_bits": _opt("vae: KL floor in nats per code unit (0: off)", _WEIGHT),
    # sparse autoencoders on activations
    "expansion": _opt("SAE: latents per input dimension when code_size is 0", Interval(int, 1)),
    "unit_norm": _opt("SAE: decoder columns kept at unit norm", BOOL),
    "b_init": _opt("SAE: pre-encoder bias from the geometric median, the mean, or zero",
                   OneOf("median", "mean", "zero")),
    "gain": _opt("SAE: a learned gain per latent (the norm of the decoder's free parameter)", BOOL),
    "threshold": _opt("sae-jumprelu: initial threshold (0: the paper's 0.001, scaled)", _WEIGHT),
    "bandwidth": _opt("sae-jumprelu: straight-through kernel bandwidth (0: the paper's 0.001, scaled)", _WEIGHT),
}


def check_options(values: Mapping[str, Any]) -> None:
    """``ValueError`` for the first of ``values`` (a preset's options) that its :data:`OPTIONS` entry refuses."""
    validate(values, {k: o.accepts for k, o in OPTIONS.items()})
