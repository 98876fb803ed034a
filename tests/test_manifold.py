"""Manifold tools against exact answers, and the denoising autoencoder's field pointing back to the data."""

import numpy as np
import pytest
import torch

from aekit import create, fit
from aekit.evaluation.manifold import (circle, circle_distance, latent_traversal, spiral, swiss_roll, tangent_directions,
                            vector_field)
from aekit.evaluation.metrics import principal_angles


def test_tangent_directions_of_a_linear_encoder_are_its_right_singular_vectors():
    model = create("linear", (6,), code_size=3)
    w = model.encoder.linears[0].weight.detach().double().numpy()  # (3, 6): the Jacobian everywhere
    d, s = tangent_directions(model, np.random.default_rng(0).normal(size=(4, 6)), n=2)
    _, sv, vh = np.linalg.svd(w)
    for i in range(4):
        np.testing.assert_allclose(s[i], sv[:2], rtol=1e-5)
        assert principal_angles(d[i].T, vh[:2].T).max() < 1e-2


def test_tangent_directions_of_a_contractive_encoder_match_finite_differences():
    torch.manual_seed(0)
    model = create("contractive", (5,), code_size=3, activation="tanh")
    x = torch.randn(1, 5, dtype=torch.float64)
    model.double()
    eps = 1e-6
    jac = torch.stack([(model.encode(x + eps * e) - model.encode(x - eps * e))[0] / (2 * eps)
                       for e in torch.eye(5, dtype=torch.float64)], 1)  # (K, D)
    d, s = tangent_directions(model, x, n=3)
    np.testing.assert_allclose(s[0], torch.linalg.svdvals(jac).detach().numpy(), rtol=1e-5)


def test_latent_traversal_and_vector_field():
    torch.manual_seed(0)
    vae = create("vae", (6,), code_size=2, hidden=[8])
    x = np.random.default_rng(0).uniform(size=(1, 6)).astype(np.float32)
    t = latent_traversal(vae, x, span=2.0, steps=5)
    assert t.shape == (2, 5, 6)
    mid = vae.decode(vae.encode(torch.from_numpy(x))).detach().numpy()[0]
    np.testing.assert_allclose(t[:, 2], np.stack([mid, mid]), rtol=1e-5)  # t = 0: the sample's own code
    assert not np.allclose(t[0, 0], t[0, -1])
    with pytest.raises(ValueError, match=r"axes \[5\] are not code units"):
        latent_traversal(vae, x, axes=[5])
    with pytest.raises(ValueError, match="scale must have one value per code unit"):
        latent_traversal(vae, x, scale=np.ones(3))
    ae = create("undercomplete", (6,), code_size=2, likelihood="gaussian")
    p = np.random.default_rng(1).normal(size=(7, 6)).astype(np.float32)
    np.testing.assert_allclose(vector_field(ae, p), ae.reconstruct(torch.from_numpy(p)).detach().numpy() - p,
                               rtol=1e-6)


def test_toy_manifolds():
    c = circle(500, seed=0)
    assert c.shape == (500, 2) and circle_distance(c).max() < 1e-6
    noisy = circle(2000, noise=0.1, seed=0)
    assert 0.05 < circle_distance(noisy).mean() < 0.1  # E|N(0, 0.1²)| ≈ 0.08
    s = spiral(300, seed=0)
    assert s.shape == (300, 2) and np.abs(s).max() <= 1.0 + 1e-6
    x, t = swiss_roll(200, seed=0)
    assert x.shape == (200, 3) and t.shape == (200,) and np.abs(x).max() <= 1.0


def test_denoising_field_points_back_to_the_circle():
    torch.manual_seed(0)
    data = circle(2000, seed=0)
    dae = create("denoising", (2,), code_size=64, hidden=[64], activation="tanh", noise="gaussian", level=0.2,
                 likelihood="gaussian", sigma=0.1)
    fit(dae, data, epochs=150, batch_size=128, lr=3e-3, val_fraction=0.0, progress=False)
    rng = np.random.default_rng(1)
    angle = rng.uniform(0, 2 * np.pi, 500)
    radius = 1 + rng.choice([-1, 1], 500) * rng.uniform(0.1, 0.25, 500)  # just off the circle, both sides
    off = (radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1)).astype(np.float32)
    moved = off + vector_field(dae, off)
    before, after = circle_distance(off).mean(), circle_distance(moved).mean()
    assert after < 0.5 * before, (before, after)
