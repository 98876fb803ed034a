import pytest
import torch

from aekit import MLP, Autoencoder, Bernoulli, Gaussian
from aekit.sparse import L1


def _ae(**kw):
    return Autoencoder(MLP([6, 3]), MLP([3, 6]), Gaussian(), input_shape=(6,), code_size=3, **kw)


def test_output_terms_sum_to_loss_and_reconstruction_is_nll_mean():
    ae = _ae(penalties=[L1(0.5)])
    x = torch.randn(4, 6)
    out = ae(x)
    torch.testing.assert_close(out.terms["reconstruction"], ae.likelihood.nll(out.r, x).mean())
    torch.testing.assert_close(out.terms["l1"], 0.5 * out.h.abs().sum(1).mean())
    torch.testing.assert_close(out.loss, out.terms["reconstruction"] + out.terms["l1"])


def test_penalty_names_must_be_unique():
    with pytest.raises(ValueError, match="penalty names must be unique"):
        _ae(penalties=[L1(0.1), L1(0.2)])


def test_reconstruct_is_likelihood_mean():
    ae = Autoencoder(MLP([6, 3]), MLP([3, 6]), Bernoulli(), input_shape=(6,), code_size=3)
    x = torch.rand(2, 6)
    torch.testing.assert_close(ae.reconstruct(x), torch.sigmoid(ae.decoder(ae.encoder(x))))
    assert ae.is_regularised is False and ae.input_size == 6
