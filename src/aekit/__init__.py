"""aekit: the autoencoder family as one composed model, a fast trainer and a command-line tool.

Everything public is importable from here, but loaded on first use (PEP 562): ``import aekit`` and the
command line's ``--help`` do not pay for PyTorch and scikit-learn until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {  # module: the public names it defines
    "core.corruption": ("Corruption", "Identity"),
    "core.likelihoods": ("Bernoulli", "Gaussian", "LearnedGaussian", "Likelihood", "make_likelihood"),
    "core.model": ("Autoencoder", "Output", "Penalty"),
    "core.networks.conv": ("ConvDecoder", "ConvEncoder"),
    "core.networks.mlp": ("MLP", "TiedMLP"),
    "parts.variational": ("GaussianEncoder", "GaussianKL", "Posterior", "elbo", "log_likelihood"),
    "presets._registry": ("Preset", "register"),
    "presets.catalog": ("PRESETS", "create", "from_config", "get_preset"),
    "presets.plugins": ("load_plugins",),
    "store.data": ("Dataset", "Split", "binarize", "download", "load", "read_idx"),
    "store.files": ("check_array", "read_array"),
    "store.rows": ("open_rows",),
    "store.shards": ("spool_rows", "write_shards"),
    "training.checkpoint": ("load_model", "save_model"),
    "training.config": ("TrainConfig",),
    "training.evaluate": ("evaluate",),
    "training.loop": ("History", "fit"),
    "training.optim": ("config_for",),
    "evaluation.deploy": ("Deployable", "export_model", "run_exported"),
    "evaluation.metrics": ("pca_error", "principal_angles", "reconstruct", "squared_error"),
}
_MODULE = {name: module for module, names in _WHERE.items() for name in names}

__version__ = "0.1.0"

__all__ = [
    "Autoencoder", "Output", "Penalty",
    "Corruption", "Identity",
    "Likelihood", "Bernoulli", "Gaussian", "LearnedGaussian", "make_likelihood",
    "GaussianEncoder", "GaussianKL", "Posterior", "elbo", "log_likelihood",
    "MLP", "TiedMLP", "ConvEncoder", "ConvDecoder",
    "PRESETS", "Preset", "create", "from_config", "get_preset", "register", "load_plugins",
    "TrainConfig", "History", "fit", "evaluate", "config_for",
    "Dataset", "Split", "load", "binarize", "download", "read_idx", "read_array", "check_array",
    "write_shards", "open_rows", "spool_rows",
    "save_model", "load_model",
    "Deployable", "export_model", "run_exported",
    "squared_error", "pca_error", "principal_angles", "reconstruct",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULE:
        raise AttributeError(f"module 'aekit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE[name]}", __name__), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE})


if TYPE_CHECKING:  # static checkers and IDEs see the eager imports
    from .core.corruption import Corruption, Identity
    from .core.likelihoods import Bernoulli, Gaussian, LearnedGaussian, Likelihood, make_likelihood
    from .core.model import Autoencoder, Output, Penalty
    from .core.networks.conv import ConvDecoder, ConvEncoder
    from .core.networks.mlp import MLP, TiedMLP
    from .evaluation.deploy import Deployable, export_model, run_exported
    from .evaluation.metrics import pca_error, principal_angles, reconstruct, squared_error
    from .parts.variational import GaussianEncoder, GaussianKL, Posterior, elbo, log_likelihood
    from .presets._registry import PRESETS, Preset, register
    from .presets.catalog import create, from_config, get_preset
    from .presets.plugins import load_plugins
    from .store.data import Dataset, Split, binarize, download, load, read_idx
    from .store.files import check_array, read_array
    from .store.rows import open_rows
    from .store.shards import spool_rows, write_shards
    from .training.checkpoint import load_model, save_model
    from .training.config import TrainConfig
    from .training.evaluate import evaluate
    from .training.loop import History, fit
    from .training.optim import config_for
