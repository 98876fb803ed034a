"""Exported encoders and scorers (ONNX, torch.export) give the model's own codes and scores."""

import json
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from aekit import PRESETS, create, load_model
from aekit.cli._app import app
from aekit.evaluation.deploy import Deployable, export_model, run_exported
from aekit.evaluation.metrics import encode, reconstruct
from aekit.evaluation.series import window_errors

SEQUENCE = {"tcn", "lstm", "transformer"}  # bodies of windows (T, C)


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _model(name):
    torch.manual_seed(0)
    model = create(name, (16, 3) if name in SEQUENCE else (1, 8, 8)).eval()
    x = torch.randn(64, *model.input_shape)
    with torch.no_grad():  # a step of training statistics (e.g. BatchTopK's threshold), then evaluation
        model.train()(x.flatten(1))
    return model.eval(), np.random.default_rng(1).standard_normal((9, *model.input_shape)).astype(np.float32)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("suffix", [".pt2", ".onnx"])
def test_every_preset_exports_an_encoder_that_gives_the_same_codes(name, suffix, tmp_path):
    model, x = _model(name)
    diff = export_model(model, tmp_path / f"e{suffix}", example=x)
    assert diff < 1e-4
    y = np.random.default_rng(2).standard_normal((3, *_rows(model))).astype(np.float32)  # another batch size
    np.testing.assert_allclose(run_exported(tmp_path / f"e{suffix}", y), encode(model, y.reshape(3, -1)),
                               rtol=1e-4, atol=1e-4)


def _rows(model):
    """What an exported graph reads: windows (T, C) as they are, anything else as flat rows (D,)."""
    return model.input_shape if len(model.input_shape) == 2 else (model.input_size,)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_an_image_encoder_reads_the_flat_rows_the_rest_of_aekit_takes(tmp_path):
    """Issue 37.25: the exported digits encoder expected (batch, 1, 8, 8) while aekit.load("digits") and aekit
    encode give (N, 64)."""
    from aekit import load

    rd = tmp_path / "run"
    assert run("train", "--code-size", 8, "--hidden", 16, "--epochs", 1, "--quiet", "--out", rd).exit_code == 0
    res = run("export", rd, "--out", tmp_path / "enc.onnx")
    assert res.exit_code == 0 and "x (batch, 64) in the data's units" in res.stdout, res.output
    x = load("digits").test.x[:20]
    np.save(tmp_path / "x.npy", x)
    assert run("encode", rd, tmp_path / "x.npy", "--out", tmp_path / "h.npy").exit_code == 0
    np.testing.assert_allclose(run_exported(tmp_path / "enc.onnx", x), np.load(tmp_path / "h.npy"), atol=1e-5)
    with pytest.raises(Exception):  # the image layout is not what it reads
        run_exported(tmp_path / "enc.onnx", x.reshape(20, 1, 8, 8))


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
@pytest.mark.parametrize("suffix", [".pt2", ".onnx"])
@pytest.mark.parametrize("name", ["vae", "conv", "sae-batchtopk"])
def test_a_scorer_gives_the_squared_reconstruction_error(name, suffix, tmp_path):
    model, x = _model(name)
    center, scale = np.linspace(-1, 1, model.input_size), np.linspace(0.5, 2, model.input_size)
    export_model(model, tmp_path / f"s{suffix}", part="scorer", center=center, scale=scale, example=x)
    z = ((x.reshape(len(x), -1) - center) / scale).astype(np.float32)
    np.testing.assert_allclose(run_exported(tmp_path / f"s{suffix}", x.reshape(len(x), *_rows(model))),
                               ((z - reconstruct(model, z)) ** 2).sum(1),
                               rtol=1e-4)


def test_the_cli_exports_what_encode_and_score_answer_on_a_standardised_table(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 5)) @ rng.standard_normal((5, 6)) * [1e-2, 1, 10, 1e2, 1e3, 1e4] + 7
    np.save(tmp_path / "t.npy", x.astype(np.float32))
    rd = tmp_path / "run"
    assert run("train", "--data", tmp_path / "t.npy", "--likelihood", "gaussian", "--code-size", 3, "--epochs", 5,
               "--standardize", "--out", rd, "--quiet").exit_code == 0
    q = x[:20].astype(np.float32)
    np.save(tmp_path / "q.npy", q)
    res = run("export", rd, tmp_path / "enc.onnx", "--check-data", tmp_path / "q.npy")
    assert res.exit_code == 0, res.output
    assert "x (batch, 6) in the data's units (standardised inside, as in training) → codes (batch, 3)" in res.stdout
    assert run("encode", rd, tmp_path / "q.npy", "--out", tmp_path / "h.npy").exit_code == 0
    np.testing.assert_allclose(run_exported(tmp_path / "enc.onnx", q), np.load(tmp_path / "h.npy"),
                               rtol=1e-4, atol=1e-5)
    res = run("export", rd, "--out", tmp_path / "new" / "folder" / "score.pt2", "--part", "scorer")
    assert res.exit_code == 0 and "→ scores (batch,)" in res.stdout, res.output
    assert run("score", rd, tmp_path / "q.npy", "--out", tmp_path / "s.csv").exit_code == 0
    expect = np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1)[:, 1]
    np.testing.assert_allclose(run_exported(tmp_path / "new" / "folder" / "score.pt2", q), expect, rtol=1e-4)


def test_a_series_scorer_reads_raw_windows_and_answers_in_window_error_units(tmp_path):
    t = np.arange(400)
    x = np.c_[np.sin(2 * np.pi * t / 20), 50 + 10 * np.cos(2 * np.pi * t / 20)].astype(np.float32)
    np.save(tmp_path / "s.npy", x)
    rd = tmp_path / "run"
    assert run("train", "--data", tmp_path / "s.npy", "--window", 20, "--likelihood", "gaussian", "--code-size", 4,
               "--epochs", 3, "--out", rd, "--quiet").exit_code == 0
    res = run("export", rd, tmp_path / "w.pt2", "--part", "scorer", "--check-data", tmp_path / "s.npy")
    assert res.exit_code == 0 and "x (batch, 20, 2)" in res.stdout, res.output  # checked on the series' windows
    meta = json.loads((rd / "data.json").read_text())
    z = (x - np.float32(meta["center"])) / np.float32(meta["scale"])
    starts, expect = window_errors(load_model(rd), z, stride=20)
    windows = np.stack([x[s:s + 20] for s in starts])  # raw: the graph standardises per channel
    np.testing.assert_allclose(run_exported(tmp_path / "w.pt2", windows), expect, rtol=1e-4)


class _Branchy(torch.nn.Module):  # a body whose output depends on its input's values through Python control flow
    def forward(self, x):
        return x[:, :2] if float(x.sum()) > 0 else -x[:, :2]


def test_bad_requests_are_one_clear_line(tmp_path, monkeypatch):
    from aekit import Autoencoder, Gaussian, MLP

    model = create("linear", (4,), code_size=2)
    with pytest.raises(ValueError, match=r"name the file \.onnx \(ONNX\) or \.pt2"):
        export_model(model, tmp_path / "m.bin")
    with pytest.raises(ValueError, match="part must be one of encoder, scorer"):
        Deployable(model, "decoder")
    with pytest.raises(ValueError, match="give center and scale together"):
        Deployable(model, center=[0, 0, 0, 0])
    with pytest.raises(ValueError, match="center has 4 values and scale 3"):
        Deployable(model, center=[0] * 4, scale=[1] * 3)
    with pytest.raises(ValueError, match="center and scale have 3 values; the model reads 4 features"):
        Deployable(model, center=[0, 0, 0], scale=[1, 1, 1])
    with pytest.raises(ValueError, match="every scale must be positive"):
        Deployable(model, center=[0] * 4, scale=[1, 0, 1, 1])
    with pytest.raises(ValueError, match="windows=True needs a model of windows"):
        Deployable(model, windows=True)
    with pytest.raises(ValueError, match="example rows must have 4 values each"):
        export_model(model, tmp_path / "m.pt2", example=np.zeros((2, 3)))
    branchy = Autoencoder(_Branchy(), MLP([2, 4]), Gaussian(), input_shape=(4,), code_size=2)
    with pytest.raises(ValueError, match="cannot export this model's encoder to torch.export: "):
        export_model(branchy, tmp_path / "b.pt2")
    assert not (tmp_path / "b.pt2").exists()
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if the export extra were not installed
    with pytest.raises(ImportError, match=r"needs the onnx and onnxscript packages .*pip install 'aekit\[export\]'"):
        export_model(model, tmp_path / "m.onnx")


def test_the_cli_names_its_flags_and_the_missing_extra(tmp_path, monkeypatch):
    rd = tmp_path / "run"
    assert run("train", "--code-size", 4, "--hidden", "16", "--epochs", 1, "--out", rd, "--quiet").exit_code == 0
    for args, message in [
        (("export", rd, tmp_path / "m.onnx", "--part", "decoder"), "--part must be 'encoder' or 'scorer', got 'decoder'"),
        (("export", rd, "--out", tmp_path / "m.zip"), "m.zip: name the file .onnx or .pt2"),
        (("export", rd, "--out", tmp_path), "is a directory; name a .onnx or .pt2 file"),
        (("export", rd), "name the file to write once: aekit export RUN --out FILE.onnx"),
        (("export", rd, tmp_path / "a.onnx", "--out", tmp_path / "b.onnx"), "name the file to write once"),
    ]:
        res = run(*args)
        assert res.exit_code == 2 and message in res.output, res.output
    monkeypatch.setitem(sys.modules, "onnx", None)
    res = run("export", rd, tmp_path / "m.onnx")
    assert res.exit_code == 2 and "pip install 'aekit[export]'" in res.output and "Traceback" not in res.output
