"""An SAE judged on activations and spliced into its network (issue 13): FVU, L0, dead/dense, CE recovered."""

import math

import numpy as np
import pytest
import torch

from aekit import create
from aekit.evaluation.splice import ce_loss_recovered, sae_metrics, spliced

transformers = pytest.importorskip("transformers")  # the sae extra; in the test extra, so CI runs these


def _hand_sae():
    """sae-topk with d = 4, K = 5, k = 2: W_e = W_d = I on the first four latents, the fifth never fires."""
    m = create("sae-topk", (4,), code_size=5, k=2, aux_k=0)
    w = torch.zeros(4, 5)
    w[:, :4] = torch.eye(4)
    with torch.no_grad():
        m.decoder.parametrizations.weight.original.copy_(w)
        m.decoder.bias.zero_()
        m.decoder.ready.fill_(True)
        m.encoder.weight.copy_(w.t())
        m.encoder.bias.zero_()
    return m


def test_sae_metrics_by_hand(tmp_path):
    x = np.array([[3, 1, 0.5, 0], [0, -1, 2, 5]], np.float32)  # codes [3, 1, 0, 0, 0] and [0, 0, 2, 5, 0]
    got = sae_metrics(_hand_sae(), x)
    err = 0.5**2 + 1**2  # what the two dropped units carried
    total = 2 * (1.5**2 + 1**2 + 0.75**2 + 2.5**2)  # Σ‖x − x̄‖², x̄ = [1.5, 0, 1.25, 2.5]
    assert math.isclose(got["fvu"], err / total, rel_tol=1e-6)
    assert got["l0"] == 2 and got["tokens"] == 2 and got["dead_fraction"] == 0.2 and got["dense_fraction"] == 0.8
    np.testing.assert_array_equal(got["density"], [0.5, 0.5, 0.5, 0.5, 0])
    np.save(tmp_path / "x.npy", x)
    assert sae_metrics(_hand_sae(), tmp_path / "x.npy", max_rows=1)["l0"] == 2  # streamed, first row only
    assert sae_metrics(_hand_sae(), tmp_path / "x.npy", max_rows=1)["dead_fraction"] == 0.6


def test_a_latent_is_active_above_the_documented_threshold_not_above_zero():
    """Issue 37.11: L0 and dead latents count h > 1e-3, which neither the README nor the report said."""
    from pathlib import Path

    from aekit.report.sae import sae_sections
    from aekit.core.model import ALIVE

    assert ALIVE == 1e-3
    x = np.array([[3, 5e-4, 0, 0], [0, 0, 2, 5]], np.float32)  # latent 1 is positive but below 10⁻³
    got = sae_metrics(_hand_sae(), x)
    assert got["l0"] == 1.5 and got["density"][1] == 0  # counted > 0 it would be 2 and 0.5
    readme = Path(__file__).resolve().parents[1].joinpath("README.md").read_text()
    assert "exceeds 10⁻³ (`aekit.core.model.ALIVE`" in readme and "10⁻³" in sae_metrics.__doc__
    measures, figs, _ = sae_sections(_hand_sae(), x)
    assert "L0 (latents > 0.001 per token)" in measures
    assert "> 0.001" in figs["latent_density"].axes[0].get_xlabel()


def test_spliced_replaces_the_layer_output():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x = torch.randn(5, 4)
    with torch.no_grad(), spliced(net, "1", lambda h: 2 * h + 1):
        got = net(x)
    with torch.no_grad():
        assert torch.equal(got, net[2](2 * net[:2](x) + 1))
        assert not torch.equal(net(x), got)  # the hook is gone afterwards


def test_identity_recovers_all_of_the_ce_loss_and_zero_ablation_none():
    torch.manual_seed(0)
    lm = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=50,
                                                              n_positions=16))
    batches = [torch.randint(0, 50, (3, 12), generator=torch.Generator().manual_seed(i)) for i in range(2)]
    same = ce_loss_recovered(lm, "transformer.h.0", lambda h: h, batches)
    assert same["ce_recovered"] == 1.0 and same["kl_sae"] == 0.0 and same["ce_sae"] == same["ce_clean"]
    assert same["tokens"] == 2 * 3 * 11 and same["ce_zero"] != same["ce_clean"] and same["kl_zero"] > 0
    zero = ce_loss_recovered(lm, "transformer.h.0", torch.zeros_like, batches)
    assert zero["ce_recovered"] == 0.0 and zero["kl_sae"] == zero["kl_zero"]
    half = ce_loss_recovered(lm, "transformer.h.0", create("sae-topk", (16,), k=4), batches)
    assert half["ce_sae"] != half["ce_clean"] and math.isfinite(half["ce_recovered"])
    clean = torch.nn.functional.cross_entropy(lm.eval()(batches[0]).logits[:, :-1].reshape(-1, 50),
                                              batches[0][:, 1:].reshape(-1))
    one = ce_loss_recovered(lm, "transformer.h.0", lambda h: h, batches[:1])
    assert math.isclose(one["ce_clean"], float(clean), rel_tol=1e-5)
    with pytest.raises(ValueError, match="got no tokens"):
        ce_loss_recovered(lm, "transformer.h.0", lambda h: h, [])
