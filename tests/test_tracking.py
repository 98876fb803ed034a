"""Experiment trackers fed from the trainer's rows (issue 11.4): what each writes is what metrics.jsonl holds."""

import json

import pytest
import torch
from typer.testing import CliRunner

from aekit import create, fit
from aekit.cli._app import app

tb = pytest.importorskip("tensorboard", reason="the 'tracking' extra is part of the test extra")
mlflow = pytest.importorskip("mlflow", reason="the 'tracking' extra is part of the test extra")


def _rows(tmp_path, digits, callbacks):
    torch.manual_seed(0)
    model = create("vae", digits.train.shape, code_size=2, hidden=[16])
    fit(model, digits.train.x[:300], epochs=3, run_dir=tmp_path / "run", callbacks=callbacks, progress=False)
    return [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]


def test_tensorboard_logger_writes_each_rows_scalars(tmp_path, digits):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from aekit.training.tracking import TensorBoardLogger

    with TensorBoardLogger(tmp_path / "tb") as logger:
        rows = _rows(tmp_path, digits, [logger])
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/kl_divergence", "val/neg_elbo", "lr"} <= tags
    for key, tag in (("train_loss", "train/loss"), ("val_neg_elbo", "val/neg_elbo"), ("lr", "lr")):
        got = [(e.step, e.value) for e in events.Scalars(tag)]
        assert got == [(r["epoch"], pytest.approx(r[key], rel=1e-6)) for r in rows]


def test_mlflow_logger_writes_metrics_and_params(tmp_path, digits, monkeypatch):
    from mlflow.tracking import MlflowClient

    from aekit.training.tracking import MLflowLogger

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow's file store: no server needed in a test
    uri = f"file:{tmp_path / 'mlruns'}"
    with MLflowLogger(experiment="aekit-test", run_name="vae", tracking_uri=uri, params={"epochs": 3}) as logger:
        rows = _rows(tmp_path, digits, [logger])
    client = MlflowClient(uri)
    run = client.get_run(logger.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "vae"
    assert run.data.params["model.preset"] == '"vae"' and run.data.params["train.epochs"] == "3"
    history = client.get_metric_history(logger.run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(r["epoch"], pytest.approx(r["train_loss"])) for r in rows]


def test_cli_track_writes_into_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file:{tmp_path / 'mlruns'}")
    rd = tmp_path / "r"
    res = CliRunner().invoke(app, ["train", "--epochs", "2", "--track", "tensorboard,mlflow", "--out", str(rd),
                                   "--quiet"])
    assert res.exit_code == 0, res.output
    assert list((rd / "tensorboard").glob("events.out.tfevents.*"))
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"file:{tmp_path / 'mlruns'}")
    (run,) = client.search_runs([client.get_experiment_by_name("aekit").experiment_id])
    assert run.info.run_name == "r" and len(client.get_metric_history(run.info.run_id, "train_loss")) == 2
    res = CliRunner().invoke(app, ["train", "--track", "wandb", "--quiet"])
    assert res.exit_code == 2 and "--track takes tensorboard and/or mlflow" in res.stderr


def test_the_documented_mlflow_setup_works_and_a_refused_store_costs_no_run(tmp_path, monkeypatch):
    """Issue 37.20: with the tracking extra (mlflow-skinny 3) and no URI, MLflow's default sqlite store failed
    for want of SQLAlchemy; with a file:// URI its "maintenance mode" error was cut before its fix. Either way
    the run exited 2 and left a directory without a model."""
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["train", "--epochs", "2", "--track", "mlflow", "--out", "r", "--quiet"])
    assert res.exit_code == 0, res.output
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")  # MLflow's own default, in the working folder
    (run,) = client.search_runs([client.get_experiment_by_name("aekit").experiment_id])
    assert run.info.run_name == "r" and len(client.get_metric_history(run.info.run_id, "train_loss")) == 2

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file:{tmp_path / 'mlruns'}")
    res = CliRunner().invoke(app, ["train", "--epochs", "1", "--track", "mlflow", "--out", "f", "--quiet"])
    assert res.exit_code == 2 and "MLFLOW_ALLOW_FILE_STORE=true" in res.stderr, res.output
    assert res.stderr.count("\n") == 1 and not (tmp_path / "f").exists()  # refused before the run was written
