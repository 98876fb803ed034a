"""The contractive penalty against the exact Jacobian: closed form, stochastic estimate, gradients."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from aekit import create, fit
from aekit.parts.contractive import frobenius_exact, frobenius_stochastic
from aekit.core.networks.mlp import frobenius_closed
from aekit.core.networks.mlp import MLP

ACTS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus, "linear": nn.Identity}


@pytest.mark.parametrize("act", sorted(ACTS))
def test_closed_form_equals_exact_jacobian(act):
    enc = MLP([9, 7], "linear", final=act).double()
    x = torch.randn(5, 9, dtype=torch.float64)
    closed = frobenius_closed(enc(x), enc.linears[0], ACTS[act])
    exact = frobenius_exact(enc, x)
    torch.testing.assert_close(closed, exact, rtol=1e-6, atol=0)


def _deep():
    return MLP([10, 8, 6], "tanh", final="sigmoid").double()


def test_stochastic_estimate_is_unbiased():
    enc = _deep()
    x = torch.randn(4, 10, dtype=torch.float64)
    exact = frobenius_exact(enc, x).mean().item()
    xr = x.clone().requires_grad_(True)
    h = enc(xr)
    draws = torch.stack([frobenius_stochastic(h, xr, 1).mean().detach() for _ in range(3000)])
    se = draws.std().item() / math.sqrt(len(draws))
    assert abs(draws.mean().item() - exact) < 3 * se, (draws.mean().item(), exact, se)
    # more projections: same mean, smaller spread
    many = torch.stack([frobenius_stochastic(h, xr, 8).mean().detach() for _ in range(300)])
    assert many.std() < draws.std() / 2


def test_stochastic_gradient_is_unbiased():
    enc = _deep()
    x = torch.randn(4, 10, dtype=torch.float64)
    params = list(enc.parameters())
    direction = [torch.randn_like(p) for p in params]

    def projected(grads):
        return sum((g * d).sum() for g, d in zip(grads, direction)).item()

    exact = projected(torch.autograd.grad(frobenius_exact(enc, x).mean(), params))
    draws = []
    for _ in range(2000):
        xr = x.clone().requires_grad_(True)
        est = frobenius_stochastic(enc(xr), xr, 1).mean()
        draws.append(projected(torch.autograd.grad(est, params)))
    draws = torch.tensor(draws)
    se = draws.std().item() / math.sqrt(len(draws))
    assert abs(draws.mean().item() - exact) < 3 * se, (draws.mean().item(), exact, se)


def test_gradcheck_closed_form():
    W = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    for act, fn in ((nn.Sigmoid, torch.sigmoid), (nn.Tanh, torch.tanh), (nn.Softplus, nn.functional.softplus)):
        f = lambda W, b, x: frobenius_closed(fn(x @ W.T + b), SimpleNamespace(weight=W), act)
        assert torch.autograd.gradcheck(f, (W, b, x))


def test_gradcheck_exact_and_stochastic():
    enc = MLP([5, 4, 3], "tanh", final="sigmoid").double()
    names = [n for n, _ in enc.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in enc.parameters())
    x = torch.randn(2, 5, dtype=torch.float64)

    def exact(*ps):
        return frobenius_exact(lambda xi: torch.func.functional_call(enc, dict(zip(names, ps)), (xi,)), x)

    def stochastic(*ps):
        torch.manual_seed(0)  # the same projections at every evaluation
        xr = x.clone().requires_grad_(True)
        h = torch.func.functional_call(enc, dict(zip(names, ps)), (xr,))
        return frobenius_stochastic(h, xr, 2)

    assert torch.autograd.gradcheck(exact, params)
    assert torch.autograd.gradcheck(stochastic, params)


def test_auto_method_choice_and_override():
    assert create("contractive", (64,), code_size=100).penalties[0].method == "closed"
    assert create("contractive", (64,), code_size=20, hidden=[32]).penalties[0].method == "stochastic"
    assert create("contractive", (64,), code_size=4, hidden=[32]).penalties[0].method == "exact"
    assert create("contractive", (64,), code_size=100, method="stochastic").penalties[0].method == "stochastic"
    with pytest.raises(ValueError, match="closed-form contractive penalty needs an encoder that has one"):
        create("contractive", (64,), code_size=20, hidden=[32], method="closed")


@pytest.mark.parametrize("kwargs, message", [
    ({"lam": -0.1}, "lam must be a finite number >= 0"),
    ({"method": "loop"}, "method must be 'auto', 'closed', 'stochastic' or 'exact', got 'loop'"),
    ({"projections": 0}, "projections must be an integer >= 1"),
])
def test_bad_contractive_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        create("contractive", (64,), **kwargs)


@pytest.mark.parametrize("method", ["closed", "stochastic", "exact"])
def test_penalty_term_matches_lam_times_frobenius(method):
    torch.manual_seed(0)
    model = create("contractive", (6,), code_size=5, lam=0.3, method=method, likelihood="gaussian").double()
    x = torch.rand(4, 6, dtype=torch.float64)
    exact = frobenius_exact(model.encoder, x).mean()
    model.eval()
    term = model(x).terms["contractive"]
    if method == "stochastic":
        vals = torch.stack([model(x).terms["contractive"].detach() for _ in range(2000)])
        assert abs(vals.mean() - 0.3 * exact) < 3 * vals.std() / math.sqrt(len(vals))
    else:
        torch.testing.assert_close(term, 0.3 * exact)


def test_lam_is_used(digits):
    x = digits.train.x[:300]
    norms = {}
    for lam in (0.0, 3.0):
        torch.manual_seed(0)
        m = create("contractive", digits.train.shape, code_size=32, lam=lam)
        fit(m, x, epochs=20, progress=False, val_fraction=0)
        norms[lam] = frobenius_exact(m.encoder, torch.from_numpy(x[:50])).mean().item()
    assert norms[3.0] < 0.5 * norms[0.0], norms


class _Normalising(MLP):
    """A user's one-layer MLP that standardises x first: same attributes, different function."""

    def forward(self, x):
        return super().forward((x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True))


def test_closed_form_only_for_aekits_own_one_layer_encoder():
    """Issue 17.5: attributes alone chose the closed form (a 9.4x error for an encoder that normalises x)."""
    from aekit import Autoencoder
    from aekit.parts.contractive import Contractive
    from aekit.core.likelihoods import Gaussian

    def model(method, code=4):
        enc = _Normalising([6, code], "linear", final="sigmoid").double()
        return Autoencoder(enc, MLP([code, 6]).double(), Gaussian(), input_shape=(6,), code_size=code,
                           penalties=[Contractive(1.0, method)])

    assert model("auto").penalties[0].method == "exact"
    assert model("auto", code=12).penalties[0].method == "stochastic"
    with pytest.raises(ValueError, match="closed-form contractive penalty needs"):
        model("closed")
    m = model("auto")
    x = torch.randn(5, 6, dtype=torch.float64)
    torch.testing.assert_close(m(x).terms["contractive"], frobenius_exact(m.encoder, x).mean())


class _Tripled(nn.Linear):
    def forward(self, x):
        return 3 * super().forward(x)


class _Inherits(MLP):
    """Inherits MLP.forward but computes 3(Wx + b): the closed form of MLP is not its."""

    def __init__(self, sizes, **kw):
        super().__init__(sizes, **kw)
        self.linears[0] = _Tripled(sizes[0], sizes[1])


@pytest.mark.parametrize("swap", ["subclass", "layer"])
def test_a_subclass_of_mlp_or_a_swapped_layer_never_gets_the_closed_form(swap):
    """Issue 37.7: a subclass inheriting forward got the closed form: penalty 0.0522 vs exact 0.4702."""
    from aekit import Autoencoder
    from aekit.parts.contractive import Contractive
    from aekit.core.likelihoods import Gaussian

    torch.manual_seed(0)
    if swap == "subclass":
        enc = _Inherits([6, 4], final="sigmoid").double()
    else:
        enc = MLP([6, 4], final="sigmoid").double()
        enc.linears[0] = _Tripled(6, 4).double()
    assert enc.jacobian_norm(torch.rand(2, 4, dtype=torch.float64)) is None
    m = Autoencoder(enc, MLP([4, 6]).double(), Gaussian(), input_shape=(6,), code_size=4,
                    penalties=[Contractive(1.0, "auto")])
    assert m.penalties[0].method == "exact"
    x = torch.randn(5, 6, dtype=torch.float64)
    exact = frobenius_exact(m.encoder, x).mean()
    torch.testing.assert_close(m(x).terms["contractive"], exact)
    plain = MLP([6, 4], final="sigmoid").double()
    plain.load_state_dict({k: v for k, v in enc.state_dict().items()})
    assert not torch.isclose(frobenius_exact(plain, x).mean(), exact)  # the formula would have been wrong
