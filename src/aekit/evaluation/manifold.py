"""The autoencoder as a model of the data manifold: tangent directions, latent traversals, vector fields,
and toy manifolds to see them on.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.func import jacrev, vmap

from .._checks import integer, number
from ..core.model import Autoencoder, evaluating


def _rows(model: Autoencoder, x: np.ndarray | Tensor) -> Tensor:
    w = next(model.parameters())
    t = x if isinstance(x, Tensor) else torch.from_numpy(np.asarray(x))
    return t.to(w.device, w.dtype).reshape(-1, model.input_size)  # the model's device and precision


def tangent_directions(model: Autoencoder, x: np.ndarray | Tensor, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Leading right-singular vectors of the encoder Jacobian ∂f/∂x at each point (Rifai et al., 2011).

    Returns ``(directions, singular_values)`` of shapes (N, n, D) and (N, n): the input-space
    directions the code is most sensitive to — for a contractive autoencoder, the tangent plane
    of the data manifold at x. Uses the posterior mean for a VAE.

    Example
    -------
    >>> from aekit import create
    >>> d, s = tangent_directions(create("contractive", (6,), code_size=4), np.zeros((2, 6)), n=3)
    >>> d.shape, s.shape
    ((2, 3, 6), (2, 3))
    """
    n = integer(n, "number of tangent directions n")
    x = _rows(model, x)
    n = min(n, model.code_size, model.input_size)
    with evaluating(model):
        jac = vmap(jacrev(lambda v: model.encode(v[None])[0]))(x)  # (N, K, D)
    _, s, vh = torch.linalg.svd(jac, full_matrices=False)  # vh (N, min(K, D), D)
    return vh[:, :n].detach().cpu().numpy(), s[:, :n].detach().cpu().numpy()


@torch.no_grad()
def latent_traversal(model: Autoencoder, x: np.ndarray | Tensor, span: float = 3.0, steps: int = 7,
                     axes: list[int] | None = None, scale: np.ndarray | None = None) -> np.ndarray:
    """Decode the code of one sample ``x`` moved along each code axis, (len(axes), steps, D).

    Axis j runs through h_j + t·scale_j for t in [−span, span]. ``scale`` (K,) defaults to ones —
    the prior's scale for a VAE; for a deterministic code pass its spread, e.g. ``codes.std(0)``.

    Example
    -------
    >>> from aekit import create
    >>> latent_traversal(create("vae", (6,), code_size=2, hidden=[4]), np.zeros(6), steps=5).shape
    (2, 5, 6)
    """
    steps = integer(steps, "steps", low=2)
    span = number(span, "span", 0, low_open=True)
    with evaluating(model):
        h = model.encode(_rows(model, x)[:1])[0]  # (K,)
    axes = list(range(model.code_size)) if axes is None else list(axes)
    bad = [a for a in axes if not (0 <= a < model.code_size)]
    if bad:
        raise ValueError(f"axes {bad} are not code units (the code has {model.code_size})")
    s = torch.ones_like(h) if scale is None else torch.as_tensor(np.asarray(scale), dtype=h.dtype, device=h.device)
    if s.shape != h.shape:
        raise ValueError(f"scale must have one value per code unit ({model.code_size}), got shape {tuple(s.shape)}")
    t = torch.linspace(-span, span, steps, device=h.device)
    out = []
    with evaluating(model):
        for a in axes:
            codes = h.repeat(steps, 1)
            codes[:, a] = h[a] + t * s[a]
            out.append(model.decode(codes))
    return torch.stack(out).cpu().numpy()


@torch.no_grad()
def vector_field(model: Autoencoder, points: np.ndarray | Tensor) -> np.ndarray:
    """The reconstruction vector field r(x) − x at ``points`` (N, D): for a denoising autoencoder it
    points back towards the data manifold (Alain & Bengio, 2014)."""
    x = _rows(model, points)
    with evaluating(model):
        return (model.reconstruct(x) - x).cpu().numpy()


# ---------------------------------------------------------------------------- toy manifolds


def circle(n: int = 1000, noise: float = 0.0, radius: float = 1.0, seed: int = 0) -> np.ndarray:
    """``n`` points on a circle of ``radius`` around the origin, plus Gaussian ``noise``, (n, 2) float32."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * math.pi, integer(n, "n"))
    x = radius * np.stack([np.cos(t), np.sin(t)], 1)
    return (x + number(noise, "noise", 0) * rng.normal(size=x.shape)).astype(np.float32)


def circle_distance(x: np.ndarray, radius: float = 1.0) -> np.ndarray:
    """Distance of each point (N, 2) to the circle of ``radius`` around the origin, (N,)."""
    return np.abs(np.linalg.norm(x, axis=1) - radius)


def spiral(n: int = 1000, noise: float = 0.0, turns: float = 1.5, seed: int = 0) -> np.ndarray:
    """``n`` points on an Archimedean spiral r = θ / (2π·turns) in the unit disc, plus ``noise``, (n, 2)."""
    rng = np.random.default_rng(seed)
    theta = np.sqrt(rng.uniform(0.05, 1, integer(n, "n"))) * 2 * math.pi * number(turns, "turns", 0, low_open=True)
    r = theta / (2 * math.pi * turns)
    x = np.stack([r * np.cos(theta), r * np.sin(theta)], 1)
    return (x + number(noise, "noise", 0) * rng.normal(size=x.shape)).astype(np.float32)


def swiss_roll(n: int = 1000, noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's swiss roll, centred and scaled into [−1, 1]³ (before noise): points (n, 3) and
    their position t along the roll."""
    from sklearn.datasets import make_swiss_roll

    x, t = make_swiss_roll(integer(n, "n"), noise=number(noise, "noise", 0), random_state=seed)
    x[:, 1] -= 10.5  # the roll's width runs over [0, 21]
    return (x / (4.5 * math.pi)).astype(np.float32), t
