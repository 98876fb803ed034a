from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from aekit import load

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one pytest-xdist worker per core: each, and the commands it runs, on one thread, so that the workers do not
    # fight over the cores (2 workers × 2 threads on 2 cores made every step slower); tests that set threads still do
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def digits():
    return load("digits")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if not MNIST_DIR.is_dir():
        pytest.fail(f"the MNIST test data is missing: {MNIST_DIR}")
    return MNIST_DIR
