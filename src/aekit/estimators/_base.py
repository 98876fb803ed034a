"""What the two estimators share: options, training, scores, checkpoints."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .._checks import Constraint, Instance, Interval, OneOf, Text, check, validate
from ..core.model import EVAL_BATCH, Autoencoder, fp32, seeded
from ..evaluation.metrics import batched
from ..parts.variational import elbo
from ..presets.catalog import create, get_preset
from ..presets.options import OPTIONS
from ..store.atomic import write_json
from ..store.rows import Rows, open_rows
from ..training.autosize import adapt, auto_code_size
from ..training.checkpoint import load_model, save_model
from ..training.config import CONSTRAINTS, MAX_THREADS, TrainConfig
from ..training.loop import History, fit
from ..training.sources import streamable
from ..training.threads import threads_for, using_threads
from ._robust import trimmed_fit

_TRAIN = {f.name for f in fields(TrainConfig)}
_NONE = OneOf(None)
SCORE_DRAWS = 16  # common random draws of h per sample in a VAE's score_samples
DTYPES = (np.float64, np.float32)


def _score(m: Autoencoder, X: np.ndarray, seed: int) -> np.ndarray:
    """Per-row score of ``X`` under model ``m``, higher is more typical (see ``score_samples``)."""
    if m.stochastic:
        eps = torch.randn(SCORE_DRAWS, m.code_size, generator=torch.Generator().manual_seed(seed))
        x = torch.from_numpy(X.astype(np.float32)).to(next(m.parameters()).device)
        return elbo(m, x, allow_nonbinary=True, eps=eps.to(x.device))["elbo"].cpu().numpy()
    # −log p(x | g(f(x))) alone: the penalties of the training loss are not part of the score
    return -batched(lambda xb: m.likelihood.nll(fp32(m.decoder(m.code(xb))), xb), m, X).astype(np.float64)


LARGE = 4096  # fitted arrays with more values than this are saved as tensors (fitted.safetensors), not JSON


class _AutoencoderEstimator(BaseEstimator):
    """Interface shared by the two estimators: fit an aekit preset, encode, decode, score.

    The contract of a subclass's ``__init__``: it stores its arguments and nothing else (scikit-learn's
    rule); a parameter named like a preset option (:data:`aekit.presets.options.OPTIONS`) goes to the preset, one
    named like a :class:`~aekit.training.optim.TrainConfig` field to the trainer — both ``None`` for the preset's
    default and checked by those homes' constraints — and every other parameter is declared, with what it
    accepts, in the class's ``_own_constraints`` (scikit-learn's ``_parameter_constraints`` idea,
    under another name: scikit-learn's checks read that attribute as its own types).
    """

    _own_constraints: dict[str, list[Constraint]] = {
        "preset": [Text()],
        "n_components": [Interval(int, 1), OneOf("auto")],
        "preset_options": [_NONE, Instance(dict, "a dict of the preset's options by name")],
        "n_jobs": [_NONE, OneOf(-1), Interval(int, 1, MAX_THREADS)],
        "random_state": [_NONE, Interval(int, 0, 2**32, "left"), Instance(np.random.RandomState, "a RandomState")],
        "verbose": [OneOf(True, False), Interval(int, 0)],
    }

    @classmethod
    def _constraints(cls) -> dict[str, list[Constraint]]:
        """What each ``__init__`` parameter accepts: its own declaration, else its option's or training field's."""
        out = {}
        for name in cls._get_param_names():
            if name in OPTIONS:
                out[name] = [_NONE, *OPTIONS[name].accepts]
            elif name in _TRAIN:
                out[name] = [_NONE, *CONSTRAINTS[name]]
            else:
                out[name] = cls._own_constraints[name]  # a KeyError here is a parameter nobody declared
        return out

    @classmethod
    def _model_params(cls) -> list[str]:
        """The ``__init__`` parameters that are options of the preset (``n_components`` is ``code_size``)."""
        return [n for n in cls._get_param_names() if n in OPTIONS]

    def _validate_params(self) -> None:
        """``ValueError`` naming the first parameter that its constraint refuses."""
        validate(self.get_params(deep=False), self._constraints())

    _budget: dict[str, int] = {}  # adapt()'s steps and batch_size for this kind of estimator, where not the house's

    def _options(self, n: int, n_features: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """The preset's and the trainer's options: those set, the rest adapted to the data (:mod:`aekit.training.autosize`)."""
        accepted = get_preset(self.preset).options()
        k = self.n_components
        if k != "auto":
            if self.preset in ("undercomplete", "linear") and k >= n_features:
                raise ValueError(f"n_components={k} must be smaller than the number of features "
                                 f"(n_features={n_features}) for preset {self.preset!r}; "
                                 f"n_components='auto' chooses {auto_code_size(n_features)}")
        opts: dict[str, Any] = {"code_size": k}
        for name in self._model_params():
            v = getattr(self, name)
            if v is None:
                continue
            if name not in accepted:
                if name == "likelihood":
                    continue  # a preset without the option has a fixed likelihood: checked in fit
                raise ValueError(f"{name}={v!r} does not apply to preset {self.preset!r}; "
                                 f"its options are {', '.join(accepted)}")
            opts[name] = list(v) if name == "hidden" else v
        extra = {} if self.preset_options is None else self.preset_options
        for name, v in extra.items():
            if name in self._model_params() or name == "code_size":
                raise ValueError(f"preset_options[{name!r}]: set it with the parameter "
                                 f"{'n_components' if name == 'code_size' else name}=")
            if name not in accepted:
                raise ValueError(f"preset_options[{name!r}] does not apply to preset {self.preset!r}; "
                                 f"its options are {', '.join(accepted)}")
            opts[name] = v
        train = {k: v for k, v in self.get_params(deep=False).items() if k in _TRAIN and v is not None}
        return adapt(self.preset, n, n_features, opts, train, **self._budget)

    def fit(self, X: Any, y: Any = None) -> "_AutoencoderEstimator":
        """Train the preset on ``X`` (n_samples, n_features), in memory or streamed from storage; ``y`` is ignored."""
        data = self._fit_data(X)
        self.seed_ = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        self.model_, self.history_ = self._train(data, self.seed_)
        return self

    def _fit_data(self, X: Any) -> np.ndarray | Rows:
        """``X`` validated (float32 in memory, or stored rows), ``n_features_in_`` set, parameters checked."""
        rows = self._stored(X, reset=True)
        data = validate_data(self, X, dtype=DTYPES).astype(np.float32) if rows is None else rows
        self._validate_params()
        return data

    def _train(self, data: np.ndarray | Rows, seed: int, trim: float = 0.0) -> tuple[Autoencoder, History]:
        """A model of the preset trained on ``data`` with ``seed``; sets ``options_`` and ``n_components_``.

        ``trim`` > 0 trains in two halves, the second without the worst-reconstructed rows
        (:func:`aekit.estimators._robust.trimmed_fit`)."""
        shape = self._input_shape()
        opts, train = self._options(len(data), math.prod(shape))
        histories: list[History] = []
        with seeded(seed):  # the caller's global torch RNG is left as it was
            model = create(self.preset, shape, **opts)
            # the default "gaussian" is met by a preset's fixed Gaussian variant (e.g. an SAE's "gaussian_scaled")
            name, want = model.likelihood.name, getattr(self, "likelihood", None)
            if want is not None and name != want and not name.startswith(want + "_"):
                raise ValueError(f"preset {self.preset!r} has a fixed {model.likelihood.name!r} likelihood; "
                                 f"likelihood={want!r} does not apply")

            def step(part: np.ndarray | Rows, epochs: int) -> None:
                histories.append(fit(model, part, seed=seed, progress=bool(self.verbose), threads=self._threads(),
                                     **{**self._validation(), **train, "epochs": epochs}))

            if trim:
                trimmed_fit(step, lambda part: self._chunked(part, lambda x: _score(model, x, seed)), data,
                            train["epochs"], trim)
            else:
                step(data, train["epochs"])
        model.cpu().eval()
        self.n_components_ = self._n_features_out = model.code_size
        self.options_ = {"model": opts, "train": train}
        return model, History([r for h in histories for r in h.rows], histories[-1].best_epoch,
                              histories[-1].stopped_early)

    def _input_shape(self) -> tuple[int, ...]:
        """The shape of one sample the model reads: a row of ``n_features_in_`` values."""
        return (self.n_features_in_,)

    @staticmethod
    def _chunks(data: np.ndarray | Rows) -> Iterator[np.ndarray]:
        """An array whole, or stored rows chunk by chunk (~8 MB stored)."""
        if isinstance(data, Rows):
            yield from (x for _, x in data.chunks())
        else:
            yield data

    @classmethod
    def _chunked(cls, data: np.ndarray | Rows, fn) -> np.ndarray:
        """``fn`` of an array, or of stored rows chunk by chunk, as one array."""
        if not isinstance(data, Rows):
            return fn(data)  # an array: its result as it is, without concatenate's copy
        return np.concatenate([fn(x) for x in cls._chunks(data)])

    def _threads(self) -> int:
        """``n_jobs`` as the trainer's ``threads``: None is 0 (automatic); checked (set_params may change it)."""
        n = check(self.n_jobs, "n_jobs", *self._constraints()["n_jobs"])
        return 0 if n is None else int(n)

    def _scoring_threads(self):
        """The thread count for encoding and scoring with the fitted model: as ``n_jobs`` says, restored after."""
        return using_threads(threads_for(self._threads(), self.model_, EVAL_BATCH))

    def _validation(self) -> dict[str, Any]:
        """The trainer's validation options: none by default (every row trains)."""
        return {"val_fraction": 0.0}

    def _stored(self, X: Any, reset: bool) -> Rows | None:
        """The rows of ``X`` when it is read from storage (a path, rows, a dataset, a memory map), else ``None``;
        sets (``reset``) or checks ``n_features_in_`` as ``validate_data`` does for arrays."""
        if not streamable(X):
            return None
        rows = open_rows(X)
        if rows.n == 0:
            raise ValueError(f"{rows.name} is empty (0 samples)")
        d = math.prod(rows.sample_shape)
        if reset:
            self.n_features_in_ = d
            self.__dict__.pop("feature_names_in_", None)  # a file has no column names
        elif d != self.n_features_in_:
            raise ValueError(f"X has {d} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input")
        return rows

    def _rowwise(self, X: Any, fn) -> np.ndarray:
        """``fn`` of ``X``'s rows: at once for an array, chunk by chunk (~8 MB stored) for stored data."""
        check_is_fitted(self)
        rows = self._stored(X, reset=False)
        with self._scoring_threads():
            return self._chunked(validate_data(self, X, reset=False, dtype=DTYPES) if rows is None else rows, fn)

    def score_samples(self, X: Any) -> np.ndarray:
        """Per-sample score, higher is more typical: −(reconstruction NLL in nats), or the ELBO for a VAE
        (an ensemble's: the mean of its members', each standardised; a detector with ``code_density``:
        unitless, −(z_rec + z_code)/2, see :mod:`aekit.estimators._density`; with ``tails``: that score and
        the tails' surprise, each standardised, averaged, see :mod:`aekit.estimators._tails`).

        Deterministic, and each row's score depends on that row only: a VAE's ELBO is averaged over
        16 draws of the noise ε that are the same for every row (common random numbers).
        """
        return self._rowwise(X, self._score)

    def _score(self, X: np.ndarray) -> np.ndarray:
        return _score(self.model_, X, self.seed_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

    # aekit checkpoints: safetensors weights + JSON, never pickle
    def save(self, path: str | Path) -> Path:
        """Write the fitted estimator to directory ``path`` (model.safetensors, model.json, estimator.json)."""
        check_is_fitted(self)
        path = save_model(self.model_, path)
        for i, member in enumerate(getattr(self, "models_", [])[1:], 1):  # an ensemble's other members
            save_model(member, path / f"member-{i}")
        state = {k: v for k, v in vars(self).items()
                 if k.endswith("_") and k not in ("model_", "models_", "history_")}
        large = {k: np.ascontiguousarray(v) for k, v in state.items()  # e.g. reference codes: a tensor file, not JSON
                 if isinstance(v, np.ndarray) and v.dtype.kind in "fiu" and v.size > LARGE}
        tensors = path / "fitted.safetensors"
        if large:
            save_file(large, str(tensors.with_suffix(".tmp")))
            tensors.with_suffix(".tmp").replace(tensors)
        else:
            tensors.unlink(missing_ok=True)  # an earlier save's, into the same folder
        state = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in state.items() if k not in large}
        params = self.get_params()
        if not isinstance(params["random_state"], (int, type(None))):
            params["random_state"] = None  # a RandomState object is not JSON; seed_ keeps what it drew
        write_json(path / "estimator.json", {"class": type(self).__name__, "params": params,
                                             "fitted": state, "n_features_out": self._n_features_out})
        return path

    @classmethod
    def load(cls, path: str | Path) -> "_AutoencoderEstimator":
        """Read an estimator written by :meth:`save`."""
        path = Path(path)
        meta_path = path / "estimator.json"
        if not meta_path.is_file():
            raise ValueError(f"no estimator.json in {path}: not a saved {cls.__name__}")
        meta = json.loads(meta_path.read_text())
        if meta.get("class") != cls.__name__:
            raise ValueError(f"{path} was saved from {meta.get('class')}, not from {cls.__name__}")
        est = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["params"].items()})
        for k, v in meta["fitted"].items():
            setattr(est, k, np.asarray(v) if k == "feature_names_in_" else v)
        if (path / "fitted.safetensors").is_file():
            for k, v in load_file(str(path / "fitted.safetensors")).items():
                setattr(est, k, v)
        est.model_ = load_model(path, torch.device("cpu"))
        if "seeds_" in meta["fitted"]:
            est.models_ = [est.model_] + [load_model(path / f"member-{i}", torch.device("cpu"))
                                          for i in range(1, len(est.seeds_))]
        est._n_features_out = meta["n_features_out"]
        return est
