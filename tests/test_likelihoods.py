import math

import pytest
import torch

from aekit import Bernoulli, Gaussian, make_likelihood


def test_bernoulli_nll_is_summed_cross_entropy():
    r = torch.randn(4, 6, dtype=torch.float64)
    x = torch.rand(4, 6, dtype=torch.float64)
    p = torch.sigmoid(r)
    expected = -(x * p.log() + (1 - x) * (1 - p).log()).sum(1)
    torch.testing.assert_close(Bernoulli().nll(r, x), expected)
    torch.testing.assert_close(Bernoulli().mean(r), p)


def test_gaussian_nll_is_normal_log_density():
    r = torch.randn(3, 5, dtype=torch.float64)
    x = torch.randn(3, 5, dtype=torch.float64)
    sigma = 0.7
    expected = -torch.distributions.Normal(r, sigma).log_prob(x).sum(1)
    torch.testing.assert_close(Gaussian(sigma).nll(r, x), expected)
    assert Gaussian().mean(r) is r


def test_gaussian_nll_known_value():
    assert Gaussian(1.0).nll(torch.zeros(1, 2), torch.ones(1, 2)).item() == pytest.approx(1 + math.log(2 * math.pi))


def test_bernoulli_rejects_data_outside_unit_interval():
    with pytest.raises(ValueError, match=r"needs data in \[0, 1\].*gaussian"):
        Bernoulli().validate(torch.tensor([[0.0, 2.0]]))
    Bernoulli().validate(torch.tensor([[0.0, 1.0]]))


@pytest.mark.parametrize("sigma", [0, -1, float("nan"), float("inf")])
def test_gaussian_rejects_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma"):
        Gaussian(sigma)


def test_unknown_likelihood():
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
        make_likelihood("poisson")
