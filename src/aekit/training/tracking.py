"""Experiment trackers, fed from the trainer's per-epoch rows (the same rows as ``metrics.jsonl``).

Each logger is a :func:`~aekit.training.loop.fit` callback ``cb(epoch, row, model)``; there is no second
metrics path. They need the ``tracking`` extra (``pip install 'aekit[tracking]'``).

Example
-------
>>> from aekit import create, fit, load
>>> from aekit.training.tracking import TensorBoardLogger
>>> d = load("digits")
>>> with TensorBoardLogger("runs/doc-tb") as tb:  # doctest: +SKIP
...     fit(create("undercomplete", d.train.shape), d.train.x, epochs=2, callbacks=[tb], progress=False)
"""

from __future__ import annotations

import json
import os
import time
import warnings
from abc import ABC, abstractmethod
from typing import Any

from ..core.model import Autoencoder


def _scalars(row: dict[str, Any]) -> dict[str, float]:
    """The row's numbers (the epoch is the step, not a metric)."""
    return {k: float(v) for k, v in row.items()
            if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)}


def _need(module: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise ValueError(f"this logger needs {module.split('.')[0]}: pip install 'aekit[tracking]'") from None


class Logger(ABC):
    """Interface: a training callback that sends each epoch's row somewhere; ``close()`` when done."""

    @abstractmethod
    def __call__(self, epoch: int, row: dict[str, Any], model: Autoencoder) -> None: ...

    def close(self) -> None:
        """Flush and release what the logger holds."""

    def __enter__(self) -> "Logger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TensorBoardLogger(Logger):
    """Each row as TensorBoard scalars under ``log_dir``: ``train/loss``, ``val/reconstruction``, ``lr``, …,
    with the epoch as the step."""

    def __init__(self, log_dir: str | os.PathLike) -> None:
        self.writer = _need("torch.utils.tensorboard").SummaryWriter(str(log_dir))

    def __call__(self, epoch: int, row: dict[str, Any], model: Autoencoder) -> None:
        for key, value in _scalars(row).items():
            split, _, term = key.partition("_")
            self.writer.add_scalar(f"{split}/{term}" if split in ("train", "val") and term else key, value, epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MLflowLogger(Logger):
    """Each row as MLflow metrics of one run (the epoch as the step); the model's config and ``params``
    as its parameters, logged with the first row.

    Uses ``MlflowClient`` (no global "active run" is touched). ``tracking_uri``: where to log;
    ``None`` takes MLflow's own configuration (``MLFLOW_TRACKING_URI``). The store is reached once at
    construction (so a wrong URI fails before training); a failure while training is a warning and
    the run goes on without the tracker — a tracking server must not cost a run.
    """

    def __init__(self, experiment: str = "aekit", run_name: str | None = None, tracking_uri: str | None = None,
                 params: dict[str, Any] | None = None) -> None:
        self.client = _need("mlflow.tracking").MlflowClient(tracking_uri)
        self.client.get_experiment_by_name(experiment)
        self.experiment, self.run_name, self.params = experiment, run_name, dict(params or {})
        self.run_id: str | None = None
        self.failed = False

    def _start(self, model: Autoencoder) -> None:
        exp = self.client.get_experiment_by_name(self.experiment)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(self.experiment)
        self.run_id = self.client.create_run(exp_id, run_name=self.run_name).info.run_id
        params = {f"model.{k}": v for k, v in _flat(model.config or {"preset": None}).items()}
        params.update({f"train.{k}": v for k, v in _flat(self.params).items()})
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, json.dumps(v)[:6000]) for k, v in params.items()])

    def __call__(self, epoch: int, row: dict[str, Any], model: Autoencoder) -> None:
        if self.failed:
            return
        from mlflow.entities import Metric

        try:
            if self.run_id is None:
                self._start(model)
            ms = int(1000 * time.time())
            self.client.log_batch(self.run_id, metrics=[Metric(k, v, ms, epoch) for k, v in _scalars(row).items()])
        except Exception as e:  # the tracker's trouble, not the run's
            self.failed = True
            warnings.warn(f"MLflow logging failed ({type(e).__name__}: {str(e)[:200]}); training goes on without it",
                          RuntimeWarning, stacklevel=2)

    def close(self) -> None:
        if self.run_id is not None and not self.failed:
            self.client.set_terminated(self.run_id)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
