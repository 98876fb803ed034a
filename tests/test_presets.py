"""Every registered preset, the moment it exists: shapes, finite loss, gradients, overfitting."""

import math

import pytest
import torch

from aekit import PRESETS, create, fit, get_preset

IMAGE = (1, 8, 8)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_shapes_loss_and_backward(name):
    model = create(name, IMAGE)
    x = torch.rand(7, 64)
    out = model(x)
    assert out.h.shape == (7, model.code_size)
    assert out.r.shape == (7, 64) and out.x_tilde.shape == (7, 64) and out.nll.shape == (7,)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    torch.testing.assert_close(out.loss, sum(out.terms.values()))
    assert "reconstruction" in out.terms
    out.loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    assert model.encode(x).shape == (7, model.code_size)
    r = model.reconstruct(x)
    assert r.shape == (7, 64)
    assert model.decode(model.encode(x)).shape == (7, 64)


@pytest.mark.filterwarnings("ignore:the code.*identity copy")
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_overfits_one_batch(name):
    model = create(name, IMAGE)
    x = (torch.rand(16, 64) > 0.5).float()
    first = model(x).loss.item()
    fit(model, x, epochs=150, batch_size=16, lr=3e-3, val_fraction=0.0, schedule="constant", progress=False)
    out = model.train()(x)
    # a VAE pays KL to tell the 16 samples apart (at least log 16 nats each): not reducible, so
    # for it the reconstruction term is what must fall
    last = (out.terms["reconstruction"] if model.stochastic else out.loss).item()
    d = x.shape[1]
    floor = 0.5 * d * math.log(2 * math.pi) if model.likelihood.name == "gaussian" else 0.0
    # most of the reducible loss is gone
    assert last - floor < 0.35 * (first - floor), (first, last)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_config_rebuilds_same_architecture(name):
    model = create(name, IMAGE)
    again = create(model.config["preset"], model.config["input_shape"], **model.config["options"])
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in again.state_dict().items()}
    assert get_preset(name).summary


def test_unknown_preset_and_option():
    with pytest.raises(ValueError, match="unknown preset 'bogus'; choose one of"):
        create("bogus", IMAGE)
    with pytest.raises(ValueError, match="unknown option.*hidden.*linear"):
        create("linear", IMAGE, hidden=[3])


def test_code_size_constraints():
    with pytest.raises(ValueError, match="code_size < input size 64"):
        create("undercomplete", IMAGE, code_size=64)
    with pytest.raises(ValueError, match="code_size >= input size 64"):
        create("overcomplete", IMAGE, code_size=10)
    with pytest.raises(ValueError, match="code_size must be a positive integer"):
        create("hinton2006", IMAGE, code_size=0)
    assert create("overcomplete", IMAGE).code_size == 128


def test_conv_preset_needs_images():
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        create("conv", (64,))


def test_hinton2006_architecture():
    m = create("hinton2006", (1, 28, 28))
    assert m.encoder.sizes == [784, 1000, 500, 250, 30]
    assert isinstance(m.encoder.final, torch.nn.Identity)  # linear code layer


def test_tied_option_is_used():
    untied = create("undercomplete", IMAGE, tied=False)
    tied = create("undercomplete", IMAGE, tied=True)
    n = lambda m: sum(p.numel() for p in m.parameters())
    assert n(tied) < n(untied)


def test_overcomplete_without_regulariser_warns(digits):
    model = create("overcomplete", digits.train.shape)
    with pytest.warns(UserWarning, match="identity copy"):
        fit(model, digits.train.x[:64], epochs=1, progress=False, val_fraction=0)
