"""Property-based fuzzing of every reader and of the CLI's option parsing (issue 10.6).

Generated bad files and values never produce a traceback: the Python API raises ``ValueError``
(or succeeds), the CLI exits 0 or prints one ``error: …`` line and exits 2, and no input file is
ever modified. The examples are derandomised (the same cases on every run); ``N_*`` below are the
numbers of generated cases per run.
"""

import gzip
import hashlib
import io
import json
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from aekit import create, load_model, save_model
from aekit.cli._app import app
from aekit.store.files import read_array
from aekit.store.data import read_idx

N_FILES, N_CONFIGS, N_OPTIONS = 150, 150, 120
FUZZ = settings(max_examples=N_FILES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _valid_npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.random.default_rng(0).random((6, 4), dtype=np.float32))
    return buf.getvalue()


def _valid_npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=np.random.default_rng(0).random((6, 4)), y=np.arange(6))
    return buf.getvalue()


def _valid_idx(gz: bool) -> bytes:
    raw = bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") * 2 + bytes(range(18))
    return gzip.compress(raw) if gz else raw


SEEDS = {".npy": _valid_npy(), ".npz": _valid_npz(), ".csv": b"a,b,c\n1,2,3\n4.5,-1e3,0\n",
         ".gz": _valid_idx(True), ".idx": _valid_idx(False)}


@st.composite
def damaged(draw, seed: bytes) -> bytes:
    """A valid file with bytes flipped, cut, spliced, or its header numbers changed; or random bytes."""
    kind = draw(st.sampled_from(["flip", "cut", "splice", "numbers", "random"]))
    b = bytearray(seed)
    if kind == "random":
        return draw(st.binary(max_size=300))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(b) - 1))
            b[i] = draw(st.integers(0, 255))
        return bytes(b)
    if kind == "cut":
        return bytes(b[: draw(st.integers(0, len(b) - 1))])
    if kind == "splice":
        i = draw(st.integers(0, len(b)))
        return bytes(b[:i]) + draw(st.binary(max_size=40)) + bytes(b[i:])
    # numbers: the header's shape or dimensions replaced by others, huge ones included
    big = str(draw(st.sampled_from([0, -1, 10**13, 2**63, 7]))).encode()
    return bytes(b).replace(b"(6, 4)", b"(" + big + b", 4)").replace(b"1,2,3", big + b",2,3")


def _check_reader(tmp_path, suffix: str, content: bytes, read) -> None:
    path = tmp_path / f"f{suffix}"
    path.write_bytes(content)
    before = hashlib.sha256(content).hexdigest()
    try:
        out = read(path)
    except ValueError as e:
        assert str(e) and "\n" not in str(e).strip(), repr(e)
    else:
        arr = out[0] if isinstance(out, tuple) else out
        assert isinstance(arr, np.ndarray)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # the input is never touched


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv"])
def test_fuzz_array_readers(tmp_path, suffix):
    @FUZZ
    @given(content=damaged(SEEDS[suffix]))
    def check(content):
        _check_reader(tmp_path, suffix, content, read_array)

    check()


@pytest.mark.parametrize("suffix", [".gz", ".idx"])
def test_fuzz_idx_reader(tmp_path, suffix):
    @FUZZ
    @given(content=damaged(SEEDS[suffix]))
    def check(content):
        _check_reader(tmp_path, suffix if suffix == ".gz" else "", content, read_idx)

    check()


def test_fuzz_npz_with_a_lying_member(tmp_path):
    """A zip member whose .npy header claims a huge shape is refused before it is allocated."""
    header = _valid_npy().replace(b"(6, 4)", b"(10000000000000, 4)")
    with zipfile.ZipFile(tmp_path / "f.npz", "w") as z:
        z.writestr("x.npy", header)
    with pytest.raises(ValueError, match="header claims shape"):
        read_array(tmp_path / "f.npz")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=12)
OPTION_NAMES = sorted({o for p in __import__("aekit").PRESETS.values() for o in p.options()})


@st.composite
def configs(draw):
    """model.json objects: real preset names and option names with generated values, or any JSON."""
    if draw(st.integers(0, 4)) == 0:
        return draw(JSON)
    preset = draw(st.sampled_from(["undercomplete", "vae", "ksparse", "conv", "denoising", "nope", ""]))
    shape = draw(st.lists(st.integers(-3, 10**12), max_size=4) | JSON)
    opts = draw(st.dictionaries(st.sampled_from(OPTION_NAMES), JSON | st.integers(-5, 10**15), max_size=3))
    return {"preset": preset, "input_shape": shape, "options": opts}


def test_fuzz_model_json(tmp_path):
    save_model(create("undercomplete", (1, 8, 8), code_size=4, hidden=[16]), tmp_path)
    weights = (tmp_path / "model.safetensors").read_bytes()

    @settings(FUZZ, max_examples=N_CONFIGS)
    @given(config=configs())
    def check(config):
        (tmp_path / "model.json").write_text(json.dumps(config))
        try:
            load_model(tmp_path)
        except ValueError as e:
            assert str(e)
        assert (tmp_path / "model.safetensors").read_bytes() == weights

    check()


def test_model_json_found_by_the_fuzzer(tmp_path):
    """Sizes torch cannot even describe on the meta device (a storage-size overflow)."""
    save_model(create("linear", (4,), code_size=2), tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"preset": "ksparse", "input_shape": [1556, 690066]}))
    with pytest.raises(ValueError, match="cannot be built"):
        load_model(tmp_path)


def test_model_json_nested_deeply_is_one_error(tmp_path):
    save_model(create("linear", (4,), code_size=2), tmp_path)
    (tmp_path / "model.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="corrupted checkpoint config"):
        load_model(tmp_path)


# integers: small ones and huge ones; the legitimately large but slow middle (a 10^8-unit code) is left out
VALUES = st.one_of(
    st.integers(-5, 64).map(str),
    st.sampled_from([2**31, 2**40, 2**63, 2**70, -(2**63), 10**20, 1_000_001]).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", "-", "nan", "inf", "1e400", "0", "-1", "2,3", "a,b", "masking:2", "cuda:99", "tpu",
                     "gaussian", "kl", "sgd", "bf16", "relu", "skip"]),
    st.text(max_size=8),
)
OPTIONS = ["--code-size", "--hidden", "--channels", "--activation", "--likelihood", "--sigma", "--penalty", "--lam",
           "--rho", "--rho-momentum", "--k", "--alpha", "--k-start", "--anneal-steps", "--aux-k", "--aux-coef",
           "--dead-after", "--noise", "--level", "--method", "--projections", "--beta", "--free-bits",
           "--kl-warmup-epochs", "--iw-samples", "--epochs", "--batch-size", "--lr", "--optimizer", "--weight-decay",
           "--momentum", "--schedule", "--warmup-epochs", "--val-fraction", "--patience", "--min-delta",
           "--grad-clip", "--seed", "--device", "--precision", "--checkpoint-every", "--checkpoint-steps",
           "--checkpoint-minutes", "--nan-policy", "--max-time", "--threads", "--preset", "--data"]


def test_fuzz_cli_options(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((30, 6), dtype=np.float32))
    runner = CliRunner()
    seen = {"ok": 0, "refused": 0}

    @settings(FUZZ, max_examples=N_OPTIONS)
    @given(option=st.sampled_from(OPTIONS), value=VALUES, preset=st.sampled_from(["undercomplete", "vae", "ksparse"]))
    def check(option, value, preset):
        base = {"--data": str(tmp_path / "x.npy"), "--preset": preset, "--epochs": "1", "--max-time": "0.2",
                "--iw-samples": "5"}
        base[option] = value
        args = ["train", "--quiet", "--overwrite", "--out", str(tmp_path / "run"), "--code-size", "2"] * (
            option != "--code-size") + [a for kv in base.items() for a in kv]
        if option == "--code-size":
            args = ["train", "--quiet", "--overwrite", "--out", str(tmp_path / "run")] + [a for kv in base.items()
                                                                                          for a in kv]
        res = runner.invoke(app, args)
        assert res.exit_code in (0, 2), (args, res.output, res.exception)
        assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), (args, res.exception)
        assert "Traceback" not in res.output, (args, res.output)
        if res.exit_code == 2:  # exactly one error line, and it is the last thing said
            lines = [line for line in res.stderr.splitlines() if line.strip()]
            errors = [line for line in lines if line.lower().startswith("error:")]
            assert len(errors) == 1 and lines[-1] == errors[0], (args, res.stderr)
            seen["refused"] += 1
        else:
            seen["ok"] += 1

    check()
    assert seen["ok"] > 5 and seen["refused"] > 5, seen


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from aekit import fit

    run = tmp_path_factory.mktemp("fuzz-run")
    x = np.random.default_rng(0).random((64, 6), dtype=np.float32)
    fit(create("undercomplete", (6,), code_size=2, hidden=[8]), x, epochs=2, run_dir=run, progress=False)
    return run, x


def _paths(obj, prefix=()):
    """Every (path, value) inside a JSON object, the root excluded."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        yield (*prefix, k), v
        yield from _paths(v, (*prefix, k))


def test_fuzz_trainer_metadata(trained_run, tmp_path):
    """A crafted trainer header (any field replaced by any JSON value) is resumed or refused with one ValueError
    (issue 37.4: a torch TypeError traceback, a bare int() error, junk accepted until `aekit report` failed)."""
    import shutil

    from safetensors import safe_open
    from safetensors.torch import save_file

    from aekit import fit

    run, x = trained_run
    with safe_open(run / "trainer.safetensors", "pt") as f:
        blob, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    meta = json.loads(blob["json"])
    paths = [p for p, _ in _paths(meta)]
    seen = {"ok": 0, "refused": 0}

    @settings(FUZZ, max_examples=60)
    @given(path=st.sampled_from(paths), value=JSON | st.integers(-(2**70), 2**70) | st.floats())
    def check(path, value):
        work = tmp_path / "run"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(run, work)
        damaged = json.loads(blob["json"])
        parent = damaged
        for k in path[:-1]:
            parent = parent[k]
        parent[path[-1]] = value
        save_file(tensors, work / "trainer.safetensors", metadata={**blob, "json": json.dumps(damaged)})
        try:
            fit(create("undercomplete", (6,), code_size=2, hidden=[8]), x, epochs=2, run_dir=work, resume=True,
                progress=False)
            seen["ok"] += 1
        except ValueError as e:
            assert str(e) and "\n" not in str(e), (path, value, e)
            seen["refused"] += 1

    check()
    assert seen["refused"] > 20, seen


def test_fuzz_safetensors_content(trained_run, tmp_path):
    """Any bytes of a model's weights replaced (NaN, inf, anything): loaded with every tensor finite, or refused
    with one ValueError (issue 37.3: NaN in a buffer loaded silently)."""
    import torch

    run, _ = trained_run
    good = (run / "model.safetensors").read_bytes()
    (tmp_path / "model.json").write_text((run / "model.json").read_text())
    header = 8 + int.from_bytes(good[:8], "little")
    seen = {"ok": 0, "refused": 0}

    @settings(FUZZ, max_examples=N_FILES)
    @given(at=st.integers(0, len(good) - 4), what=st.sampled_from([b"\x00\x00\xc0\x7f", b"\x00\x00\x80\x7f",
                                                                    b"\x00\x00\x80\xff", b"\xff\xff\xff\xff"])
           | st.binary(min_size=1, max_size=8))
    def check(at, what):
        raw = bytearray(good)
        at = at if at >= header else header + at % (len(good) - header - 4)  # mostly inside the data
        raw[at : at + len(what)] = what
        (tmp_path / "model.safetensors").write_bytes(bytes(raw[: len(good)]))
        try:
            model = load_model(tmp_path)
        except ValueError as e:
            assert str(e)
            seen["refused"] += 1
            return
        assert all(bool(torch.isfinite(v).all()) for v in model.state_dict().values() if v.is_floating_point())
        seen["ok"] += 1

    check()
    assert seen["ok"] > 5 and seen["refused"] > 5, seen
