"""Every registered preset, the moment it exists: shapes, finite loss, gradients, overfitting."""

import math

import numpy as np
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
@pytest.mark.filterwarnings("ignore:.*training rows are fewer than the")  # hashing on a batch of 16
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_overfits_one_batch(name):
    model = create(name, IMAGE)
    x = (torch.rand(16, 64) > 0.5).float()
    first = model(x).loss.item()
    # 300 epochs: the hashing preset's σ = 4 noise before its bits slows it most (at 150 its loss was just at the bar)
    fit(model, x, epochs=300, batch_size=16, lr=3e-3, val_fraction=0.0, schedule="constant", progress=False)
    out = model.train()(x)
    # a VAE pays KL to tell the 16 samples apart (at least log 16 nats each): not reducible, so
    # for it the reconstruction term is what must fall
    last = (out.terms["reconstruction"] if model.stochastic else out.loss).item()
    # a Gaussian's constant (for the SAEs' data-scaled σ too): the loss at a perfect reconstruction
    floor = float(model.likelihood.nll(x, x).mean()) if model.likelihood.name in ("gaussian", "gaussian_scaled") \
        else 0.0
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
    with pytest.raises(ValueError, match="code_size must be an integer >= 1, got 0"):
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


# ---------------------------------------------------------------------------- no option silently ignored
# option: (candidate values, context). The run with the context alone is compared with the run with the
# option set to the first candidate that differs from the default on top of it; context keys a preset
# lacks are dropped. Every option of every
# preset must be listed here, so a new option is tested the moment it exists.
ALTERNATIVES = {
    "code_size": ([12, 96], {}),
    "hidden": ([[32]], {}),
    "activation": (["tanh", "relu"], {"hidden": [32]}),
    "code_activation": (["sigmoid"], {}),
    "likelihood": (["gaussian", "bernoulli"], {}),
    "sigma": ([0.5], {"likelihood": "gaussian"}),
    "tied": ([lambda default: not default], {}),
    "penalty": (["kl"], {}),
    "lam": ([0.5], {}),
    "rho": ([0.2], {"penalty": "kl"}),
    "rho_momentum": ([0.5], {"penalty": "kl"}),
    "k": ([5], {}),
    "alpha": ([2.0], {}),
    "k_start": ([40], {"k_start": 30, "anneal_steps": 10}),
    "anneal_steps": ([10], {"k_start": 30, "anneal_steps": 5}),
    "aux_k": ([8], {"aux_k": 4, "dead_after": 1}),
    "aux_coef": ([0.5], {"aux_k": 4, "dead_after": 1}),
    "dead_after": ([100], {"aux_k": 4, "dead_after": 1}),
    "noise": (["gaussian"], {}),
    "level": ([0.5], {}),
    "method": (["stochastic"], {}),
    "projections": ([3], {"method": "stochastic"}),
    "channels": ([[8, 16]], {}),
    "beta": ([2.0], {}),
    "free_bits": ([0.5], {}),
    "expansion": ([2], {}),
    "unit_norm": ([lambda default: not default], {}),
    "b_init": (["mean", "zero"], {}),
    "gain": ([lambda default: not default], {}),
    "threshold": ([0.5], {}),
    "bandwidth": ([0.5], {}),
    "kernel": ([5], {}),
    "hidden_size": ([16], {}),
    "cell": (["gru"], {}),
    "teacher_forcing": ([0.5, 1.0], {}),
    "layers": ([2, 3], {}),
    "d_model": ([16], {}),
    "heads": ([2], {}),
    "gamma": ([0.25], {}),
    "steps": ([3], {}),
    "walkback": ([1], {}),
    "binary": (["ste"], {}),
    "code_noise": ([1.0], {"binary": "noise"}),
    "balance": ([0.5], {"binary": "noise"}),
    "decorrelation": ([1.0], {"binary": "noise"}),
}


def _fingerprint(name, **options):
    """Everything an option could change: architecture, trained weights, codes, evaluation."""
    from aekit import evaluate, load

    x = torch.from_numpy(load("digits").train.x[:64])
    torch.manual_seed(0)
    model = create(name, IMAGE, **options)
    fit(model, x, epochs=2, batch_size=16, lr=1e-2, val_fraction=0, seed=0, progress=False)
    return {"weights": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "codes": model.encode(x).detach(), "eval": evaluate(model, x)}


def _same(a, b) -> bool:
    wa, wb = a["weights"], b["weights"]
    if wa.keys() != wb.keys() or any(wa[k].shape != wb[k].shape for k in wa):
        return False
    return (all(torch.equal(wa[k], wb[k]) for k in wa) and a["codes"].shape == b["codes"].shape
            and torch.equal(a["codes"], b["codes"]) and a["eval"] == b["eval"])


def test_every_preset_option_is_in_the_table():
    options = {o for p in PRESETS.values() if p.module.startswith("aekit.") for o in p.options()}  # not other tests' presets
    assert options <= set(ALTERNATIVES), sorted(options - set(ALTERNATIVES))


@pytest.mark.filterwarnings("ignore:the code.*identity copy")
@pytest.mark.parametrize("name, option", [(n, o) for n in sorted(PRESETS) for o in PRESETS[n].options()])
def test_every_option_changes_the_model_or_is_rejected(name, option):
    """Issue 17.3: an accepted option must do something; one the configuration ignores must be an error."""
    accepted = get_preset(name).options()
    candidates, context = ALTERNATIVES[option]
    context = {k: v for k, v in context.items() if k in accepted}
    base = _fingerprint(name, **context)  # the context itself must be valid
    outcomes = []
    for value in candidates:
        value = value(accepted[option]) if callable(value) else value
        if value == context.get(option, accepted[option]):
            continue  # the preset's own default: no change to expect
        try:
            changed = _fingerprint(name, **{**context, option: value})
        except ValueError as e:
            outcomes.append(f"rejected: {e}")
            continue
        assert not _same(base, changed), f"{name}: {option}={value!r} was accepted but changed nothing"
        return
    assert outcomes and all(o.startswith("rejected") for o in outcomes)


@pytest.mark.parametrize("name, options, message", [
    ("undercomplete", {"sigma": 0.5}, "sigma=0.5 has no effect here: the Bernoulli likelihood has no sigma"),
    ("vae", {"sigma": 0.1}, "sigma=0.1 has no effect here"),
    ("denoising", {"noise": "masking:0.3+gaussian:0.1", "level": 0.9}, "level=0.9 has no effect here"),
    ("denoising", {"noise": "masking:0.3", "level": 0.5}, "level=0.5 has no effect here"),
    ("contractive", {"projections": 4}, "projections=4 has no effect here.*method 'closed'"),
    ("contractive", {"method": "exact", "projections": 4}, "projections=4 has no effect here.*method 'exact'"),
])
def test_ignored_options_are_errors(name, options, message):
    with pytest.raises(ValueError, match=message):
        create(name, IMAGE, **options)


def test_options_that_apply_are_accepted():
    assert create("denoising", IMAGE, noise="masking:0.3+gaussian", level=0.1).corruption.parts[1].sigma == 0.1
    assert create("contractive", IMAGE, method="stochastic", projections=4).penalties[0].projections == 4
    assert create("undercomplete", IMAGE, likelihood="gaussian", sigma=0.5).likelihood.sigma == 0.5


@pytest.mark.filterwarnings("ignore:the code.*identity copy")
@pytest.mark.filterwarnings("ignore:.*training rows are fewer than the")  # hashing on a batch of 16
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_works_in_float64(name, digits):
    """Issue 17.6: tests against exact answers need float64 (``vae.double()`` failed)."""
    from aekit import evaluate, reconstruct

    torch.manual_seed(0)
    model = create(name, IMAGE).double()
    x = torch.from_numpy(digits.train.x[:32]).double()
    out = model(x)
    out.loss.backward()
    assert out.loss.dtype == out.r.dtype == model.encode(x).dtype == torch.float64
    assert reconstruct(model, x.numpy()).dtype == np.float64
    fit(model, x.numpy(), epochs=1, batch_size=16, precision="fp32", val_fraction=0.25, progress=False)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert math.isfinite(evaluate(model, x)["loss"])
    if model.stochastic:
        from aekit.parts.variational import elbo, interpolate, log_likelihood, sample

        xb = (x > 0.5).double()
        assert elbo(model, xb)["elbo"].dtype == log_likelihood(model, xb, samples=4).dtype == torch.float64
        assert sample(model, 2).dtype == interpolate(model, x[0], x[1]).dtype == torch.float64


def test_float64_models_stay_float64_around_the_presets():
    """Issue 37.8: score_estimate and chain cast to float32 and crashed on a .double() model; PSD's FISTA ran
    in float32; BatchTopK's threshold became float32 after training; DecoderNormL1 computed in float32."""
    from aekit import create, fit
    from aekit.parts.denoising import chain, score_estimate
    from aekit.parts.psd import optimal_code, sparse_code

    x = torch.rand(6, 4, dtype=torch.float64)
    dae = create("denoising", (4,), code_size=8, noise="gaussian", level=0.1, likelihood="gaussian").double()
    assert score_estimate(dae, x).dtype == torch.float64
    draws, means = chain(create("denoising", (4,), code_size=8).double(), x, steps=2)
    assert draws.dtype == means.dtype == torch.float64

    psd = create("psd", (4,), code_size=3).double()
    h = optimal_code(psd, x, tol=0.0, steps=2000)
    assert h.dtype == torch.float64
    w = psd.decoder.weight.detach()
    # FISTA in float64 reaches the lasso's optimality conditions to float64 precision, far below float32's
    grad = (x - h @ w.T) @ w / psd.encoder.sigma ** 2
    on = h != 0
    assert (grad[on] - psd.encoder.lam * h[on].sign()).abs().max() < 1e-10
    assert sparse_code(x.float(), w, 0.1).dtype == torch.float64  # the wider of the two

    sae = create("sae-batchtopk", (16,), code_size=32, k=4).double()
    fit(sae, np.random.default_rng(0).random((64, 16)), epochs=1, progress=False)
    assert sae.encoder.final.threshold.dtype == torch.float64

    relu = create("sae-relu", (16,), code_size=32).double()
    out = relu(torch.rand(8, 16, dtype=torch.float64))
    assert all(v.dtype == torch.float64 for v in out.terms.values()), {k: v.dtype for k, v in out.terms.items()}


@pytest.mark.parametrize("preset, options, match", [
    ("undercomplete", {"hidden": [], "activation": "tanh"}, "option activation='tanh' has no effect here"),
    ("hinton2006", {"hidden": [], "activation": "relu"}, "option activation='relu' has no effect here"),
    ("hashing", {"hidden": [], "activation": "tanh"}, "option activation='tanh' has no effect here"),
    ("ksparse", {"code_size": 32, "k": 10, "alpha": 4.0}, r"alpha·k = 4·10 keeps 40 units at encode time, more than"),
    ("vae", {"beta": 0.0, "free_bits": 0.5}, "option free_bits=0.5 has no effect here: free_bits needs beta > 0"),
])
def test_options_that_would_be_ignored_are_refused(preset, options, match):
    """Issue 37.10: relu and tanh gave identical losses with hidden=[]; alpha·k > code size was clipped."""
    with pytest.raises(ValueError, match=match):
        create(preset, (1, 8, 8), **options)


def test_activation_is_used_when_hidden_layers_exist_and_by_sparse_presets_as_the_code():
    x = torch.rand(4, 64)
    losses = [create("undercomplete", (1, 8, 8), hidden=[16], activation=a, code_size=4)(x).loss.item()
              for a in ("relu", "tanh")]
    assert losses[0] != losses[1]
    create("sparse", (1, 8, 8), hidden=[], activation="tanh")  # the code's activation: used
    create("ksparse", (1, 8, 8), code_size=32, k=10, alpha=3.2)  # 32 units: all of them
