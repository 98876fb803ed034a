"""A new user's first hour (issue 21): what the CLI says and records, end to end."""

import json

import pytest

import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from aekit.cli._app import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_early_stopping_says_why_records_the_epoch_and_resuming_is_a_no_op(tmp_path):
    rd = tmp_path / "run"
    # min_delta so large that no epoch after the first counts as better: stops after epoch 3 with patience 2
    res = run("train", "--code-size", 4, "--hidden", "16", "--epochs", 20, "--patience", 2, "--min-delta", 1e9,
              "--out", rd, "--quiet")
    assert res.exit_code == 0, res.output
    assert "stopped early after epoch 3 of 20" in res.stdout
    assert "for 2 epochs (--patience); kept the weights of epoch 1" in res.stdout
    outcome = json.loads((rd / "train.json").read_text())["outcome"]
    assert outcome == {"last_epoch": 3, "stopped_early": True, "best_epoch": 1}
    model, metrics = load_file(rd / "model.safetensors"), (rd / "metrics.jsonl").read_text()
    assert len(metrics.splitlines()) == 3

    res = run("train", "--resume", rd, "--quiet")
    assert res.exit_code == 0, res.output
    assert (rd / "metrics.jsonl").read_text() == metrics  # no epoch trained on
    kept = load_file(rd / "model.safetensors")  # the kept weights, not overwritten by others
    assert kept.keys() == model.keys() and all(torch.equal(kept[k], model[k]) for k in kept)
    assert json.loads((rd / "train.json").read_text())["outcome"] == outcome


def test_a_run_without_early_stopping_records_its_last_epoch(tmp_path):
    rd = tmp_path / "run"
    assert run("train", "--code-size", 4, "--hidden", "16", "--epochs", 2, "--out", rd, "--quiet").exit_code == 0
    assert json.loads((rd / "train.json").read_text())["outcome"] == {"last_epoch": 2, "stopped_early": False,
                                                                      "best_epoch": 2}


def test_help_and_import_do_not_load_torch_or_scikit_learn():
    """``import aekit`` and ``aekit --help`` / ``train --help`` answer without the heavy imports (3 s → 0.4 s)."""
    import subprocess
    import sys

    code = ("import sys; from typer.testing import CliRunner; from aekit.cli import app; import aekit\n"
            "for args in (['--help'], ['train', '--help'], ['--version']):\n"
            "    assert CliRunner().invoke(app, args).exit_code == 0, args\n"
            "heavy = sorted(m for m in ('torch', 'sklearn', 'scipy', 'matplotlib', 'pandas') if m in sys.modules)\n"
            "assert not heavy, heavy\n"
            "aekit.create  # and the names still load on use\n"
            "assert 'torch' in sys.modules\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_version_and_shell_completion():
    from aekit import __version__

    res = run("--version")
    assert res.exit_code == 0 and res.stdout.strip() == f"aekit {__version__}"
    res = run("--help")
    assert "--install-completion" in res.stdout and "--show-completion" in res.stdout


def test_progress_in_a_log_file_is_a_line_per_epoch(tmp_path):
    res = run("train", "--code-size", 4, "--hidden", "16", "--epochs", 3, "--out", tmp_path / "run")
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.stderr.splitlines() if " done: step " in ln]  # stderr is not a terminal here
    assert [ln.split(" done")[0] for ln in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all(", loss " in ln for ln in lines)


def test_train_help_groups_its_options():
    res = run("train", "--help")
    heads = [ln for ln in res.stdout.splitlines() if ln and not ln.startswith(" ") and ln.endswith(":")]
    assert heads[:6] == ["Model:", "Data:", "Training:", "Hardware and checkpoints:", "Output:", "Other options:"]
    section = res.stdout.split("Data:")[1].split("Training:")[0]
    assert "--data-dir" in section and "--epochs" not in section


@pytest.mark.parametrize("args, message", [
    (["--preset", "sparse", "--penalty", "kl", "--rho", "2"], "error: --rho must be in (0, 1), got 2.0"),
    (["--preset", "sparse", "--rho", "0.1"], "error: option --rho 0.1 has no effect here: --rho applies to "
                                             "--penalty kl only"),
    (["--code-size", "0"], "error: --code-size must be an integer >= 1, got 0"),
    (["--likelihood", "gauss"], "error: unknown --likelihood 'gauss'"),
    (["--patience", "2", "--val-fraction", "0"], "error: --patience needs --val-fraction > 0"),
])
def test_cli_errors_name_flags_not_python_keywords(tmp_path, args, message):
    res = run("train", *args, "--out", tmp_path / "run")
    assert res.exit_code == 2 and res.stderr.startswith(message), res.stderr


def test_evaluate_reuses_the_runs_nll_and_the_estimate_shows_progress(tmp_path):
    rd = tmp_path / "vae"
    res = run("train", "--preset", "vae", "--code-size", 3, "--hidden", "16", "--epochs", 1, "--iw-samples", 7,
              "--out", rd)
    assert res.exit_code == 0, res.output
    assert "test NLL, k=7 importance samples done" in res.stderr  # its own progress, a line in a log
    ev = json.loads((rd / "evaluation.json").read_text())
    res = run("evaluate", rd, "--iw-samples", 7)
    assert res.exit_code == 0 and "as computed after training" in res.stdout
    assert "test NLL, k=7" not in res.stderr  # not estimated again
    assert f"{ev['nll']:.2f}" in res.stdout
    res = run("evaluate", rd, "--iw-samples", 5)  # another k: estimated
    assert res.exit_code == 0 and "as computed after training" not in res.stdout and "k=5" in res.stderr


def test_channels_last_images_are_refused_with_the_fix_not_misread(tmp_path):
    import numpy as np

    from aekit import read_array

    x = np.random.default_rng(0).random((20, 16, 16, 3), dtype=np.float32)
    np.save(tmp_path / "rgb.npy", x)
    res = run("train", "--data", tmp_path / "rgb.npy", "--out", tmp_path / "run")
    assert res.exit_code == 2 and "channels-last images (N, H, W, C)?" in res.stderr
    assert "np.moveaxis(x, -1, 1)" in res.stderr
    flat, _, shape = read_array(tmp_path / "rgb.npy", layout="nhwc")
    assert shape == (3, 16, 16)
    np.testing.assert_array_equal(flat.reshape(20, 3, 16, 16)[:, 2], x[..., 2])  # channel 2 is the blue plane
    assert read_array(tmp_path / "rgb.npy", layout="nchw")[2] == (16, 16, 3)  # as asked, when it is meant
    np.save(tmp_path / "chw.npy", np.moveaxis(x, -1, 1))
    assert read_array(tmp_path / "chw.npy")[2] == (3, 16, 16)  # channels first: read as it is


def test_score_a_run_on_rows_from_the_command_line(tmp_path):
    import csv

    import numpy as np

    from aekit import load, load_model
    from aekit.evaluation.metrics import reconstruct

    rd = tmp_path / "run"
    assert run("train", "--code-size", 8, "--hidden", "32", "--epochs", 5, "--out", rd, "--quiet").exit_code == 0
    d = load("digits")
    rng = np.random.default_rng(0)
    x = np.concatenate([d.test.x[:40], rng.random((5, 64), dtype=np.float32)])  # 5 rows of noise: anomalies
    y = np.r_[np.zeros(40), np.ones(5)].astype(np.int64)
    np.savez(tmp_path / "rows.npz", x=x, y=y)
    res = run("score", rd, tmp_path / "rows.npz", "--out", tmp_path / "scores.csv", "--top", 5)
    assert res.exit_code == 0, res.output
    assert "45 rows scored" in res.stdout and "labels: 5 anomalous rows; ROC-AUC 1.0000" in res.stdout
    rows = list(csv.DictReader(open(tmp_path / "scores.csv")))
    assert [r["row"] for r in rows] == [str(i) for i in range(45)] and rows[-1]["label"] == "1"
    expect = ((x - reconstruct(load_model(rd), x)) ** 2).sum(1)
    np.testing.assert_allclose([float(r["score"]) for r in rows], expect, rtol=1e-5)
    res = run("score", rd, tmp_path / "rows.npz", "--out", tmp_path / "rows.npz")
    assert res.exit_code == 2 and "never overwritten" in res.stderr


def test_encode_and_reconstruct_write_csv(tmp_path):
    import numpy as np

    from aekit import load

    rd = tmp_path / "run"
    assert run("train", "--code-size", 3, "--hidden", "16", "--epochs", 1, "--out", rd, "--quiet").exit_code == 0
    x = load("digits").test.x[:7]
    for src in ("x.npy", "x.csv"):  # streamed (.npy) and read whole (.csv)
        np.save(tmp_path / "x.npy", x) if src == "x.npy" else np.savetxt(tmp_path / src, x, delimiter=",")
        assert run("encode", rd, tmp_path / src, "--out", tmp_path / "codes.npy").exit_code == 0
        assert run("encode", rd, tmp_path / src, "--out", tmp_path / "codes.csv").exit_code == 0
        head, *rows = (tmp_path / "codes.csv").read_text().splitlines()
        assert head == "h0,h1,h2" and len(rows) == 7
        np.testing.assert_allclose(np.loadtxt(rows, delimiter=","), np.load(tmp_path / "codes.npy"), rtol=1e-6)
        assert run("reconstruct", rd, tmp_path / src, "--out", tmp_path / "r.csv").exit_code == 0
        assert np.loadtxt(tmp_path / "r.csv", delimiter=",", skiprows=1).shape == (7, 64)


def test_standardize_is_fitted_on_training_rows_stored_and_applied_everywhere(tmp_path):
    import numpy as np

    from aekit import load, load_model
    from aekit.evaluation.metrics import encode, reconstruct

    rng = np.random.default_rng(0)
    t = rng.normal(size=(600, 2))
    x = (t @ rng.normal(size=(2, 6)) + 0.05 * rng.normal(size=(600, 6))) * np.array([1, 1e3, 1e-2, 5, 1e4, 0.1])
    np.savetxt(tmp_path / "t.csv", x, delimiter=",")
    args = ["train", "--data", tmp_path / "t.csv", "--likelihood", "gaussian", "--code-size", 2, "--hidden", "16",
            "--epochs", 40, "--quiet"]
    res = run(*args, "--out", tmp_path / "raw")
    assert res.exit_code == 0 and "pass --standardize" in res.stderr and "(" in res.stderr  # the spread, in ×
    res = run(*args, "--standardize", "--out", tmp_path / "std")
    assert res.exit_code == 0, res.output
    assert "pass --standardize" not in res.stderr
    ev = json.loads((tmp_path / "std" / "evaluation.json").read_text())
    raw = json.loads((tmp_path / "raw" / "evaluation.json").read_text())
    ratio = {k: r["test_squared_error"] / r["pca_squared_error"] for k, r in (("raw", raw), ("std", ev))}
    assert ratio["std"] * 1000 < ratio["raw"]  # measured 16× against 2.3e7× PCA's error (40 epochs)

    train = load(str(tmp_path / "t.csv"), seed=0).train.x  # the run's training rows: the same seeded split
    center, scale = json.loads((tmp_path / "std" / "data.json").read_text())["standardize"]
    np.testing.assert_allclose(center, train.mean(0), rtol=1e-5)
    np.testing.assert_allclose(scale, train.std(0), rtol=1e-5)
    c, s = np.float32(center), np.float32(scale)
    model = load_model(tmp_path / "std")
    x32 = x.astype(np.float32)[:10]
    np.save(tmp_path / "q.npy", x32)
    assert run("encode", tmp_path / "std", tmp_path / "q.npy", "--out", tmp_path / "h.npy").exit_code == 0
    np.testing.assert_allclose(np.load(tmp_path / "h.npy"), encode(model, (x32 - c) / s), rtol=1e-4, atol=1e-5)
    assert run("reconstruct", tmp_path / "std", tmp_path / "q.npy", "--out", tmp_path / "r.npy").exit_code == 0
    expect = reconstruct(model, (x32 - c) / s) * s + c  # answered in the data's own units
    np.testing.assert_allclose(np.load(tmp_path / "r.npy"), expect, rtol=1e-4, atol=1e-3)
    assert run("score", tmp_path / "std", tmp_path / "q.npy", "--out", tmp_path / "s.csv").exit_code == 0
    scores = np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1)[:, 1]
    z = (x32 - c) / s
    np.testing.assert_allclose(scores, ((z - reconstruct(model, z)) ** 2).sum(1), rtol=1e-4)
    res = run("evaluate", tmp_path / "std")  # re-reads the data and standardises it as in training
    assert res.exit_code == 0 and f"{ev['test_squared_error']:.4f}" in res.stdout


def test_a_csv_tables_label_and_id_columns_from_the_command_line(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    kind = np.where(x[:, 0] > 0, "big", "small")
    lines = ["id,a,b,c,d,kind"] + [f"row{i},{','.join(f'{v:.6f}' for v in r)},{k}" for i, (r, k) in enumerate(zip(x, kind))]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    res = run("train", "--data", tmp_path / "t.csv", "--code-size", 2, "--hidden", "8", "--epochs", 2,
              "--likelihood", "gaussian", "--out", tmp_path / "r", "--quiet")
    assert res.exit_code == 2 and "non-numeric value 'row0'" in res.stderr and "'id'" in res.stderr
    res = run("train", "--data", tmp_path / "t.csv", "--label-column", "kind", "--drop-columns", "id", "--code-size",
              2, "--hidden", "8", "--epochs", 2, "--likelihood", "gaussian", "--out", tmp_path / "r", "--quiet")
    assert res.exit_code == 0, res.output
    assert "input 4, code 2" in res.stderr  # the four numeric features: no id, no label
    meta = json.loads((tmp_path / "r" / "data.json").read_text())
    assert meta["label_column"] == "kind" and meta["drop_columns"] == ["id"]
    assert run("encode", tmp_path / "r", tmp_path / "t.csv", "--out", tmp_path / "h.csv").exit_code == 0  # same columns
    assert len((tmp_path / "h.csv").read_text().splitlines()) == 301
    res = run("score", tmp_path / "r", tmp_path / "t.csv")
    assert res.exit_code == 0 and "300 rows scored" in res.stdout  # labels: class names numbered, big 0, small 1
    assert f"labels: {int((kind == 'small').sum())} anomalous rows" in res.stdout
    res = run("train", "--data", tmp_path / "t.csv", "--label-column", "kin", "--drop-columns", "id",
              "--out", tmp_path / "r2")
    assert res.exit_code == 2 and "'kin' is not a column" in res.stderr and "id, a, b, c, d, kind" in res.stderr
    res = run("train", "--label-column", "kind", "--out", tmp_path / "r3")  # digits: not a table
    assert res.exit_code == 2 and "apply to .csv files" in res.stderr


def _table(path, d=16, n=300):
    import numpy as np

    x = np.random.default_rng(0).normal(size=(n, d))
    np.savetxt(path, x, delimiter=",", header=",".join(f"c{i}" for i in range(d)), comments="")
    return path


def test_a_narrow_table_gets_a_code_that_fits_and_the_cli_says_which(tmp_path):
    """Issue 37.16: a table of ≤ 16 columns failed: "undercomplete needs --code-size < input size 16, got 16"."""
    rd = tmp_path / "run"
    res = run("train", "--data", _table(tmp_path / "t.csv"), "--epochs", 1, "--likelihood", "gaussian", "--out", rd)
    assert res.exit_code == 0, res.output
    assert "code size 4 (round(√16)): the preset's 16 is not smaller than the 16 input features" in \
        " ".join(res.stderr.split())
    assert json.loads((rd / "model.json").read_text())["options"]["code_size"] == 4
    res = run("train", "--data", _table(tmp_path / "w.csv", d=20), "--epochs", 1, "--likelihood", "gaussian",
              "--out", tmp_path / "wide")
    assert res.exit_code == 0 and "round(√" not in res.stderr  # the preset's 16 fits 20 columns: kept
    assert json.loads((tmp_path / "wide" / "model.json").read_text())["options"]["code_size"] == 16
    res = run("train", "--data", tmp_path / "t.csv", "--code-size", 16, "--out", tmp_path / "asked")
    assert res.exit_code == 2 and "needs --code-size < input size 16" in res.stderr  # asked for: never overridden


def test_standardised_data_gets_a_gaussian_likelihood_and_the_cli_says_so(tmp_path):
    """Issue 37.17: --standardize with the default Bernoulli likelihood failed on values outside [0, 1]."""
    rd = tmp_path / "run"
    res = run("train", "--data", _table(tmp_path / "t.csv", d=20), "--standardize", "--epochs", 1, "--out", rd)
    assert res.exit_code == 0, res.output
    assert "likelihood gaussian: standardised data is not in [0, 1]" in " ".join(res.stderr.split())
    assert json.loads((rd / "model.json").read_text())["options"]["likelihood"] == "gaussian"
    res = run("train", "--data", tmp_path / "t.csv", "--standardize", "--likelihood", "bernoulli", "--epochs", 1,
              "--out", tmp_path / "asked")
    assert res.exit_code == 2 and "Bernoulli likelihood needs data in [0, 1]" in res.stderr


def _files(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    rows = [",".join(["id", "a", "b", "c", "y"])] + [f"{i},{rng.normal():.4f},{rng.normal():.4f},{rng.normal():.4f},"
                                                     f"{i % 2}" for i in range(120)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    np.save(tmp_path / "x.npy", rng.random((200, 64), dtype=np.float32))
    t = np.arange(400)
    (tmp_path / "s.csv").write_text("time,v\n" + "\n".join(f"{i},{np.sin(i / 5):.4f}" for i in t) + "\n")


FLAGS = [
    ["--preset", "linear"], ["--binarize"], ["--data", "{t}/t.csv", "--label-column", "y", "--drop-columns", "id"],
    ["--data", "{t}/t.csv", "--standardize"], ["--data", "{t}/x.npy", "--stream"],
    ["--data", "{t}/s.csv", "--window", "16", "--stride", "4", "--preset", "tcn"],
    ["--preset", "vae", "--kl-warmup-epochs", "2", "--iw-samples", "10"], ["--epochs", "3"], ["--batch-size", "32"],
    ["--lr", "0.01"], ["--optimizer", "sgd", "--momentum", "0.5"], ["--weight-decay", "0.1"], ["--schedule", "cosine"],
    ["--warmup-epochs", "1"], ["--val-fraction", "0.2", "--patience", "3", "--min-delta", "0.1"],
    ["--grad-clip", "1.0"], ["--seed", "3"], ["--device", "cpu"], ["--precision", "bf16"],
    ["--checkpoint-every", "2", "--checkpoint-steps", "5", "--checkpoint-minutes", "1"], ["--nan-policy", "skip"],
    ["--max-time", "60"], ["--threads", "1"], ["--code-size", "8", "--hidden", "32,16", "--tied"],
]


@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: " ".join(a for a in f if a.startswith("--")))
def test_every_option_a_run_used_round_trips_through_its_configuration(tmp_path, flags):
    """Issue 37.19: `aekit train --config RUN/run.toml` failed with "unknown key 'standardize'" for a CSV run
    that used --standardize or --label-column. Each flag: its printed configuration re-runs to the same one."""
    _files(tmp_path)
    flags = [f.format(t=tmp_path) for f in flags]
    first = run("train", *flags, "--print-config")
    assert first.exit_code == 0, first.output
    (tmp_path / "run.toml").write_text(first.stdout)
    again = run("train", "--config", tmp_path / "run.toml", "--print-config")
    assert again.exit_code == 0, again.output
    assert again.stdout == first.stdout
    for flag in flags:
        if flag.startswith("--"):
            key = flag[2:].replace("-", "_")
            assert f"{key} = " in first.stdout or key == "tied", (key, first.stdout)


def test_output_files_are_checked_before_any_work_and_their_folders_made(tmp_path):
    """Issue 37.18: score --plot wrote nothing for a run on rows; score --out DIR named a temp file; --top -1
    passed; encode --out c.txt wrote .npy bytes; export failed on a missing folder."""
    import numpy as np

    rd = tmp_path / "run"
    assert run("train", "--code-size", 4, "--hidden", 16, "--epochs", 1, "--quiet", "--out", rd).exit_code == 0
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((30, 64), dtype=np.float32))
    res = run("score", rd, tmp_path / "x.npy", "--plot", tmp_path / "p.png", "--out", tmp_path / "new" / "s.csv")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "new" / "s.csv").is_file()
    for args, message in [
        (("score", rd, tmp_path / "x.npy", "--out", tmp_path), f"--out {tmp_path} is a directory; name a .csv file"),
        (("score", rd, tmp_path / "x.npy", "--out", tmp_path / "s.txt"), "s.txt: name the file .csv"),
        (("score", rd, tmp_path / "x.npy", "--plot", tmp_path / "p.pdf"), "--plot"),
        (("score", rd, tmp_path / "x.npy", "--top", -1), "--top must be an integer >= 0, got -1"),
        (("encode", rd, tmp_path / "x.npy", "--out", tmp_path / "c.txt"), "c.txt: name the file .npy or .csv"),
        (("reconstruct", rd, tmp_path / "x.npy", "--out", tmp_path / "x.npy"), "is the input file"),
    ]:
        res = run(*args)
        assert res.exit_code == 2 and message in res.stderr and res.stderr.count("\n") == 1, (args, res.output)
    assert not (tmp_path / "c.txt").exists() and not (tmp_path / "s.txt").exists()
    res = run("encode", rd, tmp_path / "x.npy", "--out", tmp_path / "deep" / "er" / "c.npy")
    assert res.exit_code == 0 and np.load(tmp_path / "deep" / "er" / "c.npy").shape == (30, 4)


def test_a_table_keeps_its_column_names_and_a_label_read_as_a_feature_is_named(tmp_path):
    """Issue 37.21: a CSV's label column was silently a feature; reconstruct --out x.csv named columns x0..xN;
    the report said "feature 0" in standardised units and chose features by variance after standardising."""
    import numpy as np

    rng = np.random.default_rng(0)
    rows = ["id,height,weight,label"] + [f"{i},{170 + 10 * rng.normal():.2f},{70 + 200 * rng.normal():.2f},{i % 2}"
                                         for i in range(150)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    res = run("train", "--data", tmp_path / "t.csv", "--epochs", 1, "--quiet", "--standardize", "--code-size", 1,
              "--out", tmp_path / "r")
    assert res.exit_code == 0, res.output
    said = " ".join(res.stderr.split())
    assert "column 'label' looks like a label but is read as a feature; --label-column label" in said
    assert "column 'id' looks like an ID but is read as a feature" in said and "--drop-columns id" in said
    rd = tmp_path / "run"
    res = run("train", "--data", tmp_path / "t.csv", "--label-column", "label", "--drop-columns", "id", "--epochs", 1,
              "--quiet", "--standardize", "--code-size", 1, "--report", "--out", rd)
    assert res.exit_code == 0 and "looks like" not in res.stderr, res.output
    res = run("reconstruct", rd, tmp_path / "t.csv", "--out", tmp_path / "x.csv")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "x.csv").read_text().splitlines()[0] == "height,weight"

    from aekit.store.data import load
    from aekit.report.html import feature_scatter

    split = load(str(tmp_path / "t.csv"), label_column="label", drop_columns=["id"])
    assert split.test.columns == ["height", "weight"]
    x = split.test.x
    c, s = x.mean(0), x.std(0)
    z = (x - c) / s
    r = z.copy()
    r[:, 1] = 0  # weight reconstructed as its mean: the worst
    fig = feature_scatter(z, r, n=1, names=split.test.columns, units=(c, s))
    ax = fig.axes[0]
    assert ax.get_title().startswith("weight: R² 0.00") and ax.get_xlabel() == "value (data units)"
    assert abs(ax.collections[0].get_offsets()[:, 0].mean() - x[:, 1].mean()) < 1e-3  # in kilograms, not z-scores


def test_a_typo_is_answered_at_once_with_the_nearest_names():
    """Issue 37.23: --epoch, --presett and --preset vea got no "did you mean" and took 3–9 s (torch imported,
    data loaded) to be refused."""
    import subprocess
    import sys

    code = ("import sys; from typer.testing import CliRunner; from aekit.cli import app\n"
            "res = CliRunner().invoke(app, ['train', sys.argv[1], '3'])\n"
            "print(res.exit_code, 'torch' in sys.modules, res.stderr.strip())\n")
    for typo, near in (("--epoch", "--epochs"), ("--presett", "--preset"), ("--hiden", "--hidden")):
        got = subprocess.run([sys.executable, "-c", code, typo], capture_output=True, text=True, timeout=60).stdout
        assert got.startswith("2 False error: no such option " + typo) and f"did you mean {near}" in got, got
    res = run("train", "--preset", "vea")
    assert res.exit_code == 2 and "unknown preset 'vea'; did you mean 'vae'?" in res.stderr
    assert run("train", "--no-tied", "--tied", "--code-size", 4, "--print-config").exit_code == 0  # real flags pass


def test_max_time_says_it_stopped_the_run_and_resume_trains_on_with_more_epochs(tmp_path):
    """Issue 37.23: --max-time ended a run silently; extending a finished run (more epochs) was refused."""
    rd = tmp_path / "run"
    res = run("train", "--code-size", 4, "--hidden", 16, "--epochs", 50, "--max-time", 0.001, "--quiet", "--out", rd)
    assert res.exit_code == 0, res.output
    assert "stopped by --max-time 0.001 after epoch 1 of 50" in " ".join(res.stdout.split())
    assert json.loads((rd / "train.json").read_text())["outcome"]["stopped_by_max_time"] is True

    done = tmp_path / "done"
    assert run("train", "--code-size", 4, "--hidden", 16, "--epochs", 2, "--quiet", "--out", done).exit_code == 0
    res = run("train", "--resume", done, "--epochs", 4, "--quiet")
    assert res.exit_code == 0, res.output
    assert "training on: 2 → 4 epochs" in res.stderr
    assert len((done / "metrics.jsonl").read_text().splitlines()) == 4
    assert json.loads((done / "train.json").read_text())["outcome"]["last_epoch"] == 4
    assert "epochs = 4" in (done / "run.toml").read_text()
    res = run("train", "--resume", done, "--epochs", 3)
    assert res.exit_code == 2 and "the run has 4 epochs; --resume trains on with more, never fewer" in res.stderr

    import numpy as np

    from aekit import create, fit

    x = np.random.default_rng(0).random((60, 6), dtype=np.float32)
    fit(create("undercomplete", (6,), code_size=2, hidden=[8]), x, epochs=2, run_dir=tmp_path / "py", progress=False)
    hist = fit(create("undercomplete", (6,), code_size=2, hidden=[8]), x, epochs=3, run_dir=tmp_path / "py",
               resume=True, progress=False)
    assert [r["epoch"] for r in hist.rows] == [1, 2, 3]


def test_messages_name_the_cause_once_and_a_refused_run_can_be_retried(tmp_path):
    """Issue 37.26: 1e39 in a CSV printed 50 overflow warnings, then "NaN or inf"; the NaN stop said
    `--nan-policy skip (--nan-policy skip)` and blamed the lr for 1e30 data; a directory named x.npy was
    "missing file train-images-idx3-ubyte.gz"; a run refused after its directory was made blocked the retry."""
    import numpy as np

    (tmp_path / "big.csv").write_text("a,b\n1,2\n3,1e39\n5,6\n")
    res = run("train", "--data", tmp_path / "big.csv", "--out", tmp_path / "r1")
    assert res.exit_code == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "has values beyond float32's range (±3.4e+38) in 1 sample(s), first at row 1 (1e+39)" in res.stderr

    x = np.random.default_rng(0).random((200, 8), dtype=np.float32) * 1e30
    np.save(tmp_path / "huge.npy", x)
    res = run("train", "--data", tmp_path / "huge.npy", "--likelihood", "gaussian", "--code-size", 2, "--quiet",
              "--out", tmp_path / "r2")
    said = " ".join(res.stderr.split())
    assert res.exit_code == 2 and "the batch holds values up to 1e+30: scale the data" in said, res.stderr
    assert said.count("--nan-policy skip") == 1 and "lower lr" not in said

    (tmp_path / "x.npy").mkdir()
    res = run("train", "--data", tmp_path / "x.npy", "--out", tmp_path / "r3")
    assert res.exit_code == 2 and f"{tmp_path / 'x.npy'} is a directory, not a .npy file" in res.stderr

    rd = tmp_path / "r4"
    res = run("train", "--preset", "vae", "--beta", 0, "--kl-warmup-epochs", 2, "--epochs", 1, "--out", rd)
    assert res.exit_code == 2 and "has no effect here" in res.stderr
    res = run("train", "--preset", "vae", "--epochs", 1, "--quiet", "--out", rd)  # no "already holds a run"
    assert res.exit_code == 0, res.output


def test_a_crafted_trainer_header_is_one_line_on_the_command_line(tmp_path):
    """Issue 37.4, end to end: `aekit train --resume` on a header with lr "x" printed a torch TypeError traceback."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    rd = tmp_path / "run"
    assert run("train", "--code-size", 4, "--hidden", 16, "--epochs", 3, "--max-time", 0.001, "--quiet",
               "--out", rd).exit_code == 0
    with safe_open(rd / "trainer.safetensors", "pt") as f:
        blob, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    meta = json.loads(blob["json"])
    meta["optim_groups"][0]["lr"] = "x"
    save_file(tensors, rd / "trainer.safetensors", metadata={**blob, "json": json.dumps(meta)})
    res = runner.invoke(app, ["train", "--resume", str(rd), "--quiet"])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1, res.output
    assert "trainer header: optim_groups[0].lr must be a finite number, got 'x'" in res.stderr


def test_a_glob_of_npy_files_streams_from_the_command_line(tmp_path):
    """Issue 37.15, end to end."""
    import numpy as np

    x = np.random.default_rng(0).random((200, 64), dtype=np.float32)
    for i, part in enumerate(np.array_split(x, 3)):
        np.save(tmp_path / f"part-{i}.npy", part)
    res = run("train", "--data", f"{tmp_path}/part-*.npy", "--stream", "--epochs", 1, "--quiet", "--code-size", 4,
              "--out", tmp_path / "r")
    assert res.exit_code == 0, res.output
    assert "160 train / 40 test samples" in " ".join(res.stderr.split())
