"""Shared by the wall-clock-budget benchmarks: ``--set`` overrides and epoch calibration."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from aekit import Autoencoder, TrainConfig, create, fit


def budget_parser(doc: str) -> argparse.ArgumentParser:
    """The options every budget benchmark has: --minutes, --data-dir, --set KEY=VALUE ..., --seed."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=15.0, help="wall-clock training budget")
    ap.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override a training default or model option (for tuning), e.g. lr=3e-3 activation=relu")
    ap.add_argument("--seed", type=int, default=0)
    return ap


def parse_sets(pairs: list[str], preset: str, input_shape: tuple[int, ...]) -> tuple[dict, dict]:
    """``["lr=3e-3", "activation=relu"]`` → (model options, training options), values parsed as JSON."""

    def value(text: str) -> Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text

    overrides = {k: value(v) for k, v in (kv.split("=", 1) for kv in pairs)}
    model_keys = set(create(preset, input_shape).config["options"])
    return ({k: v for k, v in overrides.items() if k in model_keys},
            {k: v for k, v in overrides.items() if k not in model_keys})


def calibrated_epochs(fresh: Callable[[], Autoencoder], x: np.ndarray, cfg: TrainConfig, budget: float,
                      per_epoch_eval: Callable[[Autoencoder], Any]) -> tuple[int, float]:
    """Epochs that fit ``budget`` seconds, and the budget left after calibrating.

    One full epoch (same data, precision and batch) plus one per-epoch evaluation gives the
    epoch time; the calibration's cost is taken out of the budget, so the schedule completes.
    Small subsets fit in cache and mislead, hence the full epoch.
    """
    t_start = time.perf_counter()
    probe = fresh()
    step_time = fit(probe, x, cfg, epochs=1, patience=None, max_time=None).last["seconds"]
    t = time.perf_counter()
    per_epoch_eval(probe)
    per_epoch = 1.02 * step_time + (time.perf_counter() - t)
    budget -= time.perf_counter() - t_start
    return max(1, int(budget / per_epoch)), budget
