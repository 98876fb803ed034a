"""aekit: the autoencoder family as one composed model, a fast trainer and a command-line tool.

Everything public is importable from here, but loaded on first use (PEP 562): ``import aekit`` and the
command line's ``--help`` do not pay for PyTorch and scikit-learn until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {  # module: the public names it defines
    "checkpoint": ("load_model", "save_model"),
    "corruption": ("Corruption", "Identity"),
    "deploy": ("Deployable", "export_model", "run_exported"),
    "data": ("Dataset", "Split", "binarize", "check_array", "download", "load", "open_rows", "read_array", "read_idx",
             "spool_rows", "write_shards"),
    "likelihoods": ("Bernoulli", "Gaussian", "LearnedGaussian", "Likelihood", "make_likelihood"),
    "metrics": ("pca_error", "principal_angles", "reconstruct", "squared_error"),
    "model": ("Autoencoder", "Output", "Penalty"),
    "networks": ("MLP", "ConvDecoder", "ConvEncoder", "TiedMLP"),
    "plugins": ("load_plugins",),
    "presets": ("PRESETS", "Preset", "create", "from_config", "get_preset", "register"),
    "optim": ("TrainConfig", "config_for"),
    "train": ("History", "evaluate", "fit"),
    "variational": ("GaussianEncoder", "GaussianKL", "Posterior", "elbo", "log_likelihood"),
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
    from .checkpoint import load_model, save_model
    from .corruption import Corruption, Identity
    from .deploy import Deployable, export_model, run_exported
    from .data import (Dataset, Split, binarize, check_array, download, load, open_rows, read_array, read_idx,
                       spool_rows, write_shards)
    from .likelihoods import Bernoulli, Gaussian, LearnedGaussian, Likelihood, make_likelihood
    from .metrics import pca_error, principal_angles, reconstruct, squared_error
    from .model import Autoencoder, Output, Penalty
    from .networks import MLP, ConvDecoder, ConvEncoder, TiedMLP
    from .plugins import load_plugins
    from .presets import PRESETS, Preset, create, from_config, get_preset, register
    from .optim import TrainConfig, config_for
    from .train import History, evaluate, fit
    from .variational import GaussianEncoder, GaussianKL, Posterior, elbo, log_likelihood
