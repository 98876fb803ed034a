import math

import numpy as np
import pytest
import torch

from aekit import create, evaluate, fit, reconstruct, squared_error
from aekit.core.model import ALIVE, Batch
from aekit.parts.sparse import L1, AuxK, TopK, kl_bernoulli


def _batch(h, model=None):
    return Batch(x=h, x_tilde=h, h=h, r=h, model=model)


def test_l1_value_and_gradcheck():
    h = torch.tensor([[0.5, -1.0, 0.0], [2.0, 0.0, 1.0]])
    assert L1(0.1)(_batch(h)).item() == pytest.approx(0.1 * (1.5 + 3.0) / 2)
    hd = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda h: L1(0.3)(_batch(h)), (hd,))


def test_kl_sparsity_hand_computed():
    model = create("sparse", (4,), code_size=2, penalty="kl", rho=0.1, lam=2.0)
    h = torch.tensor([[0.2, 0.4], [0.4, 0.2]])  # mean activation 0.3 for both units
    per_unit = 0.1 * math.log(0.1 / 0.3) + 0.9 * math.log(0.9 / 0.7)
    assert model.penalties[0](_batch(h, model)).item() == pytest.approx(2.0 * 2 * per_unit, rel=1e-6)
    assert kl_bernoulli(0.3, torch.tensor([0.3])).item() == pytest.approx(0.0, abs=1e-7)


def test_kl_gradcheck():
    rho_hat = torch.rand(5, dtype=torch.float64).clamp(0.05, 0.95).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda q: kl_bernoulli(0.2, q), (rho_hat,))


def test_kl_running_average_is_used():
    model = create("sparse", (4,), code_size=2, penalty="kl", rho=0.1, rho_momentum=0.9).train()
    kl = model.penalties[0]
    first = torch.full((8, 2), 0.5)
    kl(_batch(first, model))
    assert torch.allclose(kl.running, torch.full((2,), 0.5))
    kl(_batch(torch.full((8, 2), 0.1), model))
    assert torch.allclose(kl.running, torch.full((2,), 0.9 * 0.5 + 0.1 * 0.1))


def test_kl_running_mean_first_batch_has_the_full_gradient():
    """Issue 17.6: the first batch, with no running mean yet, was mixed with itself and its gradient scaled by 1 − m."""
    h0 = torch.rand(8, 3, dtype=torch.float64) * 0.8 + 0.1
    grads = []
    for m in (0.0, 0.9):
        model = create("sparse", (4,), code_size=3, penalty="kl", rho=0.1, rho_momentum=m).double().train()
        h = h0.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model.penalties[0](_batch(h, model)), h)
        grads.append(g)
    torch.testing.assert_close(grads[0], grads[1])


def test_kl_needs_a_sigmoid_code():
    with pytest.raises(ValueError, match=r"needs a code in \(0, 1\)"):
        create("sparse", (64,), penalty="kl", activation="tanh")


@pytest.mark.parametrize("kwargs, message", [
    ({"lam": -1.0}, "lam must be a finite number >= 0"),
    ({"penalty": "kl", "rho": 0.0}, r"rho must be in \(0, 1\)"),
    ({"penalty": "kl", "rho": 1.5}, r"rho must be in \(0, 1\)"),
    ({"penalty": "l2"}, "penalty must be 'l1' or 'kl', got 'l2'"),
    ({"rho": 0.2}, "rho=0.2 has no effect here"),
])
def test_bad_sparse_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        create("sparse", (64,), **kwargs)


def test_topk_keeps_exactly_k_largest():
    t = TopK(3).train()
    t.check_size(10)
    a = torch.randn(50, 10)
    h = t(a)
    assert ((h != 0).sum(1) == 3).all()
    kept = torch.where(h != 0, a, torch.tensor(-math.inf))
    assert torch.equal(kept.topk(3, 1).values, a.topk(3, 1).values)
    t.eval()
    assert ((t(a) != 0).sum(1) == 3).all()


def test_topk_alpha_widens_encode_only():
    model = create("ksparse", (1, 8, 8), code_size=40, k=4, alpha=2.5)
    x = torch.rand(6, 64)
    for mode in (True, False):
        model.train(mode)
        assert ((model.encode(x) != 0).sum(1) == 10).all()  # features: αk units, in either mode
        assert ((model.code(x) != 0).sum(1) == 4).all()  # what the decoder was trained on
        assert ((model(x).h != 0).sum(1) == 4).all()
    torch.testing.assert_close(model.reconstruct(x), model.decode(model.code(x)))
    assert not torch.allclose(model.reconstruct(x), model.decode(model.encode(x)))


def test_ksparse_evaluation_scores_the_trained_code(digits):
    """Issue 17.1: with α > 1 the validation loss, reconstructions and scores used αk units."""
    x = torch.from_numpy(digits.train.x[:500])
    model = create("ksparse", digits.train.shape, code_size=128, k=5, alpha=3, likelihood="gaussian", sigma=0.3)
    fit(model, x, epochs=5, lr=3e-3, val_fraction=0, progress=False)
    train_mode = model.train()(x).loss.item()  # no corruption, no annealing, no AuxK: the same function
    assert evaluate(model, x)["loss"] == pytest.approx(train_mode, rel=1e-5)
    assert squared_error(x.numpy(), reconstruct(model, x.numpy())) < squared_error(
        x.numpy(), model.decode(model.encode(x)).detach().numpy())


def test_topk_annealing():
    t = TopK(2, k_start=10, anneal_steps=4).train()
    t.check_size(12)
    seen = []
    for _ in range(6):
        seen.append(t.current_k())
        t(torch.randn(3, 12))
    assert seen == [10, 8, 6, 4, 2, 2]


@pytest.mark.parametrize("kwargs, message", [
    ({"k": 0}, "k must be an integer >= 1"),
    ({"k": 200, "code_size": 100}, "k=200 is larger than the code size 100"),
    ({"alpha": 0.5}, "alpha must be a finite number >= 1, got 0.5"),
    ({"k_start": 10}, "k_start=10 has no effect here"),
    ({"aux_k": -1}, "aux_k must be an integer >= 0, got -1"),
])
def test_bad_ksparse_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        create("ksparse", (64,), **kwargs)


def _auxk_model(likelihood):
    """3 → 4 → 3, TopK(1), AuxK(k_aux=2, coef=0.5); units 2 and 3 dead before the batch."""
    from aekit import Autoencoder
    from aekit.core.likelihoods import make_likelihood
    from aekit.core.networks.mlp import MLP

    enc = MLP([3, 4], "linear", final=TopK(1, dead_after=50))
    enc.final.check_size(4)
    dec = MLP([4, 3], "linear")
    model = Autoencoder(enc, dec, make_likelihood(likelihood), input_shape=(3,), code_size=4,
                        penalties=[AuxK(2, coef=0.5)]).double().train()
    with torch.no_grad():
        enc.linears[0].weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]]))
        enc.linears[0].bias.copy_(torch.tensor([0.0, 0, -0.5, -3]))
        dec.linears[0].weight.copy_(torch.tensor([[0.5, -1, 2, 1], [1, 0.5, -1, 2], [-2, 1, 0.5, 1]]))
        dec.linears[0].bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    enc.final.since_fired = torch.tensor([0, 0, 100, 100])
    return model


X_AUX = torch.tensor([[1.0, 2, 0.5], [2, 0.5, 1], [0, 1, -1]], dtype=torch.float64)
# pre-activations x Wᵀ + b: [1, 2, 0, 0.5], [2, 0.5, 0.5, 0.5], [0, 1, -1.5, -3]; TopK(1) keeps units 1, 0, 1
H_AUX = [[0, 2, 0, 0], [2, 0, 0, 0], [0, 1, 0, 0]]
# AuxK: the top 2 of the dead units 2, 3, then ReLU (the third row's dead pre-activations are negative)
Z_AUX = [[0, 0, 0, 0.5], [0, 0, 0.5, 0.5], [0, 0, 0, 0]]


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_auxk_hand_computed(likelihood):
    """Issue 17.2: Gao et al.'s AuxK — ReLU on the auxiliary code, normalised MSE, residual in data units."""
    model = _auxk_model(likelihood)
    out = model(X_AUX)
    assert out.h.tolist() == H_AUX
    assert model.encoder.final.dead().tolist() == [False, False, True, True]
    w = model.decoder.linears[0].weight.detach().numpy()
    b = model.decoder.linears[0].bias.detach().numpy()
    x, h, z = X_AUX.numpy(), np.array(H_AUX), np.array(Z_AUX)
    r = h @ w.T + b
    mean = (lambda v: v) if likelihood == "gaussian" else (lambda v: 1 / (1 + np.exp(-v)))
    e = x - mean(r)
    e_hat = mean(r + z @ w.T) - mean(r)  # = W z for the Gaussian
    expected = 0.5 * ((e - e_hat) ** 2).sum() / ((e - e.mean(0)) ** 2).sum()
    assert out.terms["auxk"].item() == pytest.approx(expected, rel=1e-12)
    # only the dead units' parameters learn from it; the decoder bias cancels in g(z) − g(0)
    params = [model.encoder.linears[0].weight, model.decoder.linears[0].weight, model.decoder.linears[0].bias]
    g_enc, g_dec, g_bias = torch.autograd.grad(out.terms["auxk"], params)
    assert (g_enc[:2] == 0).all() and (g_enc[2:] != 0).any(1).all()
    assert (g_dec[:, :2] == 0).all() and (g_dec[:, 2:] != 0).any(0).all()
    assert (g_bias == 0).all()


def test_auxk_is_zero_without_dead_units_and_in_eval():
    model = _auxk_model("gaussian")
    model.encoder.final.since_fired.zero_()
    assert model(X_AUX).terms["auxk"].item() == 0
    model = _auxk_model("gaussian").eval()
    assert model(X_AUX).terms["auxk"].item() == 0


def test_a_unit_fires_only_above_the_threshold():
    t = TopK(1, dead_after=2).train()
    t.check_size(3)
    for _ in range(3):
        t(torch.tensor([[0.0005, -1.0, -2.0], [-0.5, -1.0, -2.0]]))  # unit 0 selected, but never > 1e-3
    assert t.since_fired.tolist() == [6, 6, 6] and t.dead().all()
    t(torch.tensor([[0.5, -1.0, -2.0]]))
    assert t.since_fired.tolist() == [0, 7, 7]


def test_auxk_revives_dead_units(digits):
    """AuxK (untied decoder, as Gao et al. train) leaves fewer units that never fire on the training data."""
    x = digits.train.x
    never = {}
    for coef in (0.0, 1 / 32, 1.0):
        torch.manual_seed(0)
        aux = {"aux_k": 64, "dead_after": 1000, "aux_coef": coef} if coef else {}
        model = create("ksparse", digits.train.shape, code_size=256, k=8, likelihood="gaussian", sigma=0.3,
                       tied=False, **aux)
        fit(model, x, epochs=20, lr=3e-3, batch_size=64, val_fraction=0, progress=False)
        never[coef] = int(((model.code(torch.from_numpy(x)) > ALIVE).sum(0) == 0).sum())
    assert never[1 / 32] < 0.9 * never[0.0] and never[1.0] < 0.9 * never[0.0], never


def test_dead_after_option():
    assert create("ksparse", (64,), aux_k=8, dead_after=123).encoder.final.dead_after == 123
    with pytest.raises(ValueError, match="dead_after must be an integer >= 1"):
        create("ksparse", (64,), aux_k=8, dead_after=0)
    with pytest.raises(ValueError, match="dead_after=5 has no effect here"):
        create("ksparse", (64,), dead_after=5)


def test_auxk_needs_topk():
    from aekit import Autoencoder, Gaussian
    from aekit.core.networks.mlp import MLP

    with pytest.raises(ValueError, match="AuxK needs a code that tracks dead units: TopK"):
        Autoencoder(MLP([4, 3]), MLP([3, 4]), Gaussian(), input_shape=(4,), code_size=3, penalties=[AuxK(2)])


def test_l1_lam_is_used(digits):
    x = torch.from_numpy(digits.train.x[:300])
    act = {}
    for lam in (0.0, 0.1):
        torch.manual_seed(0)
        m = create("sparse", digits.train.shape, code_size=64, lam=lam)
        fit(m, x, epochs=30, lr=1e-2, progress=False, val_fraction=0)
        act[lam] = m.encode(x).mean().item()
    assert act[0.1] < 0.5 * act[0.0], act


def test_ksparse_counts_as_regularised():
    assert create("ksparse", (64,), code_size=128).is_regularised
    assert not create("overcomplete", (64,)).is_regularised
