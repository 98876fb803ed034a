from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aekit import load

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


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
