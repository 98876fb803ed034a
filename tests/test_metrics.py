import numpy as np
import pytest

from aekit import create, fit, pca_error, principal_angles, reconstruct, squared_error


def test_squared_error_is_summed_over_dimensions():
    assert squared_error(np.zeros((2, 3)), np.ones((2, 3))) == 3.0
    assert squared_error(np.zeros((2, 4)), np.array([[1, 0, 0, 0], [1, 1, 1, 0.0]])) == 2.0


def test_principal_angles_of_equal_subspaces_are_zero():
    """Issue 17.6: arccos of cosines ≈ 1 reported ~1e-6° for identical subspaces."""
    a = np.linalg.qr(np.random.default_rng(0).normal(size=(50, 5)))[0]
    mix = np.random.default_rng(1).normal(size=(5, 5))
    assert principal_angles(a, a @ mix).max() < 1e-10
    assert principal_angles(a, a).max() < 1e-10


def test_principal_angles_known_subspaces():
    e = np.eye(3)
    assert principal_angles(e[:, :2], e[:, :2]) == pytest.approx([0, 0], abs=1e-6)
    assert principal_angles(e[:, :1], e[:, 1:2]) == pytest.approx([90])
    t = np.radians(30)
    a = np.array([[1, 0], [0, 1], [0, 0.0]])
    b = np.array([[1, 0], [0, np.cos(t)], [0, np.sin(t)]])
    assert principal_angles(a, b) == pytest.approx([0, 30])
    # scaling or mixing the columns does not change the subspace
    assert principal_angles(b @ np.array([[2, 1], [0, 3.0]]), b).max() == pytest.approx(0, abs=1e-6)


def test_pca_error_matches_sklearn_reconstruction(digits):
    err, pca = pca_error(digits.train.x, digits.test.x, 5)
    r = pca.inverse_transform(pca.transform(digits.test.x))
    assert err == pytest.approx(((digits.test.x - r) ** 2).sum(1).mean())


def test_linear_autoencoder_learns_pca_subspace(digits):
    """The seed's claim: a linear AE with squared error spans PCA's top-k subspace."""
    k = 10
    model = create("linear", digits.train.shape, code_size=k)
    fit(model, digits.train.x, val_fraction=0.0, progress=False)  # the preset's training defaults
    err_pca, pca = pca_error(digits.train.x, digits.test.x, k)
    decoder_columns = model.decoder.linears[0].weight.detach().double().numpy()  # (D, k)
    angle = principal_angles(decoder_columns, pca.components_.T).max()
    err_ae = squared_error(digits.test.x, reconstruct(model, digits.test.x))
    assert angle < 1.0, angle
    assert abs(err_ae / err_pca - 1) < 0.01, (err_ae, err_pca)


def test_linear_probe_and_choice_of_c(digits):
    from aekit.evaluation.metrics import choose_c, linear_probe

    x, y = digits.train.x, digits.train.y
    acc = linear_probe(x, y, digits.test.x, digits.test.y, max_iter=500)
    assert 0.9 < acc <= 1.0
    # a C so small that the probe underfits loses on held-out data, so it is never chosen
    assert choose_c(x, y, [1e-6, 1.0], max_iter=500) == 1.0
    assert linear_probe(x, y, digits.test.x, digits.test.y, c=1e-6) < acc - 0.05  # c is used
    with pytest.raises(ValueError, match="C values must be numbers > 0"):
        choose_c(x, y, [0.0, 1.0])


def test_hand_computed_metrics():
    from aekit.evaluation.metrics import mean_squared_error, psnr, roc_auc, sparsity

    x, r = np.zeros((2, 4)), np.array([[1, 0, 0, 0], [1, 1, 1, 0.0]])
    assert squared_error(x, r) == 2.0 and mean_squared_error(x, r) == 0.5  # per-image sum vs per-dimension mean
    assert psnr(np.zeros(4), np.full(4, 0.1)) == pytest.approx(20.0)
    assert psnr(np.zeros(4), np.full(4, 0.5), data_range=2.0) == pytest.approx(10 * np.log10(4 / 0.25))
    assert psnr(np.ones(3), np.ones(3)) == float("inf")
    # 4 pairs (anomaly, normal): 3 ranked right
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    with pytest.raises(ValueError, match="needs both classes"):
        roc_auc(np.zeros(3), np.arange(3.0))
    s = sparsity(np.array([[0, 2.0, 0, 0], [0, 1.0, 3.0, 0]]))
    assert s == {"l0": 1.5, "dead_fraction": 0.5}
    assert sparsity(np.array([[0.005, 0.5]]), tol=0.01) == {"l0": 1.0, "dead_fraction": 0.5}


@pytest.mark.parametrize("x, message", [
    (np.full((3, 64), np.nan), "NaN or inf"),
    (np.zeros((3, 10)), "10 features per sample but the model expects 64"),
    (np.zeros((3, 2, 2, 2, 2)), "16 features per sample"),
    (np.array([[object()] * 64]), "must be numeric"),
])
def test_python_helpers_validate_like_training(x, message):
    """Issue 20.2: reconstruct/encode returned NaN silently or failed deep inside torch."""
    from aekit.evaluation.metrics import encode

    model = create("undercomplete", (1, 8, 8), code_size=4)
    for helper in (reconstruct, encode):
        with pytest.raises(ValueError, match=message):
            helper(model, x)


def test_mmd2_default_bandwidth_is_the_documented_one():
    """Issue 37.11: the default is the median distance over √2; the docstring said the median."""
    from scipy.spatial.distance import pdist

    from aekit.evaluation.metrics import mmd2

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 3)), rng.normal(0.5, 1, size=(40, 3))
    ell = np.median(pdist(np.concatenate([x, y]))) / np.sqrt(2)
    assert np.isclose(mmd2(x, y), mmd2(x, y, bandwidth=ell), rtol=1e-9, atol=0)
    assert not np.isclose(mmd2(x, y), mmd2(x, y, bandwidth=ell * np.sqrt(2)), rtol=1e-3, atol=0)
    assert "divided by √2" in mmd2.__doc__
