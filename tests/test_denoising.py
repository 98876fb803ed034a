"""The denoising autoencoder as a generative model: its score estimate and its Markov chain on 2-D densities
whose score is known exactly; walkback training."""

import numpy as np
import pytest
import torch

import aekit
from aekit.parts.denoising import Walkback, chain, score_estimate
from aekit.evaluation.manifold import circle
from aekit.evaluation.metrics import mmd2

MU, S, PI = np.array([[-1.5, 0.0], [1.5, 0.0], [0.0, 1.5]]), 0.3, np.array([0.3, 0.3, 0.4])
SIGMA = 0.1  # the corruption


def mixture(n, seed):
    r = np.random.default_rng(seed)
    return (MU[r.choice(3, n, p=PI)] + S * r.normal(size=(n, 2))).astype(np.float32)


def mixture_score(x, sigma):
    """∇ log p_σ(x) of the mixture smoothed by the corruption: the same mixture with variances S² + σ²."""
    v = S**2 + sigma**2
    logw = np.log(PI)[None] - ((x[:, None] - MU[None]) ** 2).sum(-1) / (2 * v)
    w = np.exp(logw - logw.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    return (w[..., None] * (MU[None] - x[:, None])).sum(1) / v


def cosine(a, b):
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).mean())


def dae(data, walkback=0):
    torch.manual_seed(0)
    model = aekit.create("denoising", (2,), code_size=64, hidden=[128, 128], activation="softplus", noise="gaussian",
                         level=SIGMA, likelihood="gaussian_learned", walkback=walkback)
    aekit.fit(model, data, epochs=60, batch_size=128, lr=3e-3, schedule="cosine", val_fraction=0, seed=0,
              progress=False)
    return model


@pytest.fixture(scope="module")
def on_mixture():
    return dae(mixture(4000, 0), walkback=1)


@pytest.fixture(scope="module")
def on_circle():
    return dae(circle(4000, 0.1, seed=0))


def _mean_chain(model, x, steps):  # the chain without the draw from p(x | x̃): a negative control
    with torch.no_grad():
        for _ in range(steps):
            x = model.reconstruct(model.corrupt(x))
    return x.numpy()


def test_the_score_estimate_points_along_the_true_score_of_a_mixture(on_mixture):
    x = mixture(1000, 2)
    assert cosine(score_estimate(on_mixture, x).numpy(), mixture_score(x, SIGMA)) > 0.9


def test_the_score_estimate_points_back_to_the_circle(on_circle):
    x = circle(1000, 0.1, seed=2)
    radius = np.linalg.norm(x, axis=1, keepdims=True)
    off = np.abs(radius[:, 0] - 1) > 0.1  # on the circle itself the score is ~0 and has no direction
    true = -(radius - 1) * x / radius  # the radial density's score, up to a positive factor
    assert cosine(score_estimate(on_circle, x).numpy()[off], true[off]) > 0.95


# MMD with a Gaussian kernel at the data's own scale (a component's σ; the circle's width), where the sampler's
# errors show; the median heuristic's ~2 would not see the width of the mixture's components
@pytest.mark.parametrize("which, bandwidth, bound, collapsed_above", [("mixture", S, 4e-3, 0.02),
                                                                      ("circle", 0.1, 1.5e-3, 2.5e-3)])
def test_the_chain_samples_the_data_distribution(which, bandwidth, bound, collapsed_above, on_mixture, on_circle):
    model = on_mixture if which == "mixture" else on_circle
    sample = (lambda n, seed: mixture(n, seed)) if which == "mixture" else (lambda n, seed: circle(n, 0.1, seed=seed))
    truth = sample(1000, 1)
    reference = [mmd2(sample(1000, seed), truth, bandwidth) for seed in (5, 6, 7)]  # truth against truth
    assert max(np.abs(reference)) < bound / 3, reference  # the bound is well above MMD's own noise
    torch.manual_seed(0)
    draws, _ = chain(model, sample(1000, 3), steps=500, every=500)  # 500 steps from a sample of the data
    assert mmd2(draws[-1].numpy(), truth, bandwidth) < bound
    # without the draw from p(x | x̃) the chain sharpens the density: the same test then fails
    assert mmd2(_mean_chain(model, torch.from_numpy(sample(1000, 3)), 500), truth, bandwidth) > collapsed_above


def test_chain_keeps_every_kth_state_and_refuses_a_model_without_corruption():
    model = aekit.create("denoising", (3,), code_size=4, noise="gaussian", level=0.5, likelihood="gaussian")
    torch.manual_seed(0)
    draws, means = chain(model, torch.zeros(2, 3), steps=6, every=3)
    torch.manual_seed(0)
    again, _ = chain(model, torch.zeros(2, 3), steps=6, every=1)
    torch.testing.assert_close(draws, again[[2, 5]])
    assert means.shape == (2, 2, 3)
    with pytest.raises(ValueError, match="needs a corruption"):
        chain(aekit.create("undercomplete", (3,), code_size=2), torch.zeros(1, 3), steps=2)
    with pytest.raises(ValueError, match="Gaussian corruption"):
        score_estimate(aekit.create("denoising", (3,), code_size=4), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="3 values per sample"):
        score_estimate(model, torch.zeros(1, 4))


def test_walkback_trains_on_corruptions_of_the_models_own_draws():
    torch.manual_seed(0)
    model = aekit.create("denoising", (4,), code_size=8, noise="gaussian", level=0.3, likelihood="gaussian",
                         walkback=3)
    x = torch.rand(16, 4)
    out = model.train()(x)
    # three more reconstructions of the clean x, each about as hard as the first: about 3× its term
    assert 1.5 < float((out.terms["walkback"] / out.terms["reconstruction"]).detach()) < 6
    out.terms["walkback"].backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    with torch.no_grad():
        assert float(model.eval()(x).terms["walkback"]) == 0.0  # nothing is corrupted outside training
    with pytest.raises(ValueError, match="walkback needs a corruption"):
        aekit.create("denoising", (4,), code_size=8, noise="none", walkback=1)
    with pytest.raises(ValueError, match="walkback"):
        Walkback(0)
