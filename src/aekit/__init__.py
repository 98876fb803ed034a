"""aekit: the autoencoder family as one composed model, a fast trainer and a command-line tool."""

from .checkpoint import load_model, save_model
from .corruption import Corruption, Identity
from .data import (Dataset, Split, binarize, check_array, download, load, open_rows, read_array, read_idx,
                   write_shards)
from .likelihoods import Bernoulli, Gaussian, LearnedGaussian, Likelihood, make_likelihood
from .metrics import pca_error, principal_angles, reconstruct, squared_error
from .model import Autoencoder, Output, Penalty
from .networks import MLP, ConvDecoder, ConvEncoder, TiedMLP
from .plugins import load_plugins
from .presets import PRESETS, Preset, create, from_config, get_preset, register
from .optim import TrainConfig, config_for
from .train import History, evaluate, fit
from .variational import GaussianEncoder, GaussianKL, Posterior, elbo, log_likelihood

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
    "write_shards", "open_rows",
    "save_model", "load_model",
    "squared_error", "pca_error", "principal_angles", "reconstruct",
]
