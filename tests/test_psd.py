"""Predictive sparse decomposition: the inner solver against exact and reference answers, and the training."""

import numpy as np
import pytest
import torch
from sklearn.decomposition import sparse_encode

import aekit
from aekit.parts.psd import optimal_code, sparse_code


def _dictionary(d=20, k=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, k, generator=g)
    return w / w.norm(dim=0), torch.randn(50, d, generator=g)


@pytest.mark.parametrize("lam, sigma", [(0.5, 1.0), (0.2, 1.0), (0.1, 2.0)])
def test_without_the_predictor_term_fista_is_scikit_learns_lasso(lam, sigma):
    w, x = _dictionary()
    h = sparse_code(x, w, lam, sigma=sigma, steps=5000, tol=1e-9)
    ref = sparse_encode(x.double().numpy(), w.t().double().numpy(), alpha=lam * sigma**2, algorithm="lasso_cd",
                        max_iter=20_000)
    assert 0.1 < (ref != 0).mean() < 0.9  # a real selection, neither all nor nothing
    np.testing.assert_allclose(h.numpy(), ref, atol=2e-4)


def test_with_an_orthonormal_dictionary_the_code_is_a_shrunken_average():
    # ½(x − h)² + λ|h| + ½γ(h − p)² per coordinate: h = soft((x + γp)/(1 + γ), λ/(1 + γ))
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(1)))
    x, p = torch.randn(8, 6), torch.randn(8, 6)
    lam, gamma = 0.3, 2.0
    h = sparse_code(x, q, lam, gamma=gamma, target=p, steps=500)
    u = (x @ q + gamma * p) / (1 + gamma)
    torch.testing.assert_close(h, torch.nn.functional.softshrink(u, lam / (1 + gamma)), atol=1e-5, rtol=0)


def test_the_code_meets_the_optimality_conditions_with_the_predictor_term():
    w, x = _dictionary(seed=2)
    p = torch.randn(len(x), w.shape[1])
    lam, gamma, sigma = 0.4, 0.5, 1.5
    h = sparse_code(x, w, lam, sigma=sigma, gamma=gamma, target=p, steps=5000, tol=1e-10)
    g = (h @ w.t() - x) @ w / sigma**2 + gamma * (h - p)  # the smooth part's gradient
    on = h != 0
    assert 0.05 < on.float().mean() < 0.95
    torch.testing.assert_close(g[on], -lam * h[on].sign(), atol=1e-4, rtol=0)
    assert float(g[~on].abs().max()) <= lam + 1e-4


def test_bad_input_is_refused_with_the_reason():
    w, x = _dictionary()
    with pytest.raises(ValueError, match="gamma > 0 needs the target"):
        sparse_code(x, w, 0.1, gamma=1.0)
    with pytest.raises(ValueError, match="steps"):
        sparse_code(x, w, 0.1, steps=0)
    with pytest.raises(ValueError, match="psd needs likelihood='gaussian'"):
        aekit.create("psd", (8,), likelihood="bernoulli")
    with pytest.raises(ValueError, match="gamma"):
        aekit.create("psd", (8,), gamma=0.0)
    with pytest.raises(ValueError, match="needs a PSD model"):
        optimal_code(aekit.create("undercomplete", (8,), code_size=2), torch.zeros(1, 8))


def test_training_step_updates_the_dictionary_by_reconstruction_and_the_predictor_by_prediction():
    torch.manual_seed(0)
    model = aekit.create("psd", (16,), code_size=24, lam=0.05)
    x = torch.rand(32, 16)
    out = model.train()(x)
    assert not out.h.requires_grad  # h* is a constant for the optimiser
    out.terms["reconstruction"].backward(retain_graph=True)
    assert model.encoder.predictor.linear.weight.grad is None
    assert float(model.decoder.parametrizations.weight.original.grad.abs().sum()) > 0
    model.zero_grad()
    out.terms["prediction"].backward()
    assert model.decoder.parametrizations.weight.original.grad is None
    assert float(model.encoder.predictor.linear.weight.grad.abs().sum()) > 0
    model.eval()
    torch.testing.assert_close(model.code(x), model.encoder.predictor(x))  # at test time f(x) alone
    with torch.no_grad():
        assert float(model(x).terms["prediction"]) == 0.0


def test_the_predictor_approaches_the_optimal_codes_as_training_proceeds():
    data = aekit.load("digits")
    x, xt = torch.from_numpy(data.train.x), torch.from_numpy(data.test.x)
    torch.manual_seed(0)
    model = aekit.create("psd", (64,), code_size=96, lam=0.1)

    def gap():  # ‖f(x) − h*‖² / ‖h*‖² on held-out digits, h* the lasso code on the current dictionary
        with torch.no_grad():
            h = optimal_code(model, xt)
            return float((model.eval().code(xt) - h).square().sum() / h.square().sum())

    gaps = []
    for seed in range(3):
        aekit.fit(model, x, epochs=4, batch_size=64, lr=2e-3, val_fraction=0, seed=seed, progress=False)
        gaps.append(gap())
    assert gaps[-1] < 0.85 * gaps[0], gaps
    w = model.decoder.weight
    torch.testing.assert_close(w.norm(dim=0), torch.ones(w.shape[1]))  # unit columns after every step
    h = optimal_code(model, xt)
    assert 0.02 < float((h != 0).float().mean()) < 0.5  # sparse, not empty
