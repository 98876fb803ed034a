import numpy as np
import pytest
import torch

from aekit import MLP, Autoencoder, Bernoulli, Gaussian, create, fit
from aekit.evaluation.manifold import latent_traversal, tangent_directions, vector_field
from aekit.evaluation.metrics import encode, reconstruct, regularised_metrics
from aekit.core.model import Encoder, evaluating, seeded
from aekit.parts.sparse import L1, AuxK, KLSparsity, TopK
from aekit.training.evaluate import evaluate
from aekit.parts.variational import elbo, log_likelihood


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


def test_a_code_size_or_decoder_that_does_not_fit_is_an_error_at_construction():
    with pytest.raises(ValueError, match=r"code_size=5, but the encoder makes codes of shape \(3,\)"):
        Autoencoder(MLP([6, 3]), MLP([3, 6]), Gaussian(), input_shape=(6,), code_size=5)
    with pytest.raises(ValueError, match=r"the decoder's reconstructions have shape \(5,\); the input has 6"):
        Autoencoder(MLP([6, 3]), MLP([3, 5]), Gaussian(), input_shape=(6,), code_size=3)
    with pytest.raises(ValueError, match=r"the encoder fails on a batch of shape \(2, 6\): RuntimeError"):
        Autoencoder(MLP([7, 3]), MLP([3, 6]), Gaussian(), input_shape=(6,), code_size=3)
    with pytest.raises(ValueError, match="TopK keeps k=4 units per sample, but the code has 3"):
        Autoencoder(MLP([6, 3], final=TopK(4)), MLP([3, 6]), Gaussian(), input_shape=(6,), code_size=3)


def test_construction_changes_no_state_and_a_users_topk_trains():
    enc = MLP([8, 16], final=TopK(4))
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    ae = Autoencoder(enc, MLP([16, 8]), Gaussian(), input_shape=(8,), code_size=16, penalties=[AuxK(2)])
    assert ae.training and all(torch.equal(before[k], v) for k, v in enc.state_dict().items())
    fit(ae, torch.randn(64, 8), epochs=2, batch_size=16, val_fraction=0.0, progress=False)
    assert enc.final.since_fired.shape == (16,) and enc.final.steps.item() == 8


def test_check_has_no_side_effects_and_setup_sizes_state():
    ae = Autoencoder(MLP([6, 3], final="sigmoid"), MLP([3, 6]), Gaussian(), input_shape=(6,), code_size=3,
                     penalties=[KLSparsity(0.1, momentum=0.9)])
    kl = ae.penalties[0]
    assert kl.running.shape == (3,) and kl.running.isnan().all()
    kl.running = torch.zeros(0)
    kl.check(ae)
    assert kl.running.shape == (0,)


@pytest.mark.parametrize("call", ["reconstruct", "encode", "evaluate", "elbo", "log_likelihood", "tangents",
                                  "traversal", "vector_field", "regularised"])
@pytest.mark.parametrize("training", [True, False])
def test_library_calls_leave_the_mode_and_the_global_rng_as_they_were(call, training):
    x = np.random.default_rng(0).random((20, 6)).astype(np.float32)
    vae = create("vae", (6,), code_size=2, hidden=[8], likelihood="gaussian")
    dae = create("denoising", (6,), code_size=3, hidden=[8])
    calls = {
        "reconstruct": lambda: reconstruct(dae, x), "encode": lambda: encode(dae, x),
        "evaluate": lambda: evaluate(dae, x), "elbo": lambda: elbo(vae, torch.from_numpy(x)),
        "log_likelihood": lambda: log_likelihood(vae, torch.from_numpy(x), samples=4),
        "tangents": lambda: tangent_directions(dae, x[:2]), "traversal": lambda: latent_traversal(vae, x[0]),
        "vector_field": lambda: vector_field(dae, x), "regularised": lambda: regularised_metrics(dae, x),
    }
    for m in (vae, dae):
        m.train(training)
        m.decoder.eval()  # a submodule in its own mode: restored too
    rng = torch.get_rng_state()
    calls[call]()
    for m in (vae, dae):
        assert m.training is training and m.encoder.training is training and not m.decoder.training
    if call != "elbo" and call != "log_likelihood":  # these draw noise on purpose, from the caller's stream
        assert torch.equal(torch.get_rng_state(), rng)


def test_evaluating_restores_the_mode_after_an_error():
    ae = _ae()
    with pytest.raises(RuntimeError), evaluating(ae):
        assert not ae.training
        raise RuntimeError
    assert ae.training


def test_seeded_repeats_draws_and_restores_the_callers_stream():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    with seeded(0):
        a = torch.rand(2)
    with seeded(0):
        assert torch.equal(torch.rand(2), a)
    assert torch.equal(torch.rand(3), expected)


class _Doubling(Encoder):
    """A user's encoder h = 2 W x that states its Jacobian norm: ‖2W‖²_F for every sample."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(6, 3, bias=False)

    def forward(self, x):
        return 2 * self.lin(x)

    def jacobian_norm(self, h):
        return (4 * self.lin.weight.square().sum()).expand(len(h))


def test_a_users_encoder_declares_its_closed_form_jacobian_and_stochasticity():
    from aekit.parts.contractive import Contractive, frobenius_exact
    from aekit.parts.variational import GaussianEncoder

    ae = Autoencoder(_Doubling(), MLP([3, 6]), Gaussian(), input_shape=(6,), code_size=3, penalties=[Contractive(1.0)])
    assert ae.penalties[0].method == "closed" and not ae.stochastic
    x = torch.randn(4, 6)
    torch.testing.assert_close(ae(x).terms["contractive"], frobenius_exact(ae.encoder, x).mean())
    vae = Autoencoder(GaussianEncoder(MLP([6, 8]), 8, 2), MLP([2, 6]), Gaussian(), input_shape=(6,), code_size=2)
    assert vae.stochastic and isinstance(vae.encoder, Encoder)


def test_dead_unit_state_travels_in_the_batch_in_training_only():
    seen = []

    class Look(L1):
        name = "look"

        def forward(self, b):
            seen.append((None if b.pre is None else tuple(b.pre.shape), None if b.dead is None else b.dead.clone()))
            return b.h.new_zeros(())

    topk = TopK(2, dead_after=1)
    ae = Autoencoder(MLP([6, 5], final=topk), MLP([5, 6]), Gaussian(), input_shape=(6,), code_size=5,
                     penalties=[Look(0.0)])
    assert ae.tracks_dead_units and not _ae().tracks_dead_units
    ae(torch.randn(4, 6))
    ae.eval()
    ae(torch.randn(4, 6))
    assert seen[0][0] == (4, 5) and torch.equal(seen[0][1], topk.dead()) and seen[1] == (None, None)
    with pytest.raises(ValueError, match="AuxK needs a code that tracks dead units"):
        _ae(penalties=[AuxK(2)])
