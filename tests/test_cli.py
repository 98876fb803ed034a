"""End-to-end: the `aekit` command on digits and on the shared MNIST files, and its errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from aekit import load_model
from aekit.cli._app import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def one_line_error(res, pattern):
    assert res.exit_code == 2, res.output
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) >= 1 and lines[-1].startswith(("error:", "Error:")), res.stderr
    assert "Traceback" not in res.output
    import re

    assert re.search(pattern, lines[-1]), lines[-1]


def test_default_train_is_the_quick_start(tmp_path, monkeypatch):
    """`aekit train` with no arguments: undercomplete on digits, test error next to PCA's (the README's quick start
    runs it in a process of its own)."""
    monkeypatch.chdir(tmp_path)
    res = run("train", "--quiet")
    assert res.exit_code == 0, res.output
    assert "PCA-16" in res.stdout and "aekit / PCA" in res.stdout
    (run_dir,) = (tmp_path / "runs").iterdir()
    ev = json.loads((run_dir / "evaluation.json").read_text())
    assert ev["test_squared_error"] < ev["pca_squared_error"]


def test_train_evaluate_encode_reconstruct_on_digits(tmp_path, digits):
    rd = tmp_path / "run"
    res = run("train", "--preset", "undercomplete", "--code-size", 5, "--hidden", "32", "--epochs", 3,
              "--out", rd, "--quiet", "--schedule", "cosine", "--optimizer", "adamw", "--patience", 5,
              "--grad-clip", 1.0, "--checkpoint-every", 1)
    assert res.exit_code == 0, res.output
    assert "PCA-5" in res.stdout
    for f in ("model.safetensors", "model.json", "train.json", "metrics.jsonl", "trainer.safetensors", "evaluation.json"):
        assert (rd / f).is_file(), f
    cfg = json.loads((rd / "train.json").read_text())["train"]
    assert cfg["schedule"] == "cosine" and cfg["optimizer"] == "adamw" and cfg["patience"] == 5

    res = run("evaluate", rd)
    assert res.exit_code == 0 and "PCA-5" in res.stdout

    np.save(tmp_path / "x.npy", digits.test.x[:17])
    res = run("encode", rd, tmp_path / "x.npy", "--out", tmp_path / "codes.npy")
    assert res.exit_code == 0, res.output
    codes = np.load(tmp_path / "codes.npy")
    model = load_model(rd)
    import torch

    np.testing.assert_allclose(codes, model.encode(torch.from_numpy(digits.test.x[:17])).detach().numpy(), rtol=1e-5)
    res = run("reconstruct", rd, tmp_path / "x.npy", "--out", tmp_path / "recon.npy")
    assert res.exit_code == 0 and np.load(tmp_path / "recon.npy").shape == (17, 64)

    # refuses to overwrite a run, and resume finishes it identically
    one_line_error(run("train", "--out", rd, "--quiet"), "already holds a run")
    res = run("train", "--resume", rd, "--quiet")
    assert res.exit_code == 0, res.output


def test_cli_resume_after_interruption(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    common = ["--code-size", 4, "--hidden", "16", "--quiet", "--schedule", "cosine", "--checkpoint-every", 1]
    assert run("train", "--epochs", 4, "--out", full, *common).exit_code == 0
    # simulate a run killed after epoch 2: same options, its checkpoint from epoch 2
    assert run("train", "--epochs", 4, "--max-time", 1e-9, "--out", part, *common).exit_code == 0
    assert run("train", "--resume", part, "--quiet").exit_code == 0
    import torch

    a, b = load_model(full).state_dict(), load_model(part).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_on_shared_mnist(tmp_path, mnist_dir):
    rd = tmp_path / "m"
    res = run("train", "--data", "mnist", "--data-dir", mnist_dir, "--code-size", 8, "--hidden", "64",
              "--epochs", 1, "--batch-size", 256, "--out", rd, "--quiet", "--val-fraction", 0)
    assert res.exit_code == 0, res.output
    assert "10000 samples of mnist" in res.stdout and "PCA-8" in res.stdout
    res = run("evaluate", rd, "--data", mnist_dir)
    assert res.exit_code == 0, res.output


def test_conv_and_linear_presets_from_cli(tmp_path):
    for preset in ("conv", "linear"):
        res = run("train", "--preset", preset, "--epochs", 1, "--code-size", 4, "--out", tmp_path / preset, "--quiet")
        assert res.exit_code == 0, res.output


def test_overcomplete_warns(tmp_path):
    res = run("train", "--preset", "overcomplete", "--epochs", 1, "--out", tmp_path / "o", "--quiet")
    assert res.exit_code == 0 and "warning:" in res.stderr and "identity copy" in res.stderr


def test_presets_lists_registry():
    res = run("presets")
    assert res.exit_code == 0
    from aekit import PRESETS

    for name in PRESETS:
        assert name in res.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    rd = tmp_path_factory.mktemp("trained")
    assert run("train", "--epochs", 1, "--out", rd, "--quiet", "--overwrite").exit_code == 0
    return rd


def test_bad_input_errors(tmp_path, trained):
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((3, 64), np.nan))
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((3, 10)))
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 64)))
    text = tmp_path / "text.csv"
    text.write_text("1,2\nhello,3\n")
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in ("model.json", "data.json"):
        (broken / f).write_text((trained / f).read_text())
    (broken / "model.safetensors").write_bytes(b"\x00" * 16)
    badidx = tmp_path / "idx"
    badidx.mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (badidx / f"{stem}.gz").write_bytes(b"this is not gzip")

    cases = [
        (["train", "--data", nan], "NaN or inf"),
        (["encode", trained, nan], "NaN or inf"),
        (["encode", trained, wrong], "10 features per sample but the model expects 64"),
        (["encode", trained, empty], "empty"),
        (["train", "--data", text], "non-numeric value 'hello' on line 2"),
        (["train", "--data", tmp_path / "missing.npy"], "file not found"),
        (["evaluate", tmp_path / "no-run"], "checkpoint not found"),
        (["train", "--data", "mnist", "--data-dir", tmp_path / "no-dir"], "data directory not found"),
        (["train", "--preset", "nonexistent"], "unknown preset 'nonexistent'"),
        (["train", "--no-such-option"], "no such option --no-such-option"),
        (["train", "--optimizer", "rmsprop"], "optimizer must be 'adam', 'adamw' or 'sgd', got 'rmsprop'"),
        (["train", "--hidden", "a,b"], "--hidden must be comma-separated integers"),
        (["encode", broken, wrong], "corrupted checkpoint"),
        (["train", "--data", badidx], "corrupted"),
        (["train", "--preset", "linear", "--activation", "relu"], "unknown option.*activation.*linear"),
    ]
    for args, pattern in cases:
        one_line_error(run(*args), pattern)


def test_resume_rejects_options_it_would_ignore(trained):
    one_line_error(run("train", "--resume", trained, "--lr", 0.5), "drop --lr")  # (--epochs: more trains on)


@pytest.mark.parametrize("args, shown", [
    (["--preset", "sparse", "--penalty", "kl", "--rho", "0.1", "--lam", "0.5"], "never active"),
    (["--preset", "ksparse", "--k", "10", "--alpha", "2", "--aux-k", "8", "--dead-after", "500"], "mean active code units"),
    (["--preset", "denoising", "--noise", "masking:0.3+gaussian:0.1"], "PSNR denoised"),
    (["--preset", "contractive", "--lam", "0.2", "--method", "stochastic", "--projections", "2"], "aekit / PCA"),
])
def test_regularised_presets_from_cli(tmp_path, args, shown):
    rd = tmp_path / "r"
    res = run("train", *args, "--code-size", 40, "--epochs", 2, "--out", rd, "--quiet")
    assert res.exit_code == 0, res.output
    assert shown in res.stdout
    opts = json.loads((rd / "model.json").read_text())["options"]
    for flag, value in zip(args[2::2], args[3::2]):
        stored = opts[flag[2:].replace("-", "_")]
        assert stored == type(stored)(value), (flag, stored)
    assert run("evaluate", rd).exit_code == 0


def test_regularised_preset_errors_from_cli():
    one_line_error(run("train", "--preset", "sparse", "--rho", "0.1"), "--rho 0.1 has no effect here")
    one_line_error(run("train", "--preset", "ksparse", "--k", "0"), "k must be an integer >= 1")
    one_line_error(run("train", "--preset", "denoising", "--level", "1.5"), r"fraction must be in \[0, 1\)")
    one_line_error(run("train", "--preset", "contractive", "--lam", "-1"), "lam must be a finite number >= 0")
    one_line_error(run("train", "--preset", "sparse", "--penalty", "kl", "--activation", "relu"), r"code in \(0, 1\)")
    # issue 17.3: accepted and silently ignored before
    one_line_error(run("train", "--sigma", "0.5"), "--sigma 0.5 has no effect here")
    one_line_error(run("train", "--optimizer", "adam", "--momentum", "0.5"), "--momentum 0.5 has no effect here")
    one_line_error(run("train", "--min-delta", "0.1"), "--min-delta 0.1 has no effect here")
    one_line_error(run("train", "--preset", "contractive", "--projections", "3"), "--projections 3 has no effect here")
    one_line_error(run("train", "--preset", "ksparse", "--dead-after", "9"), "--dead-after 9 has no effect here")


def test_vae_from_cli_reports_elbo_and_nll(tmp_path, mnist_dir):
    rd = tmp_path / "vae"
    res = run("train", "--preset", "vae", "--data", "mnist", "--data-dir", mnist_dir, "--binarize", "--code-size", 5,
              "--hidden", "32", "--beta", "0.5", "--free-bits", "0.1", "--kl-warmup-epochs", "1", "--epochs", 1,
              "--batch-size", 500, "--iw-samples", 20, "--out", rd, "--quiet")
    assert res.exit_code == 0, res.output
    assert "binarised" in res.stdout and "test ELBO" in res.stdout and "k=20 importance samples" in res.stdout
    opts = json.loads((rd / "model.json").read_text())["options"]
    assert opts["beta"] == 0.5 and opts["free_bits"] == 0.1
    train_cfg = json.loads((rd / "train.json").read_text())["train"]
    assert train_cfg["kl_warmup_epochs"] == 1.0
    ev = json.loads((rd / "evaluation.json").read_text())
    assert ev["nll"] <= -ev["elbo"] + 1.0 and ev["iw_samples"] == 20  # the k-sample bound is the tighter one
    res = run("evaluate", rd, "--iw-samples", 10)
    assert res.exit_code == 0 and "k=10 importance samples" in res.stdout and "binarised" in res.stdout


def test_vae_on_grey_levels_warns_and_still_reports(tmp_path):
    res = run("train", "--preset", "vae", "--code-size", 3, "--hidden", "16", "--epochs", 1, "--iw-samples", 5,
              "--out", tmp_path / "g", "--quiet")
    assert res.exit_code == 0, res.output
    assert "not binary" in res.stderr and "--binarize" in res.stderr and "test NLL" in res.stdout


def test_vae_errors_from_cli():
    one_line_error(run("train", "--preset", "vae", "--beta", "-1"), "beta must be a finite number >= 0, got -1.0")
    one_line_error(run("train", "--preset", "undercomplete", "--beta", "1"), "unknown option.*beta")
    one_line_error(run("train", "--kl-warmup-epochs", "2", "--epochs", 1), "needs a model with a KL term")


# ---------------------------------------------------------------------------- no run lost (issue 10)
TRAIN = ["--data", "x.npy", "--code-size", "4", "--hidden", "16", "--epochs", "8", "--batch-size", "8",
         "--checkpoint-every", "3", "--quiet"]


def _aekit(*args, cwd, timeout=300):
    return subprocess.run([sys.executable, "-m", "aekit.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def _same_weights(a, b):
    import torch

    wa, wb = load_model(a).state_dict(), load_model(b).state_dict()
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture
def small_data(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((500, 16), dtype=np.float32))
    return tmp_path


def test_sigterm_saves_exits_143_and_resume_is_bit_identical(small_data):
    import signal
    import time

    cwd = small_data
    # the reference and the resume in this process; the run that takes the signal in a process of its own
    assert run("train", *TRAIN, "--out", cwd / "full", "--data", cwd / "x.npy").exit_code == 0
    p = subprocess.Popen([sys.executable, "-m", "aekit.cli", "train", *TRAIN, "--out", "part"], cwd=cwd,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not (cwd / "part" / "metrics.jsonl").exists() and p.poll() is None:  # inside epoch 2
            time.sleep(0.005)
        p.send_signal(signal.SIGTERM)
        _, stderr = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == 143, stderr
    assert "stopped by SIGTERM" in stderr and "continue with `aekit train --resume part`" in stderr
    assert not (cwd / "part" / "model.safetensors").exists()
    res = run("train", "--resume", cwd / "part", "--quiet")
    assert res.exit_code == 0, res.output
    assert _same_weights(cwd / "full", cwd / "part")


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_it_again(small_data):
    cwd = small_data
    assert run("train", *TRAIN, "--out", cwd / "full", "--data", cwd / "x.npy").exit_code == 0
    (cwd / "part").mkdir()
    for name in ("train.json", "data.json"):  # what a run has the moment training starts
        (cwd / "part" / name).write_bytes((cwd / "full" / name).read_bytes())
    res = run("train", "--resume", cwd / "part", "--quiet")
    assert res.exit_code == 0 and "starting it again from the beginning" in res.stderr, res.output
    assert _same_weights(cwd / "full", cwd / "part")


def test_overwrite_removes_the_old_run_first(small_data):
    cwd = small_data
    rd = cwd / "r"
    assert run("train", *TRAIN, "--data", cwd / "x.npy", "--out", rd, "--report").exit_code == 0
    assert (rd / "report.html").exists()
    res = run("train", "--data", cwd / "x.npy", "--out", rd, "--overwrite", "--epochs", 1, "--quiet",
              "--code-size", 2)
    assert res.exit_code == 0, res.output
    assert not (rd / "report.html").exists() and load_model(rd).code_size == 2
    meta = json.loads((rd / "data.json").read_text())
    assert meta["data"] == str((cwd / "x.npy").resolve())  # usable from any directory (issue 20.4)


def test_crash_soak_short(tmp_path):
    """Issue 10.3 in CI: two kill -9 trials; `python benchmarks/crash_soak.py` runs twenty."""
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "crash_soak.py"
    res = subprocess.run([sys.executable, str(script), "--trials", "2", "--seed", "1"], capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0 and "| 2/2 |" in res.stdout, res.stdout + res.stderr


def test_resume_and_estimator_load_check_a_crafted_config_before_allocating(tmp_path, trained):
    """Issue 10.4 for --resume (train.json) and the estimators' load (model.json)."""
    import shutil

    rd = tmp_path / "r"
    shutil.copytree(trained, rd)
    meta = json.loads((rd / "train.json").read_text())
    meta["model"]["options"]["hidden"] = [10_000_000, 10_000_000]
    (rd / "train.json").write_text(json.dumps(meta))
    one_line_error(run("train", "--resume", rd), "more than this machine's")

    from aekit.estimators import AutoencoderTransformer

    est = AutoencoderTransformer(n_components=2, epochs=1, random_state=0).fit(np.random.default_rng(0).random((50, 6)))
    est.save(tmp_path / "est")
    cfg = json.loads((tmp_path / "est" / "model.json").read_text())
    cfg["options"]["hidden"] = [10_000_000, 10_000_000]
    (tmp_path / "est" / "model.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="more than this machine's"):
        AutoencoderTransformer.load(tmp_path / "est")
    cfg["options"]["hidden"] = [1000]
    (tmp_path / "est" / "model.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="weights do not match the config"):
        AutoencoderTransformer.load(tmp_path / "est")


def test_no_traceback_for_what_issue_20_found(tmp_path, trained):
    """Issue 20.3 and 20.6: outputs that cannot be written, odd devices and sizes, records with missing keys."""
    import os
    import shutil

    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).random((5, 64), dtype=np.float32))
    before = x.read_bytes()
    existing_dir = tmp_path / "adir"
    existing_dir.mkdir()
    bad_data = tmp_path / "bad_data"
    shutil.copytree(trained, bad_data)
    (bad_data / "data.json").write_text("{}")
    cases = [
        (["encode", trained, x, "--out", "/proc/o.npy"], "o.npy"),
        (["encode", trained, x, "--out", existing_dir], "is a directory"),
        (["encode", trained, x, "--out", x], "is the input file"),
        (["encode", trained, x, "--device", "tpu"], "device must be"),
        (["train", "--device", "tpu", "--out", tmp_path / "never"], "device must be"),
        (["train", "--preset", "overcomplete", "--code-size", "100000000000000000000"], "cannot be built|needs .* GiB"),
        (["train", "--seed", str(2**70)], "seed must be an integer"),
        (["evaluate", bad_data], "corrupted file .*data.json"),
        (["evaluate", trained, "--iw-samples", "0"], "--iw-samples must be an integer"),
        (["compare", "--out", "/proc/cmp", "--epochs", "1"], "cmp|Permission|denied|No such"),
    ]
    for args, pattern in cases:
        one_line_error(run(*args), pattern)
    assert x.read_bytes() == before  # the input was never overwritten
    assert not (tmp_path / "never").exists()  # a refused run leaves no directory behind
    if os.geteuid() != 0:  # root writes through read-only modes
        ro = tmp_path / "ro"
        shutil.copytree(trained, ro)
        ro.chmod(0o500)
        one_line_error(run("report", ro), "Permission denied|cannot")
        ro.chmod(0o700)


def test_encode_writes_exactly_the_name_given(tmp_path, trained):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 64), np.float32))
    res = run("encode", trained, x, "--out", tmp_path / "codes_noext")
    assert res.exit_code == 0 and "codes_noext" in res.stdout
    assert np.load(tmp_path / "codes_noext").shape == (2, 16) and not (tmp_path / "codes_noext.npy").exists()


def test_compare_does_not_replace_earlier_results(tmp_path):
    args = ["compare", "--presets", "linear", "--code-sizes", "2", "--epochs", "1", "--out", tmp_path / "c", "--quiet"]
    assert run(*args).exit_code == 0
    one_line_error(run(*args), "already holds a comparison")
    assert run(*args, "--overwrite").exit_code == 0


def test_a_diverged_model_is_never_reported_as_saved(tmp_path):
    """Issue 20.1: --lr 1e38 exited 0 with 'saved to' and a NaN test loss."""
    res = run("train", "--likelihood", "gaussian", "--optimizer", "sgd", "--momentum", "0", "--lr", "1e38",
              "--batch-size", "100000", "--epochs", "1", "--val-fraction", "0", "--out", tmp_path / "r", "--quiet")
    one_line_error(res, "not usable|non-finite|became")
    assert "saved to" not in res.stdout


def test_trainer_flags_are_generated_from_the_one_declaration():
    """Issue 38: each TrainConfig option that declares a flag is an `aekit train` flag with that help, in its panel;
    the README lists them; --resume takes exactly the options declared resumable."""
    import dataclasses
    from pathlib import Path

    from aekit.cli.train import RESUME_OPTIONS
    from aekit.training.config import TrainConfig

    declared = {f.name: f.metadata for f in dataclasses.fields(TrainConfig)}
    help_text = " ".join(run("train", "--help").stdout.split())
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    for name, meta in declared.items():
        flag = "--" + name.replace("_", "-")
        if meta["flag"] is None:
            continue
        assert flag in help_text and " ".join(meta["flag"].split())[:30] in help_text, flag
        assert flag in readme, flag
    assert set(RESUME_OPTIONS) == {n for n, m in declared.items() if m["resume"] and m["flag"]}
    assert {"epochs", "device", "threads", "max_time"} <= set(RESUME_OPTIONS) and "lr" not in RESUME_OPTIONS
    res = run("train", "--decay-all", "--weight-decay", "0.1", "--epochs", "1", "--code-size", "4", "--print-config")
    assert res.exit_code == 0 and "decay_all = true" in res.stdout, res.output
