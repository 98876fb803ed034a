import math

import pytest
import torch

from aekit import create, fit
from aekit.model import Batch
from aekit.sparse import L1, AuxK, TopK, kl_bernoulli


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


def test_kl_needs_a_sigmoid_code():
    with pytest.raises(ValueError, match=r"needs a code in \(0, 1\)"):
        create("sparse", (64,), penalty="kl", activation="tanh")


@pytest.mark.parametrize("kwargs, message", [
    ({"lam": -1.0}, "lam must be a finite number >= 0"),
    ({"penalty": "kl", "rho": 0.0}, r"rho must be in \(0, 1\)"),
    ({"penalty": "kl", "rho": 1.5}, r"rho must be in \(0, 1\)"),
    ({"penalty": "l2"}, "sparse penalty must be 'l1' or 'kl'"),
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


def test_topk_alpha_at_encode_time():
    model = create("ksparse", (1, 8, 8), code_size=40, k=4, alpha=2.5)
    x = torch.rand(6, 64)
    model.train()
    assert ((model.encode(x) != 0).sum(1) == 4).all()
    model.eval()
    assert ((model.encode(x) != 0).sum(1) == 10).all()


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
    ({"alpha": 0.5}, "alpha must be >= 1"),
    ({"k_start": 10}, "k_start=10 has no effect here"),
    ({"aux_k": -1}, "k_aux must be an integer >= 1"),
])
def test_bad_ksparse_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        create("ksparse", (64,), **kwargs)


def test_dead_units_and_auxk():
    torch.manual_seed(0)
    model = create("ksparse", (1, 8, 8), code_size=32, k=2, aux_k=4, likelihood="gaussian").train()
    topk, aux = model.encoder.final, model.penalties[0]
    topk.dead_after = 12
    x = torch.rand(8, 64)
    with torch.no_grad():
        model.encoder.linears[0].bias[:4] = -100.0  # units 0..3 can never win
    assert model(x).terms["auxk"].item() == 0  # 8 samples seen: nothing dead yet
    model(x)
    assert topk.dead()[:4].all()  # 16 samples without firing
    # only units 0..3 dead: AuxK's top-4 of the dead are exactly those, and only they get its gradient
    with torch.no_grad():
        topk.since_fired[4:] = 0
    out = model(x)
    topk.since_fired[4:] = 0
    term = aux(Batch(x=x, x_tilde=x, h=out.h, r=out.r, model=model))
    assert term.item() > 0
    (g,) = torch.autograd.grad(term, model.encoder.linears[0].bias)
    assert (g[:4] != 0).all() and (g[4:] == 0).all()


def test_auxk_needs_topk():
    from aekit import Autoencoder, Gaussian
    from aekit.networks import MLP

    with pytest.raises(ValueError, match="AuxK needs a TopK code"):
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
