"""Binary codes and Hamming search: packing and distances against plain counting, the measures against hand
values, ITQ's defining property, the two ways of training bits, and the index end to end."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import aekit
from aekit.parts.hashing import BinaryCode
from aekit.parts.projections import ITQ, LSH, PCAHash
from aekit.evaluation.retrieval import HammingIndex, ModelHasher, hamming, mean_average_precision, pack, precision_at_k


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 130).flatmap(lambda b: st.tuples(arrays(bool, (3, b)), arrays(bool, (5, b)))))
def test_packed_hamming_distance_counts_the_differing_bits(pair):
    a, b = pair
    expected = (a[:, None, :] != b[None, :, :]).sum(-1)
    np.testing.assert_array_equal(hamming(pack(a), pack(b)), expected)


def test_search_equals_a_stable_sort_of_all_distances():
    x = np.random.default_rng(0).normal(size=(700, 16))
    index = HammingIndex(LSH(8).fit(x)).add(x)  # 8 bits for 700 items: many ties
    d, i = index.search(x[:40], n=25)
    full = index.distances(x[:40])
    order = np.argsort(full, axis=1, kind="stable")[:, :25]
    np.testing.assert_array_equal(i, order)
    np.testing.assert_array_equal(d, np.take_along_axis(full, order, 1))
    d_all, _ = index.search(x[:2], n=10_000)  # n beyond the corpus: every item, sorted
    assert d_all.shape == (2, 700) and (np.diff(d_all, axis=1) >= 0).all()


def test_measures_against_hand_values():
    assert precision_at_k(np.array([[1, 1, 0, 2], [0, 0, 0, 0]]), np.array([1, 0])) == pytest.approx((2 / 4 + 1) / 2)
    # relevant at ranks 1 and 3 (AP (1 + 2/3)/2), and at rank 2 only (AP 1/2); ties kept in corpus order
    dist = np.array([[0, 1, 1, 2], [3, 0, 3, 3]])
    got = mean_average_precision(dist, np.array([1, 0]), np.array([1, 2, 1, 2]) * 0 + np.array([1, 0, 1, 2]))
    assert got == pytest.approx(((1 + 2 / 3) / 2 + 1 / 1) / 2)
    assert mean_average_precision(np.array([[0, 1]]), np.array([5]), np.array([1, 2])) == 0.0  # nothing relevant


def test_itq_rotation_lowers_the_quantisation_error_and_stays_orthogonal():
    x = np.random.default_rng(1).normal(size=(400, 12)) @ np.random.default_rng(2).normal(size=(12, 12))

    def loss(h):  # ‖B − V R‖² with V the centred PCA projection: what ITQ minimises over R
        v = h._center(x) @ h.proj_
        return float(np.square(np.where(v >= 0, 1, -1) - v).sum())

    pca, itq0, itq = PCAHash(6).fit(x), ITQ(6, iters=0).fit(x), ITQ(6, iters=50).fit(x)
    r = np.linalg.lstsq(pca.proj_, itq.proj_, rcond=None)[0]  # the rotation ITQ applied to the components
    np.testing.assert_allclose(r.T @ r, np.eye(6), atol=1e-8)
    assert loss(itq) < loss(itq0)  # 50 alternations improve on the random rotation they start from
    with pytest.raises(ValueError, match="64 bits need at least 64"):
        ITQ(64).fit(x)


def test_binary_code_trains_by_noise_or_straight_through_and_is_bits_otherwise():
    a = torch.tensor([[-3.0, -0.1, 0.2, 5.0]], requires_grad=True)
    torch.manual_seed(0)
    ste = BinaryCode("ste").train()
    h = ste(a)
    assert h.tolist() == [[0.0, 0.0, 1.0, 1.0]]  # forward: hard bits
    h.sum().backward()
    s = torch.sigmoid(a.detach())
    torch.testing.assert_close(a.grad, s * (1 - s))  # backward: the sigmoid's gradient
    noisy = BinaryCode("noise", noise=4.0).train()(torch.zeros(20_000, 1))
    assert 0.4 < float((noisy > 0.9).float().mean() + (noisy < 0.1).float().mean()) < 0.9  # pushed apart
    assert BinaryCode("noise").eval()(a).tolist() == [[0.0, 0.0, 1.0, 1.0]]
    with pytest.raises(ValueError, match="binary"):
        BinaryCode("round")
    with pytest.raises(ValueError, match="code_noise=1.0 has no effect here"):
        aekit.create("hashing", (8,), binary="ste", code_noise=1.0)


@pytest.mark.parametrize("binary", ["itq", "noise", "ste"])
def test_a_trained_hashing_model_retrieves_its_own_class_better_than_chance(binary, tmp_path):
    d = aekit.load("digits")
    torch.manual_seed(0)
    model = aekit.create("hashing", d.train.shape, code_size=16, binary=binary, hidden=[128], likelihood="gaussian")
    aekit.fit(model, d.train.x, epochs=15, val_fraction=0, seed=0, progress=False)
    bits = ModelHasher(model).bits(d.test.x)
    assert bits.dtype == bool and bits.shape == (len(d.test.x), 16)
    assert 0.05 < bits.mean() < 0.95
    index = HammingIndex(ModelHasher(model)).add(d.train.x, d.train.y)
    _, idx = index.search(d.test.x, n=10)
    assert precision_at_k(index.labels[idx], d.test.y) > 0.35  # chance: 0.1
    again = HammingIndex.load(index.save(tmp_path / "index.npz"), ModelHasher(model))
    np.testing.assert_array_equal(again.search(d.test.x[:5], n=10)[1], idx[:5])
    np.testing.assert_array_equal(again.labels, d.train.y)


def test_an_empty_index_and_mismatched_codes_are_refused():
    with pytest.raises(ValueError, match="the index is empty"):
        HammingIndex(PCAHash(2)).search(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="different widths"):
        hamming(pack(np.zeros((1, 70), bool)), pack(np.zeros((1, 8), bool)))
    with pytest.raises(ValueError, match="2-D"):
        pack(np.zeros(8, bool))


def test_index_and_search_from_the_command_line(tmp_path, digits):
    from typer.testing import CliRunner

    from aekit.cli._app import app

    def run(*args):
        return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)

    np.savez(tmp_path / "corpus.npz", x=digits.train.x.reshape(len(digits.train.x), -1), y=digits.train.y)
    np.savez(tmp_path / "queries.npz", x=digits.test.x[:20].reshape(20, -1), y=digits.test.y[:20])
    res = run("train", "--preset", "hashing", "--code-size", 16, "--hidden", "64", "--binary", "itq", "--epochs", 3,
              "--likelihood", "gaussian", "--out", tmp_path / "run", "--quiet")
    assert res.exit_code == 0, res.output
    res = run("index", tmp_path / "run", tmp_path / "corpus.npz", "--out", tmp_path / "index.npz")
    assert res.exit_code == 0 and f"indexed {len(digits.train.x)} items as 16-bit codes with labels" in res.output
    res = run("search", tmp_path / "run", tmp_path / "index.npz", tmp_path / "queries.npz", "--top", 7,
              "--out", tmp_path / "nn.csv")
    assert res.exit_code == 0 and "precision@7" in res.output and "query 0:" in res.output, res.output
    rows = (tmp_path / "nn.csv").read_text().splitlines()
    assert rows[0] == "query,rank,item,distance" and len(rows) == 1 + 20 * 7
    # the same neighbours as the Python index
    model = load_model_of(tmp_path / "run")
    _, nn = HammingIndex(ModelHasher(model)).add(digits.train.x).search(digits.test.x[:20], n=7)
    assert [int(r.split(",")[2]) for r in rows[1:8]] == nn[0].tolist()
    res = run("train", "--preset", "undercomplete", "--code-size", 4, "--epochs", 1, "--out", tmp_path / "plain",
              "--quiet")
    res = CliRunner().invoke(app, ["index", str(tmp_path / "plain"), str(tmp_path / "corpus.npz")])
    assert res.exit_code == 2 and "has no binary code: train it with --preset hashing" in res.output


def load_model_of(run_dir):
    from aekit import load_model

    return load_model(run_dir)


def test_bit_balance_is_the_mean_kl_of_each_bits_rate_to_one_half_and_evens_the_rates():
    from aekit.core.model import Batch

    h = torch.tensor([[1.0, 0.9], [0.0, 0.7], [1.0, 0.8], [0.0, 0.6]])  # rates 1/2 (balanced) and 3/4
    kl_one = 0.5 * np.log(0.5 / 0.75) + 0.5 * np.log(0.5 / 0.25)  # KL(½ ‖ ¾); the first bit's is 0
    for bits in (h, torch.cat([h, h], 1)):  # 2 bits, and the same two bits twice: the same mean
        model = aekit.create("hashing", (4,), code_size=bits.shape[1], hidden=[8], binary="noise", balance=0.5)
        kl, = model.penalties
        value = float(kl(Batch(x=bits, x_tilde=bits, h=bits, r=bits, model=model)))
        assert value == pytest.approx(0.5 * kl_one / 2, rel=1e-5)  # β · mean over the bits
    assert list(aekit.create("hashing", (4,), code_size=2, hidden=[8], binary="noise", balance=0).penalties) == []

    d = aekit.load("digits")
    skew = {}
    for beta in (0.0, 16.0):
        torch.manual_seed(0)
        m = aekit.create("hashing", d.train.shape, code_size=16, hidden=[64], likelihood="gaussian", binary="noise",
                         balance=beta)
        aekit.fit(m, d.train.x, epochs=8, val_fraction=0, seed=0, progress=False)
        skew[beta] = float(np.abs(ModelHasher(m).bits(d.test.x).mean(0) - 0.5).mean())
    assert skew[16.0] < 0.75 * skew[0.0]  # each bit closer to on for half the items (measured 0.29 vs 0.50)


def test_bit_decorrelation_is_the_mean_squared_correlation_of_balanced_bits_and_lowers_it():
    from aekit.parts.hashing import BitDecorrelation
    from aekit.core.model import Batch

    def value(h: torch.Tensor, beta: float = 0.5) -> float:
        return float(BitDecorrelation(beta)(Batch(x=h, x_tilde=h, h=h, r=h, model=None)))

    bit = torch.tensor([[1.0], [0.0], [1.0], [0.0]])
    assert value(torch.cat([bit, bit], 1)) == pytest.approx(0.5)  # two copies of a balanced bit: correlation 1
    assert value(torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])) == 0.0  # independent bits
    h = torch.rand(64, 5, generator=torch.Generator().manual_seed(0))
    cov = np.cov(h.numpy(), rowvar=False, bias=True)
    off = cov[~np.eye(5, dtype=bool)]
    assert value(h, 2.0) == pytest.approx(2.0 * 16 * (off**2).mean(), rel=1e-5)  # against NumPy

    d = aekit.load("digits")
    mean_sq = {}
    for weight in (0.0, 16.0):
        torch.manual_seed(0)
        m = aekit.create("hashing", d.train.shape, code_size=16, hidden=[64], likelihood="gaussian",
                         binary="noise", decorrelation=weight)
        aekit.fit(m, d.train.x, epochs=30, val_fraction=0, seed=0, progress=False)
        cov = np.cov(ModelHasher(m).bits(d.train.x).astype(float), rowvar=False, bias=True)
        mean_sq[weight] = 16 * float((cov[~np.eye(16, dtype=bool)] ** 2).mean())
    assert mean_sq[16.0] < 0.8 * mean_sq[0.0], mean_sq  # the penalty's measure on the hard bits: 0.18 → 0.12


def test_itq_code_is_itq_fitted_to_the_trained_codes_and_saved_with_the_model(tmp_path):
    from aekit import load_model
    from aekit.parts.hashing import ITQCode

    d = aekit.load("digits")
    torch.manual_seed(0)
    model = aekit.create("hashing", d.train.shape, code_size=16, hidden=[64], likelihood="gaussian")  # itq: default
    code, = model.finishes
    assert isinstance(code, ITQCode) and len(model.penalties) == 0
    aekit.fit(model, d.train.x, epochs=5, val_fraction=0, seed=0, progress=False, run_dir=tmp_path / "run")
    h = model.code(torch.from_numpy(d.train.x)).detach()  # the real-valued code: the decoder's and the scores'
    assert not torch.isin(h, torch.tensor([0.0, 1.0])).all()
    ref = ITQ(16, iters=50, seed=0).fit(h.double().numpy())  # ITQ itself on the training codes
    np.testing.assert_allclose(code.center.numpy(), ref.mean_, atol=1e-5)
    np.testing.assert_allclose(code.rotation.numpy(), ref.proj_, atol=1e-5)
    bits = ModelHasher(model).bits(d.test.x)
    expected = ref.bits(model.code(torch.from_numpy(d.test.x)).detach().double().numpy())
    assert (bits == expected).mean() > 0.999  # float32 against float64 at the threshold
    assert 0.3 < bits.mean() < 0.7  # centred: about half the bits on
    again = ModelHasher(load_model(tmp_path / "run")).bits(d.test.x)
    np.testing.assert_array_equal(again, bits)


def test_itq_code_before_fitting_and_on_fewer_rows_than_bits():
    from aekit.parts.hashing import ITQCode

    code = ITQCode(3).eval()
    a = torch.tensor([[-1.0, 0.5, 2.0], [0.3, -0.2, 0.0]])
    assert torch.equal(code(a), a)  # not as features: the code itself
    code.features = True
    assert code(a).tolist() == [[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]]  # before finish: 1[h > 0]
    with pytest.warns(UserWarning, match="2 training rows are fewer than the 3 bits"):
        code.finish(a)
    assert code(a).tolist() == [[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]]  # centred at the mean, not rotated
    with pytest.raises(ValueError, match="balance=0.5 has no effect here"):
        aekit.create("hashing", (8,), balance=0.5)
    with pytest.raises(ValueError, match="binary"):
        aekit.create("hashing", (8,), binary="round")
