import math

import pytest
import torch

from aekit import create
from aekit.core.corruption import Compose, GaussianNoise, Identity, MaskingNoise, SaltAndPepper, make_corruption

N = 400_000


def _within(value, target, se, n_se=5):
    assert abs(value - target) < n_se * se, (value, target, se)


@pytest.mark.parametrize("nu", [0.1, 0.5])
def test_masking_fraction(nu):
    x = torch.rand(N) + 0.5  # never 0 before masking
    frac = (MaskingNoise(nu)(x) == 0).double().mean().item()
    _within(frac, nu, math.sqrt(nu * (1 - nu) / N))


@pytest.mark.parametrize("sigma", [0.1, 1.0])
def test_gaussian_noise_std(sigma):
    x = torch.rand(N)
    noise = GaussianNoise(sigma)(x) - x
    _within(noise.std().item(), sigma, sigma / math.sqrt(2 * N))
    _within(noise.mean().item(), 0.0, sigma / math.sqrt(N))


def test_salt_and_pepper_fraction_and_values():
    nu = 0.2
    x = torch.full((N,), 0.5)
    y = SaltAndPepper(nu, low=-1.0, high=2.0)(x)
    hit = y != 0.5
    _within(hit.double().mean().item(), nu, math.sqrt(nu * (1 - nu) / N))
    assert set(y[hit].unique().tolist()) == {-1.0, 2.0}
    _within((y[hit] == 2.0).double().mean().item(), 0.5, math.sqrt(0.25 / hit.sum().item()))


def test_salt_and_pepper_defaults_to_the_training_data_range(tmp_path):
    """Issue 17.3: salt-and-pepper always wrote 0 and 1, whatever the data's range."""
    from aekit import fit, load_model, save_model

    x = torch.rand(200, 16) * 71 + 64  # values in [64, 135]
    model = create("denoising", (16,), noise="salt_pepper", level=0.5, likelihood="gaussian")
    fit(model, x, epochs=1, progress=False, val_fraction=0)
    lo, hi = x.min().item(), x.max().item()
    y = model.corrupt(x)
    assert set(y[y != x].unique().tolist()) == {lo, hi}
    save_model(model, tmp_path)
    y = load_model(tmp_path).corrupt(x)
    assert set(y[y != x].unique().tolist()) == {lo, hi}  # the range is saved with the model
    # not fitted yet: the batch's own range; explicit values are kept by fit
    y = SaltAndPepper(0.5)(x[:10])
    assert set(y[y != x[:10]].unique().tolist()) <= {x[:10].min().item(), x[:10].max().item()}
    sp = SaltAndPepper(0.5, low=0.0, high=1.0)
    sp.prepare(x)
    assert (sp.low.item(), sp.high.item()) == (0.0, 1.0)


def test_seeded_fresh_per_batch_and_on_device():
    c = MaskingNoise(0.5)
    x = torch.ones(1000)
    torch.manual_seed(1)
    a, b = c(x), c(x)
    torch.manual_seed(1)
    assert torch.equal(a, c(x)) and not torch.equal(a, b)
    assert a.device == x.device


def test_compose_and_names():
    c = make_corruption("masking:0.5+gaussian:0.1")
    assert isinstance(c, Compose) and isinstance(c.parts[0], MaskingNoise) and c.parts[1].sigma == 0.1
    y = c(torch.ones(N))
    _within((y.abs() < 0.5).double().mean().item(), 0.5, math.sqrt(0.25 / N))
    assert isinstance(make_corruption(None), Identity)


@pytest.mark.parametrize("make, message", [
    (lambda: GaussianNoise(0), "sigma must be a finite number > 0"),
    (lambda: GaussianNoise(float("inf")), "sigma must be a finite number > 0"),
    (lambda: MaskingNoise(1.0), r"fraction must be in \[0, 1\)"),
    (lambda: MaskingNoise(-0.1), r"fraction must be in \[0, 1\)"),
    (lambda: SaltAndPepper(1.5), r"fraction must be in \[0, 1\)"),
    (lambda: SaltAndPepper(0.1, low=1, high=0), "low < high"),
    (lambda: make_corruption("blur", 0.1), "unknown corruption 'blur'"),
    (lambda: make_corruption("masking"), "needs a noise level"),
    (lambda: make_corruption("masking:0.2+gaussian:0.1", 0.5), "noise level 0.5 has no effect"),
    (lambda: SaltAndPepper(0.1, low=float("nan")), "salt-and-pepper low must be a finite number"),
    (lambda: create("denoising", (64,), level=2.0), r"fraction must be in \[0, 1\)"),
])
def test_bad_noise_parameters(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_model_corrupts_in_training_only_and_scores_clean_x():
    model = create("denoising", (1, 8, 8), noise="masking", level=0.5)
    x = torch.rand(16, 64) + 0.01
    model.train()
    out = model(x)
    assert (out.x_tilde == 0).any()
    torch.testing.assert_close(out.nll, model.likelihood.nll(out.r, x))  # the clean x, not x_tilde
    model.eval()
    assert torch.equal(model(x).x_tilde, x)
    assert (model(x, corrupt=True).x_tilde == 0).any()
    noisy = model.corrupt(x)
    torch.testing.assert_close(model.denoise(noisy), model.reconstruct(noisy))


def test_evaluate_can_corrupt(digits):
    from aekit import evaluate, fit

    model = create("denoising", digits.train.shape, code_size=32, noise="masking", level=0.5)
    fit(model, digits.train.x[:200], epochs=3, progress=False)
    x = torch.from_numpy(digits.test.x)
    clean, noisy = evaluate(model, x), evaluate(model, x, corrupt=True)
    assert noisy["reconstruction"] > clean["reconstruction"]
