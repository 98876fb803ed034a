"""Run configuration files: one TOML file holds what ``aekit train`` needs to run again.

    preset = "undercomplete"
    data = "digits"
    seed = 0
    [model]
    code_size = 8
    hidden = [64]
    [train]
    epochs = 20
    lr = 0.003

Top-level keys: the data (``data``, ``data_dir``, ``binarize``, ``stream``, ``window``, ``stride``,
``train_steps``, ``standardize``, ``label_column``, ``drop_columns``), ``preset``, ``seed``, ``iw_samples``
and ``plugins`` (recorded, never imported: pass ``--plugin``); ``[model]`` holds the preset's
options, ``[train]`` the trainer's (:class:`~aekit.training.optim.TrainConfig`). Unknown keys are errors
that name the key and the accepted ones. Read with the standard library's ``tomllib``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TOP = {"preset": str, "data": str, "data_dir": str, "binarize": bool, "stream": bool, "window": int, "stride": int,
       "train_steps": int, "standardize": bool, "label_column": str, "drop_columns": list, "seed": int, "iw_samples": int,
       "plugins": list, "model": dict, "train": dict}
_WORDS = {int: "an integer", str: "a string", bool: "true or false", dict: "a [table]", list: "a list"}


def read_run_config(path: str | os.PathLike) -> dict[str, Any]:
    """The run configuration in ``path`` (TOML), its keys and types checked; ``ValueError`` naming the problem.

    Example
    -------
    >>> _ = Path("/tmp/aekit-doc.toml").write_text('preset = "vae"\\n[train]\\nepochs = 3\\n')
    >>> read_run_config("/tmp/aekit-doc.toml")
    {'preset': 'vae', 'train': {'epochs': 3}}
    """
    path = Path(path)
    try:
        cfg = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"configuration file not found: {path}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"cannot read the configuration {path}: {e}") from None
    for key, value in cfg.items():
        if key not in TOP:
            raise ValueError(f"unknown key {key!r} in {path}; accepted: {', '.join(TOP)} "
                             "(preset options go in [model], trainer options in [train])")
        if not isinstance(value, TOP[key]) or (TOP[key] is int and isinstance(value, bool)):
            raise ValueError(f"{key} in {path} must be {_WORDS[TOP[key]]}, got {value!r}")
    for key, what in (("plugins", "module names"), ("drop_columns", "column names or indices")):
        if not all(isinstance(p, str) for p in cfg.get(key, [])):
            raise ValueError(f"{key} in {path} must be a list of {what} (strings)")
    return cfg


def dumps(cfg: dict[str, Any]) -> str:
    """``cfg`` as TOML: scalars and lists at the top, then one table per dict; ``None`` values are left out
    (TOML has no null: left out, they take their defaults, which is what ``None`` means here)."""
    lines = [f"{k} = {_value(v)}" for k, v in cfg.items() if v is not None and not isinstance(v, dict)]
    for name, table in cfg.items():
        if isinstance(table, dict):
            lines += ["", f"[{name}]"] + [f"{k} = {_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return ("inf" if v > 0 else "-inf") if math.isinf(v) else "nan" if math.isnan(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise ValueError(f"cannot write {v!r} ({type(v).__name__}) to a configuration file")
