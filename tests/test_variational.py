"""The VAE against exact answers: closed-form KL vs Monte Carlo, the IWAE bound's order, each hyperparameter used."""

import math

import numpy as np
import pytest
import torch

from aekit import create, evaluate, fit
from aekit.store.data import binarize, load
from aekit.core.likelihoods import Gaussian, LearnedGaussian
from aekit.core.model import Batch
from aekit.parts.variational import GaussianKL, Posterior, elbo, interpolate, log_likelihood, prior_log_prob, sample


@pytest.fixture(scope="module")
def binary_digits():
    return load("digits", binarize=True)


@pytest.fixture(scope="module")
def trained_vae(binary_digits):
    torch.manual_seed(0)
    vae = create("vae", binary_digits.train.shape, code_size=4, hidden=[64])
    fit(vae, binary_digits.train.x, epochs=40, batch_size=64, lr=3e-3, val_fraction=0.0, progress=False)
    return vae


def _mean_se(v: torch.Tensor) -> tuple[float, float]:
    return float(v.mean()), float(v.std() / math.sqrt(len(v)))


def test_closed_form_kl_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    q = Posterior(torch.randn(3, 5, generator=g, dtype=torch.float64),
                  torch.randn(3, 5, generator=g, dtype=torch.float64))
    h = q.rsample(20000)  # (n, 3, 5)
    mc = q.log_prob(h) - prior_log_prob(h)  # (n, 3): samples of log q(h) − log p(h)
    exact = q.kl().sum(1)
    for j in range(3):
        m, se = _mean_se(mc[:, j])
        assert abs(m - exact[j].item()) < 3 * se, (m, se, exact[j].item())


def test_log_probs_match_torch_distributions():
    mu, logvar = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    h = torch.randn(4, 3, dtype=torch.float64)
    normal = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    torch.testing.assert_close(Posterior(mu, logvar).log_prob(h), normal.log_prob(h).sum(1))
    torch.testing.assert_close(prior_log_prob(h), torch.distributions.Normal(0.0, 1.0).log_prob(h).sum(1))
    kl = torch.distributions.kl_divergence(normal, torch.distributions.Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(Posterior(mu, logvar).kl().sum(1), kl)


def test_kl_penalty_gradcheck_and_beta():
    vae = create("vae", (4,), code_size=3, hidden=[5], beta=2.5)
    mu = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    logvar = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)

    def pen(mu, logvar, p=vae.penalties[0]):
        return p(Batch(x=mu, x_tilde=mu, h=mu, r=mu, model=vae, q=Posterior(mu, logvar)))

    assert torch.autograd.gradcheck(pen, (mu, logvar))
    kl = Posterior(mu, logvar).kl().sum(1).mean()
    torch.testing.assert_close(pen(mu, logvar), 2.5 * kl)


def test_free_bits_floor_per_unit():
    p = GaussianKL(beta=1.0, free_bits=0.5)
    mu = torch.tensor([[0.0, 2.0], [0.0, 2.0]], requires_grad=True)  # unit 0 at the prior, unit 1 KL = 2
    q = Posterior(mu, torch.zeros(2, 2))
    loss = p(Batch(x=mu, x_tilde=mu, h=mu, r=mu, model=None, q=q))
    assert loss.item() == pytest.approx(0.5 + 2.0)
    loss.backward()
    assert mu.grad[:, 0].abs().max() == 0 and mu.grad[:, 1].abs().min() > 0  # no push below the floor


@pytest.mark.parametrize("options", [{"free_bits": 0.5}, {"beta": 4.0}, {}])
def test_true_kl_and_elbo_are_logged_beside_the_objective(binary_digits, options):
    """Issue 17.4: with free bits or β ≠ 1 the loss is not −ELBO; the true KL and −ELBO are logged beside it."""
    x = torch.from_numpy(binary_digits.train.x[:300])
    torch.manual_seed(0)
    vae = create("vae", binary_digits.train.shape, code_size=4, hidden=[32], **options)
    torch.manual_seed(1)
    out = vae(x)
    kl = out.q.kl().sum(1).mean()
    torch.testing.assert_close(out.stats["kl_divergence"], kl)
    torch.testing.assert_close(out.stats["neg_elbo"], out.nll.mean() + kl)
    torch.testing.assert_close(out.loss, sum(out.terms.values()))  # the stats are not part of the loss
    if options:
        assert abs(out.loss.item() - out.stats["neg_elbo"].item()) > 0.05
    else:
        torch.testing.assert_close(out.loss, out.stats["neg_elbo"])
    rows = fit(vae, x, epochs=2, batch_size=100, val_fraction=0.2, progress=False).rows
    assert {"train_kl_divergence", "train_neg_elbo", "val_kl_divergence", "val_neg_elbo"} <= set(rows[-1])
    # evaluate's −ELBO is elbo()'s, drawn with the same noise
    res = evaluate(vae.eval(), x[:50])
    torch.manual_seed(2)
    ref = elbo(vae, x[:50])
    torch.manual_seed(2)
    assert evaluate(vae, x[:50])["neg_elbo"] == pytest.approx(-ref["elbo"].mean().item(), rel=1e-5)
    assert res["kl_divergence"] == pytest.approx(ref["kl"].mean().item(), rel=1e-5)


def test_iwae_bound_is_above_elbo_and_grows_with_k(trained_vae, binary_digits):
    x = torch.from_numpy(binary_digits.test.x[:200])
    torch.manual_seed(1)
    e = elbo(trained_vae, x)
    torch.testing.assert_close(e["elbo"], -(e["reconstruction"] + e["kl"]))
    bounds = {}
    for k in (1, 10, 100, 1000):
        torch.manual_seed(2)
        bounds[k] = log_likelihood(trained_vae, x, k)
    # k = 1 is the ELBO estimator: same expectation
    diff = bounds[1] - e["elbo"]
    m, se = _mean_se(diff)
    assert abs(m) < 3 * se + 1e-6, (m, se)
    for a, b in ((1, 10), (10, 100), (100, 1000)):
        assert bounds[b].mean() >= bounds[a].mean() - 1e-3, (a, b, bounds[a].mean(), bounds[b].mean())
    assert bounds[1000].mean() > e["elbo"].mean() + 0.1  # strictly tighter on a trained model


def test_log_likelihood_chunking_gives_the_same_estimate(trained_vae, binary_digits):
    x = torch.from_numpy(binary_digits.test.x[:50])
    torch.manual_seed(3)
    big = log_likelihood(trained_vae, x, 200)
    torch.manual_seed(4)
    small = log_likelihood(trained_vae, x, 200, max_elements=3 * 64)  # 3 samples per chunk, 1 row
    m, se = _mean_se(big - small)
    assert abs(m) < 3 * se + 1e-3


def test_beta_zero_trains_as_a_noisy_autoencoder(binary_digits):
    x = binary_digits.train.x
    models = {}
    for beta in (0.0, 1.0):
        torch.manual_seed(0)
        models[beta] = create("vae", binary_digits.train.shape, code_size=4, hidden=[64], beta=beta)
        fit(models[beta], x, epochs=30, batch_size=64, lr=3e-3, val_fraction=0.0, progress=False)
    xt = torch.from_numpy(binary_digits.test.x)
    out = models[0.0](xt)
    assert out.terms["kl"].item() == 0.0 and out.loss.item() == pytest.approx(out.terms["reconstruction"].item())
    rec = {b: m(xt).terms["reconstruction"].item() for b, m in models.items()}
    var = {b: m.posterior(xt).var.mean().item() for b, m in models.items()}
    assert rec[0.0] < rec[1.0]  # nothing pulls its codes to the prior ...
    assert var[0.0] < 0.5 * var[1.0]  # ... so its noise shrinks: an autoencoder with a little noise on h


def test_kl_warmup_weight_is_used_and_logged(binary_digits):
    x = binary_digits.train.x[:256]
    rows = {}
    for warm in (0.0, 4.0):
        torch.manual_seed(0)
        vae = create("vae", binary_digits.train.shape, code_size=4, hidden=[32])
        rows[warm] = fit(vae, x, epochs=2, batch_size=64, val_fraction=0.0, kl_warmup_epochs=warm, progress=False).rows
    assert [r["kl_weight"] for r in rows[4.0]] == [0.25, 0.5]
    assert "kl_weight" not in rows[0.0][0]
    assert rows[4.0][0]["train_kl"] != rows[0.0][0]["train_kl"]  # a weaker KL pull changes training
    with pytest.raises(ValueError, match="kl_warmup_epochs needs a model with a KL term"):
        fit(create("undercomplete", (64,), code_size=4), x, epochs=1, kl_warmup_epochs=1.0, progress=False)


def test_learned_sigma_is_trained_and_matches_fixed_sigma_at_start():
    lik = LearnedGaussian(size=3, sigma=0.7)
    r, x = torch.randn(5, 3), torch.randn(5, 3)
    torch.testing.assert_close(lik.nll(r, x), Gaussian(0.7).nll(r, x))
    xd = torch.randn(4, 3, dtype=torch.float64)
    rd = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    lik64 = LearnedGaussian(size=3).double()
    assert torch.autograd.gradcheck(lambda r: lik64.nll(r, xd), (rd,))
    torch.manual_seed(0)
    vae = create("vae", (6,), code_size=2, hidden=[8], likelihood="gaussian_learned")
    before = vae.likelihood.log_sigma.detach().clone()
    fit(vae, 0.1 * torch.randn(64, 6), epochs=20, batch_size=16, lr=1e-2, val_fraction=0.0, progress=False)
    assert (vae.likelihood.log_sigma < before - 0.5).all()  # σ learns the small scale of the data


def test_sigma_and_code_size_and_hidden_are_used():
    vae = create("vae", (1, 28, 28), sigma=0.3, likelihood="gaussian", code_size=7, hidden=[20, 10])
    assert vae.likelihood.sigma == 0.3 and vae.code_size == 7
    assert vae.encoder.body.sizes == [784, 20, 10] and vae.decoder.sizes == [7, 10, 20, 784]
    assert create("vae", (1, 28, 28)).encoder.body.sizes == [784, 200, 200]  # Burda et al.


def test_encode_sample_interpolate(trained_vae, binary_digits):
    x = torch.from_numpy(binary_digits.test.x[:5])
    torch.testing.assert_close(trained_vae.encode(x), trained_vae.encode(x))  # the posterior mean: no noise
    torch.testing.assert_close(trained_vae.encode(x), trained_vae.posterior(x).mean)
    assert (trained_vae.posterior(x).var > 0).all()
    s = sample(trained_vae, 9)
    assert s.shape == (9, 64) and ((s >= 0) & (s <= 1)).all()
    draws = sample(trained_vae, 9, mean=False)
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    line = interpolate(trained_vae, x[0], x[1], steps=5)
    assert line.shape == (5, 64)
    torch.testing.assert_close(line[0], trained_vae.reconstruct(x[:1])[0])
    torch.testing.assert_close(line[-1], trained_vae.reconstruct(x[1:2])[0])


def test_bad_input(trained_vae, binary_digits):
    grey = torch.full((3, 64), 0.5)
    with pytest.raises(ValueError, match="Bernoulli likelihood is a probability only for binary data"):
        log_likelihood(trained_vae, grey, 5)
    with pytest.raises(ValueError, match="binary"):
        elbo(trained_vae, grey)
    assert log_likelihood(trained_vae, grey, 5, allow_nonbinary=True).shape == (3,)
    with pytest.raises(ValueError, match="samples must be an integer >= 1"):
        log_likelihood(trained_vae, torch.from_numpy(binary_digits.test.x[:2]), 0)
    x = torch.from_numpy(binary_digits.test.x[:8]).clone()
    x[5, 3] = float("nan")
    with pytest.raises(ValueError, match=r"batch 1 \(rows 4–7\) contains NaN"):
        log_likelihood(trained_vae, x, 10, max_elements=4 * 10 * 64)
    with pytest.raises(ValueError, match="features per sample"):
        log_likelihood(trained_vae, torch.zeros(2, 10), 5)
    with pytest.raises(ValueError, match="needs a stochastic encoder"):
        sample(create("undercomplete", (64,)), 3)


@pytest.mark.parametrize("kwargs, message", [
    ({"beta": -1.0}, "beta must be a finite number >= 0"),
    ({"free_bits": -0.1}, "free_bits must be a finite number >= 0"),
    ({"hidden": []}, "vae needs at least one hidden layer"),
    ({"code_size": 0}, "code_size must be an integer >= 1, got 0"),
    ({"likelihood": "poisson"}, "unknown likelihood 'poisson'"),
])
def test_bad_vae_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        create("vae", (64,), **kwargs)


def test_kl_penalty_needs_a_stochastic_encoder():
    from aekit.core.likelihoods import Bernoulli
    from aekit.core.model import Autoencoder
    from aekit.core.networks.mlp import MLP

    with pytest.raises(ValueError, match="the KL penalty needs a stochastic encoder"):
        Autoencoder(MLP([4, 2]), MLP([2, 4]), Bernoulli(), input_shape=(4,), code_size=2, penalties=[GaussianKL()])


def test_binarize_is_seeded_and_unbiased():
    x = np.full((200, 50), 0.3, dtype=np.float32)
    b = binarize(x, seed=0)
    assert set(np.unique(b)) == {0.0, 1.0}
    se = math.sqrt(0.3 * 0.7 / b.size)
    assert abs(b.mean() - 0.3) < 5 * se
    np.testing.assert_array_equal(b, binarize(x, seed=0))
    assert not np.array_equal(b, binarize(x, seed=1))
    with pytest.raises(ValueError, match=r"binarising needs values in \[0, 1\]"):
        binarize(x + 1.0)
