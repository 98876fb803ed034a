"""The ``aekit`` command: train, evaluate, encode, reconstruct, report, compare, presets, activations, score, index,
search.

Bad input ends with one line ``error: …`` on stderr and exit status 2. ``train.py`` holds the
``train`` command, ``use.py`` the commands that use a trained run, ``interp.py`` ``activations``, ``series.py``
``score``, ``retrieval.py`` ``index`` and ``search``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from typer.core import TyperCommand

from .. import __version__
from ..presets.options import OPTIONS
from ..presets.plugins import load_plugins, model_factory
from ..store.data import load, stream_split
from ..store.files import read_array
from ..store.run import Run
from ..training.config import TrainConfig
from ._lazy import lazy_module

# heavy modules (torch), loaded on first use so that `aekit --help` and option checks stay fast
core_model = lazy_module("aekit.core.model")
core_tensors = lazy_module("aekit.core.tensors")
evaluation_series = lazy_module("aekit.evaluation.series")
training_checkpoint = lazy_module("aekit.training.checkpoint")

app = typer.Typer(
    help="The autoencoder family: train, evaluate and use autoencoders.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain one-line usage errors
)
out = Console(soft_wrap=True)  # a path or a message is never broken into lines (copy and paste)
err = Console(stderr=True, soft_wrap=True)
Plugins = Annotated[Optional[list[str]], typer.Option(
    "--plugin", metavar="MODULE", help="Import this module first: it registers your own presets (repeatable).",
    rich_help_panel="Model")]
ModelFn = Annotated[Optional[str], typer.Option(
    "--model", metavar="MODULE:FUNCTION", help="For a model composed by hand: a function that builds it "
    "(its weights are then loaded into what it returns).", rich_help_panel="Model")]
MAX_IW = 1_000_000  # importance samples per test row: Burda et al. used 5,000; more only costs time


class GroupedCommand(TyperCommand):
    """A command whose ``--help`` lists its options in groups (each option's ``rich_help_panel``), in the plain
    text the CLI prints everywhere (no rich boxes)."""

    def format_options(self, ctx: typer.Context, formatter: Any) -> None:  # formatter: click's HelpFormatter
        groups: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record:
                groups.setdefault(getattr(param, "rich_help_panel", None) or "Other options", []).append(record)
        order = ["Model", "Data", "Training", "Hardware and checkpoints", "Output"]
        for name, records in sorted(groups.items(), key=lambda g: order.index(g[0]) if g[0] in order else len(order)):
            with formatter.section(name):
                formatter.write_dl(records)


def _fail(msg: str) -> None:
    err.print(f"error: {msg}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def out_file(path: Path, suffixes: tuple[str, ...], flag: str = "--out", source: Path | None = None,
             bare: bool = True) -> Path:
    """An output file named by ``flag``, checked before any work: a file (not a directory, not the input
    ``source``) whose suffix says its format — or, with ``bare``, no suffix at all, for the first format,
    written under exactly that name; its folder is created, as every command that writes does."""
    kinds = " or ".join(suffixes)
    if path.is_dir():
        _fail(f"{flag} {path} is a directory; name a {kinds} file")
    if source is not None and path.resolve() == source.resolve():
        _fail(f"{flag} {path} is the input file: choose another name, the input is never overwritten")
    if path.suffix not in suffixes and not (bare and path.suffix == ""):
        _fail(f"{flag} {path}: name the file {kinds} (the suffix says what is written)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _fail(f"{flag} {path}: cannot create its folder ({e.strerror or e})")
    return path


def as_flags(msg: str) -> str:
    """A library message in the command line's words: ``rho=0.1`` → ``--rho 0.1``, ``penalty='kl'`` →
    ``--penalty kl``, ``code_size`` → ``--code-size``, and an option named at the start of a clause (``rho must``)
    → ``--rho must``; only the names of preset and training options are touched. A message that lists the
    accepted keys is about a configuration file's keys, and keeps them."""
    import dataclasses
    import re

    if "accepted:" in msg:
        return msg

    names = sorted({*OPTIONS, *(f.name for f in dataclasses.fields(TrainConfig))}, key=len, reverse=True)
    alt = "|".join(map(re.escape, names))

    def flag(name: str) -> str:
        return "--" + name.replace("_", "-")

    msg = re.sub(rf"\b({alt})=(['\"]?)([^'\",;:)\s]*)\2", lambda m: f"{flag(m[1])} {m[3]}", msg)
    msg = re.sub(rf"(^|: |; |\(|unknown )({alt})(?= (must|has|have|needs|applies|is|cannot|takes|')\b)",
                 lambda m: m[1] + flag(m[2]), msg)
    return re.sub(r"(?<![-\w])(" + "|".join(re.escape(n) for n in names if "_" in n) + r")\b",
                  lambda m: flag(m[1]), msg)


def friendly(fn: Callable) -> Callable:
    """Turn ``ValueError`` (our validation errors), ``FloatingPointError`` (a diverged run) and ``OSError``
    (a file that cannot be written or read: permissions, a full disk, a directory in the way) into a
    one-line message and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always")
                warnings.showwarning = lambda m, *a, **k: err.print(f"warning: {m}", markup=False, soft_wrap=True)
                return fn(*args, **kwargs)
        except (ValueError, FloatingPointError) as e:
            _fail(as_flags(str(e)))
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            _fail(f"{where}{e.strerror or e}")

    return wrapper


def _version(show: bool) -> None:
    if show:
        out.print(f"aekit {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _startup(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print aekit's version and exit.")] = False) -> None:
    with warnings.catch_warnings():  # a broken installed plugin is one line, not a traceback
        warnings.simplefilter("always")
        warnings.showwarning = lambda m, *a, **k: err.print(f"warning: {m}", markup=False, soft_wrap=True)
        load_plugins(installed=True)


def _plugins(modules: list[str] | None) -> None:
    """Import the --plugin modules (their presets then exist), or fail with one line."""

    load_plugins(*(modules or []), installed=False)


def _run_model(run_dir: Path, device: str = "cpu", factory: str | None = None):
    """The trained model of ``run_dir``: rebuilt from its config, or, with ``--model``, loaded into the
    model that ``factory`` builds (the only way for a model composed by hand)."""
    load_model = training_checkpoint.load_model
    Autoencoder = core_model.Autoencoder

    if factory is None:
        try:
            return load_model(run_dir, device)
        except ValueError as e:
            if "composed by hand" in str(e):
                _fail(f"{run_dir} holds a model composed by hand: pass --model MODULE:FUNCTION, a function that "
                      "builds the same architecture")
            raise
    like = model_factory(factory)()
    if not isinstance(like, Autoencoder):
        _fail(f"--model {factory} returned {type(like).__name__}, not an aekit Autoencoder")
    return load_model(run_dir, device, model=like)


def _ints(text: str | None, what: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        _fail(f"{what} must be comma-separated integers, got {text!r}")


def _load_split(data: str, data_dir: Optional[Path], seed: int = 0, binarize: bool = False, stream: bool = False,
                window: int | None = None, stride: int = 1, label_column: str | None = None,
                drop_columns: list[str] | None = None, train_steps: int | None = None):
    if (label_column is not None or drop_columns) and stream:
        _fail("--label-column and --drop-columns read a table into memory: not with --stream")
    if train_steps is not None and window is None:
        _fail("--train-steps says where a series' training part ends: it applies with --window")
    if window is not None:
        series_split = evaluation_series.series_split

        if binarize or data_dir or stream:
            _fail("--window reads one series from a file: drop --binarize, --data-dir and --stream")
        if label_column is not None:
            _fail("a series' labels are its column named label, anomaly or is_anomaly: drop --label-column")
        return series_split(data, window, stride, train_steps=train_steps, drop_columns=drop_columns or ())
    if stream:
        if binarize or data_dir:
            _fail("--stream reads a .npy file or a shard directory as it is: drop --binarize and --data-dir")
        return stream_split(data, seed)
    return load(data, data_dir=data_dir, seed=seed, binarize=binarize, label_column=label_column,
                drop_columns=drop_columns or ())


def _opt_path(p: str | None) -> Path | None:
    return Path(p) if p else None


def _run_data(run_dir: Path, data: str | None, data_dir: Path | None, binarize: bool = False):
    if data is None:
        return _split_of_run(run_dir)
    return _load_split(data, data_dir, binarize=binarize)


def _run_data_path(run_dir: Path) -> str:
    """What a run was trained on, as its data.json names it (a data set name or a path)."""

    return Run(run_dir).data_spec()["data"]


def _split_of_run(run_dir: Path):
    """The data a run was trained on, as its data.json records it (standardised as in training)."""

    meta = Run(run_dir).data_spec()
    split = _load_split(meta["data"], _opt_path(meta["data_dir"]), meta["seed"], meta["binarize"], meta["stream"],
                        meta["window"], meta["stride"], *run_columns(run_dir), meta["train_steps"])
    return standardized(split, *meta["standardize"]) if meta.get("standardize") else split


def standardized(split, center, scale):
    """``split`` with every feature's ``center`` subtracted and divided by its ``scale`` (the training rows')."""
    from dataclasses import replace

    import numpy as np

    c, s = np.asarray(center, dtype=np.float32), np.asarray(scale, dtype=np.float32)
    return replace(split, train=replace(split.train, x=(split.train.x - c) / s, units=(c, s)),
                   test=replace(split.test, x=(split.test.x - c) / s, units=(c, s)))


def run_meta(run_dir: Path) -> dict:
    """The run's data.json (what it was trained on, and how it was read), or {} for a model saved from Python."""

    run = Run(run_dir)
    return run.data_spec() if run.file(Run.DATA).is_file() else {}


def run_columns(run_dir: Path) -> tuple[str | None, list[str]]:
    """The label column and dropped columns of a run trained on a CSV table (None, [] otherwise)."""
    meta = run_meta(run_dir)
    return meta.get("label_column"), list(meta.get("drop_columns") or [])


def read_like_run(path: Path, run_dir: Path):
    """``read_array(path)`` as the run read its training table: a CSV's label column and dropped columns out."""

    label, drop = run_columns(run_dir) if Path(path).suffix == ".csv" else (None, [])
    return read_array(path, label_column=label, drop_columns=drop)


def rows_like_run(path: Path, run_dir: Path, model):
    """The rows of ``path`` as ``model``'s run trained on them — its CSV columns, checked against the model (the
    error names the file), standardised with its --standardize — and their labels (or None)."""
    as_tensor = core_tensors.as_tensor

    x, y, _ = read_like_run(path, run_dir)
    x = as_tensor(x, model, str(path)).numpy()
    scaler = run_scaler(run_dir)
    return (x if scaler is None else (x - scaler[0]) / scaler[1]), y


def run_scaler(run_dir: Path) -> tuple | None:
    """(center, scale) of a run trained with --standardize (float32 arrays), else None."""
    import numpy as np

    std = run_meta(run_dir).get("standardize")
    return None if not std else (np.asarray(std[0], dtype=np.float32), np.asarray(std[1], dtype=np.float32))
