"""``aekit train --track``: the experiment trackers of a run (TensorBoard in the run, MLflow where it is configured)."""

from __future__ import annotations

from pathlib import Path

from ._app import _fail
from ._lazy import lazy_module

# heavy modules (torch), loaded on first use so that `aekit --help` and option checks stay fast
training_tracking = lazy_module("aekit.training.tracking")


def tracker_names(track: str | None) -> list[str]:
    names = [t.strip() for t in (track or "").split(",") if t.strip()]
    bad = sorted(set(names) - {"tensorboard", "mlflow"})
    if bad:
        _fail(f"--track takes tensorboard and/or mlflow, got {', '.join(bad)}")
    return names


def mlflow_logger(names: list[str], run: Path, cfg):
    """The MLflow logger --track asked for (else None): one MLflow run named after the run directory, in the store
    MLflow is configured with (MLFLOW_TRACKING_URI; unset, MLflow's default ``sqlite:///mlflow.db``, which the
    ``tracking`` extra installs SQLAlchemy and Alembic for). Made before the run directory is written, so a store
    that cannot be reached costs no run and leaves no directory behind."""
    if "mlflow" not in names:
        return None
    from dataclasses import asdict

    MLflowLogger = training_tracking.MLflowLogger

    try:
        return MLflowLogger(run_name=run.name, params=asdict(cfg))
    except ValueError:
        raise
    except Exception as e:  # the tracker's own set-up (a server that is not there, say): one line, with its fix
        text = " ".join(str(e).split())
        hint = ""
        if "MLFLOW_ALLOW_FILE_STORE" not in text[:300] and "filesystem tracking backend" in text:
            hint = (" (MLflow 3 refuses a file store unless MLFLOW_ALLOW_FILE_STORE=true is set; or leave "
                    "MLFLOW_TRACKING_URI unset for its default store, sqlite:///mlflow.db)")
        elif "registry" in text.lower() and "sqlite" in text:
            hint = " (MLflow's default sqlite store needs SQLAlchemy and Alembic: pip install 'aekit[tracking]')"
        raise ValueError(f"--track mlflow: {type(e).__name__}: {text[:300]}{hint}") from None


def trackers_for(names: list[str], run: Path, cfg, mlflow=None) -> list:
    """The loggers --track asked for: TensorBoard events in RUN/tensorboard, and MLflow's (see :func:`_mlflow`)."""
    TensorBoardLogger = training_tracking.TensorBoardLogger

    loggers = [TensorBoardLogger(run / "tensorboard")] if "tensorboard" in names else []
    return loggers + [mlflow or mlflow_logger(names, run, cfg)] if "mlflow" in names else loggers
