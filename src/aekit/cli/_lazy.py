"""Modules that load on first use: the command line's handles on aekit's torch-backed layers.

``aekit --help``, ``aekit train --help`` and the option checks answer before torch is imported;
each command module names the heavy modules it uses once, at its top, as ``lazy_module("aekit.…")``, and a
command's body reads names from them. A handle imports its module (``importlib.import_module``) when one of
its attributes is first read; it is not put in ``sys.modules`` (where anything that scans the loaded modules,
as ``inspect`` does, would import it half-way through another import).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Final: the module ``name``, imported on the first attribute read."""

    def __init__(self, name: str) -> None:
        self.__name = name
        self.__module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self.__module is None:
            self.__module = importlib.import_module(self.__name)
        return getattr(self.__module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self.__name!r}{'' if self.__module is None else ' (loaded)'}>"


def lazy_module(name: str) -> LazyModule:
    """A handle on the module ``name`` that imports it when one of its attributes is first read.

    Example
    -------
    >>> ranges = lazy_module("aekit.evaluation.ranges")
    >>> ranges.best_range_f1.__module__
    'aekit.evaluation.ranges'
    """
    return LazyModule(name)
