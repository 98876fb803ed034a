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


# The long tests (each 10 s to 90 s on 2 cores) start first, so that the workers end together rather than one of
# them running a long test alone at the end: the file or test names, longest first.
LONG_FIRST = ("test_cli.py::test_crash_soak", "test_sources.py::test_training_from_a_file", "test_dist.py",
              "test_readme.py::test_each_chapter", "test_registry.py::test_cli_needs_the_plugin",
              "test_cli.py::test_sigterm", "test_novelty.py::test_code_novelty_finds",
              "test_autosize.py::test_defaults_on_a_large", "test_deploy.py")


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        return next((i for i, name in enumerate(LONG_FIRST) if name in item.nodeid), len(LONG_FIRST))

    items.sort(key=rank)  # stable: within a rank, the files' own order
