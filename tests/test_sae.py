"""Sparse autoencoders on activations (issue 13): each variant keeps its defining property."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from aekit import create, fit
from aekit.parts.sae import INIT_NORM, BatchTopK, JumpReLU, ScaledGaussian, geometric_median
from aekit.parts.sparse import TopK


def sparse_data(n=4000, d=16, atoms=64, active=3, seed=0):
    """Rows that are sums of a few unit dictionary directions, shifted and scaled (what SAEs assume)."""
    g = torch.Generator().manual_seed(seed)
    dic = torch.randn(atoms, d, generator=g)
    dic /= dic.norm(dim=1, keepdim=True)
    idx = torch.rand(n, atoms, generator=g).argsort(1)[:, :active]
    s = torch.zeros(n, atoms).scatter(1, idx, torch.rand(n, active, generator=g) * 3 + 0.5)
    return s @ dic * 4 + 1.5


def test_topk_keeps_exactly_k_per_token_and_batchtopk_k_times_b_over_the_batch():
    a = torch.randn(50, 40, generator=torch.Generator().manual_seed(0))
    assert ((TopK(7)(a) != 0).sum(1) == 7).all()
    pos = TopK(7, positive=True)(a)
    assert ((pos != 0).sum(1) <= 7).all() and torch.equal(pos, TopK(7)(a).relu())
    bt = BatchTopK(5).train()
    h = bt(a.abs() + 0.1)  # all positive: exactly k·B survive
    assert int((h != 0).sum()) == 5 * 50 and (h.sum(0) != 0).sum() > 5  # spread over tokens unevenly
    assert float(bt.threshold) == float(h[h > 0].min())  # the first batch sets θ
    bt.eval()
    out = bt(a)
    assert torch.equal(out, a.relu() * (a.relu() > bt.threshold))  # inference: one threshold, no batch


def test_jumprelu_threshold_gradients_are_the_smoothed_objectives():
    """The straight-through gradients wrt θ equal finite differences of the kernel-smoothed objective:
    exactly for the L0 term; for the reconstruction term up to (a − θ)/θ ≤ ε/(2θ)."""
    g = torch.Generator().manual_seed(0)
    eps, theta0 = 0.01, 1.0
    a = theta0 + (torch.rand(4000, 3, generator=g, dtype=torch.float64) - 0.5) * 4 * eps  # many near θ
    c = torch.randn(4000, 3, generator=g, dtype=torch.float64)
    jr = JumpReLU(3, threshold=theta0, bandwidth=eps).double()
    h = jr(a)
    (jr.gates.sum() + (c * h).sum()).backward()
    got = jr.log_threshold.grad / theta0  # d/dθ = d/dlogθ / θ

    def smoothed(theta, which):
        gate = ((a - theta) / eps + 0.5).clamp(0, 1)  # H(a − θ) convolved with the rectangle kernel
        return (gate.sum(0) if which == "l0" else (c * a * gate).sum(0)).double()

    d = 1e-8
    fd_l0 = (smoothed(theta0 + d, "l0") - smoothed(theta0 - d, "l0")) / (2 * d)
    fd_rec = (smoothed(theta0 + d, "rec") - smoothed(theta0 - d, "rec")) / (2 * d)
    jr.log_threshold.grad = None
    jr(a)
    jr.gates.sum().backward()
    np.testing.assert_allclose(jr.log_threshold.grad.double() / theta0, fd_l0, rtol=1e-3)
    np.testing.assert_allclose((got.double() - jr.log_threshold.grad.double() / theta0), fd_rec,
                               rtol=eps / (2 * theta0) + 1e-3, atol=1e-2)
    assert torch.equal(h, a * (a > theta0))


def test_jumprelu_window_is_on_the_raw_pre_activation():
    """Issue 37.9: with θ < ε/2 a ReLU before the window put every negative pre-activation in the kernel: the
    θ gradient was −0.080 instead of the paper's −0.040 in this hand example."""
    eps, theta = 0.1, 0.04  # θ < ε/2
    jr = JumpReLU(1, threshold=theta, bandwidth=eps).double()
    a = torch.tensor([[-0.5], [0.05]], dtype=torch.float64)  # |−0.5 − θ| > ε/2: outside; |0.05 − θ| < ε/2: inside
    h = jr(a)
    assert torch.equal(h, torch.tensor([[0.0], [0.05]], dtype=torch.float64))
    h.sum().backward()
    # ∂h/∂θ = −(θ/ε)·Σ 1{|a − θ| < ε/2} = −0.4 · 1; through log θ: times θ
    torch.testing.assert_close(jr.log_threshold.grad / theta, torch.tensor([-0.4], dtype=torch.float64))
    jr.log_threshold.grad = None
    jr(a)
    jr.gates.sum().backward()  # the L0 term: −(1/ε)·1 = −10
    torch.testing.assert_close(jr.log_threshold.grad / theta, torch.tensor([-10.0], dtype=torch.float64))


def test_decoder_columns_stay_unit_norm_after_every_step():
    x = sparse_data()
    m = create("sae-topk", (16,), expansion=4, k=3)
    m.prepare(x)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for i in range(20):
        opt.zero_grad()
        m(x[i * 100 : (i + 1) * 100]).loss.backward()
        opt.step()
        assert torch.allclose(m.decoder.weight.norm(dim=0), torch.ones(64), atol=1e-6)
    free = create("sae-relu", (16,), expansion=4)  # the norm-weighted L1 preset leaves the columns free
    fit(free, x, epochs=2, batch_size=256, progress=False)
    assert (free.decoder.weight.norm(dim=0) - 1).abs().max() > 1e-3


def test_conventions_scale_median_bias_tied_init_and_the_loss():
    x = sparse_data().double()
    m = create("sae-topk", (16,), expansion=4, k=3, b_init="median")
    assert torch.equal(m.encoder.weight, m.decoder.weight.t() * INIT_NORM)  # W_e starts as W_dᵀ (scaled)
    m.double()
    m.prepare(x)
    s = m.decoder.scale
    assert math.isclose(float((x * s).square().sum(1).mean()), 16, rel_tol=1e-9)  # E‖s·x‖² = d
    want = minimize(lambda p: np.linalg.norm(x.numpy() * float(s) - p, axis=1).sum(), (x * s).mean(0).numpy(),
                    method="BFGS", options={"gtol": 1e-9}).x
    np.testing.assert_allclose(m.decoder.bias.detach().numpy(), want, atol=1e-4)
    # the loss: d‖x − r‖²/E‖x‖² plus the constant of a Gaussian with σ² = E‖x‖²/(2d)
    lik = ScaledGaussian().double()
    lik.prepare(x)
    r = x + 0.1
    e2 = float(x.square().sum(1).mean())
    want_nll = 16 * 0.16 / e2 + 8 * math.log(2 * math.pi * e2 / 32)
    np.testing.assert_allclose(lik.nll(r[:3], x[:3]).numpy(), want_nll, rtol=1e-12)
    before = (m.decoder.scale.clone(), m.decoder.bias.detach().clone())
    m.prepare(x * 10)  # prepared once: training further keeps the scale and bias
    assert torch.equal(m.decoder.scale, before[0]) and torch.equal(m.decoder.bias, before[1])
    # the points of a triangle: the geometric median is the Fermat point (all angles < 120°: inside)
    tri = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    fermat = minimize(lambda p: np.linalg.norm(tri.numpy() - p, axis=1).sum(), [1.0, 1.0]).x
    np.testing.assert_allclose(geometric_median(tri, iters=1000, tol=1e-12).numpy(), fermat, atol=1e-5)


def test_decoder_norm_weighted_l1_by_hand():
    m = create("sae-relu", (4,), code_size=3, lam=2.0)
    with torch.no_grad():
        m.decoder.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 2.0, 0], [0, 0, 0.5], [0, 0, 0]]))
    h = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.5, 4.0]])
    from aekit.core.model import Batch

    got = m.penalties[0](Batch(x=None, x_tilde=None, h=h, r=None, model=m))
    assert math.isclose(float(got.detach()), 2.0 * ((1 * 1 + 1 * 2) + (0.5 * 2 + 4 * 0.5)) / 2, rel_tol=1e-6)


def test_gain_scales_each_pre_activation_by_the_free_decoder_norm_before_the_selection():
    x = sparse_data()
    m = create("sae-topk", (16,), expansion=4, k=3, gain=True)
    m.prepare(x)
    free = m.decoder.parametrizations.weight.original
    with torch.no_grad():
        free.mul_(torch.linspace(0.2, 5, 64))  # gains that differ per latent change which k are kept
    enc, dec = m.encoder, m.decoder
    a = torch.nn.functional.linear(x * dec.scale - dec.bias, enc.weight, enc.bias)
    g = free.norm(dim=0)
    with torch.no_grad():
        h = m.code(x)
        assert torch.allclose(h, TopK(3, positive=True)(a * g), atol=1e-6)
        assert not torch.equal((h != 0), (TopK(3, positive=True)(a) != 0))
        assert torch.allclose(dec.weight.norm(dim=0), torch.ones(64), atol=1e-6)  # directions stay unit norm
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    m(x[:256]).loss.backward()
    opt.step()
    assert not torch.allclose(free.norm(dim=0), g)  # the gains learn
    with pytest.raises(ValueError, match="gain=True needs unit_norm=True"):
        create("sae-topk", (16,), gain=True, unit_norm=False)


@pytest.mark.parametrize("preset, opts", [("sae-topk", {"k": 3}), ("sae-batchtopk", {"k": 3}),
                                          ("sae-topk", {"k": 3, "gain": True}),
                                          ("sae-relu", {"lam": 0.2}), ("sae-jumprelu", {"lam": 0.05})])
def test_every_sae_preset_learns_a_sparse_dictionary(preset, opts):
    x = sparse_data()
    torch.manual_seed(0)
    m = create(preset, (16,), expansion=4, **opts)
    fit(m, x, epochs=30, batch_size=256, lr=2e-3, progress=False)  # BatchTopK's θ needs ~100s of steps
    m.eval()
    with torch.no_grad():
        r, h = m.reconstruct(x), m.code(x)
    fvu = float((x - r).square().sum() / (x - x.mean(0)).square().sum())
    l0 = float((h > 0).sum(1).float().mean())
    assert fvu < 0.35 and l0 < 40, (fvu, l0)
    if "topk" in preset:
        assert l0 <= 3.5


def test_auxk_revives_dead_sae_latents():
    x = sparse_data()
    torch.manual_seed(0)
    m = create("sae-topk", (16,), expansion=4, k=3, aux_k=8, dead_after=1)
    m.prepare(x)
    m.train()
    m(x[:4])  # a first step records which latents fired: at most 12 of 64
    dead = m.encoder.dead()
    assert dead.sum() >= 52
    out = m(x[4:12])
    m.zero_grad()
    out.terms["auxk"].backward()
    rows = m.encoder.weight.grad.abs().sum(1)
    assert (rows[~m.encoder.dead()] == 0).all() and (rows[m.encoder.dead()] > 0).any()


@pytest.mark.parametrize("aux_k", [4, 64])  # fewer than the dead latents (a selection), more (all of them)
def test_auxk_on_dead_columns_equals_the_generic_decoder_path(aux_k):
    """The SAE decoder's fast path (W[:, dead] z) gives the term and the gradients of g(z) − g(0) on all latents."""
    x = sparse_data()
    torch.manual_seed(0)
    m = create("sae-topk", (16,), expansion=4, k=3, aux_k=aux_k, dead_after=1)
    m.prepare(x)
    m.train()
    m(x[:4])
    assert 4 < int(m.encoder.dead().sum()) < 64

    def term_and_grads():
        m.zero_grad()
        since = m.encoder.since_fired.clone()
        out = m(x[4:40])
        m.encoder.since_fired.copy_(since)  # both paths see the same dead latents
        out.terms["auxk"].backward()
        return out.terms["auxk"].detach(), [p.grad.clone() for p in m.parameters() if p.grad is not None]

    fast, fast_grads = term_and_grads()
    m.decoder.columns = None  # hide the fast path: the generic g(z) − g(0) over all latents
    slow, slow_grads = term_and_grads()
    assert fast > 0 and torch.allclose(fast, slow, rtol=1e-5)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(fast_grads, slow_grads, strict=True))


@pytest.mark.parametrize("preset", ["sae-topk", "sae-batchtopk", "sae-jumprelu"])
def test_sae_on_bf16_shards_resumes_mid_epoch_bit_identically(tmp_path, preset):
    """Every trainer feature on captured activations: bf16 shards streamed, bf16 autocast, a SIGTERM mid-epoch,
    and the resumed run equal to the uninterrupted one (AuxK's firing record, BatchTopK's θ included)."""
    import os
    import signal

    from aekit.store.rows import bf16
    from aekit.store.shards import write_shards
    from aekit.training.loop import Interrupted

    x = sparse_data(n=1200).numpy().astype(bf16())
    shards = write_shards(tmp_path / "acts", (x[i : i + 300] for i in range(0, 1200, 300)), rows_per_shard=256)
    opts = dict(epochs=3, batch_size=100, lr=2e-3, precision="bf16", shuffle_buffer=512, progress=False)

    def model():
        torch.manual_seed(0)
        return create(preset, (16,), expansion=4, **({"k": 3, "aux_k": 8, "dead_after": 200}
                                                      if "topk" in preset else {}))

    full = model()
    fit(full, shards, **opts, run_dir=tmp_path / "full")
    part, seen = model(), [0]

    def hook(module, args, out):
        if module.training:
            seen[0] += 1
            if seen[0] == 17:  # epoch 2, mid-way
                os.kill(os.getpid(), signal.SIGTERM)

    part.register_forward_hook(hook)
    with pytest.raises(Interrupted):
        fit(part, shards, **opts, run_dir=tmp_path / "part")
    resumed = model()
    fit(resumed, shards, **opts, run_dir=tmp_path / "part", resume=True)
    a, b = full.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
