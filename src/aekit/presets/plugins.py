"""Your own presets on the command line: code that registers presets is imported only when asked —
``--plugin MODULE`` (``load_plugins("MODULE")``), or the ``aekit.presets`` entry points of packages
you installed. A checkpoint or a configuration file never makes aekit import code by itself.

An installed package declares its presets in its metadata (``pyproject.toml``)::

    [project.entry-points."aekit.presets"]
    my_presets = "my_package.presets"        # a module whose import registers presets
    more = "my_package.other:register_all"   # or a function to call
"""

from __future__ import annotations

import importlib
import warnings
from importlib.metadata import entry_points
from types import ModuleType

GROUP = "aekit.presets"
_LOADED_ENTRY_POINTS = False


def load_plugins(*modules: str, installed: bool = True) -> list[str]:
    """Import ``modules`` (dotted names) so the presets they register become known, and, with
    ``installed``, the ``aekit.presets`` entry points of installed packages (once per process; one that
    fails is a warning, not an error). Returns the names of the modules imported.

    Example
    -------
    >>> load_plugins("aekit.presets", installed=False)
    ['aekit.presets']
    """
    global _LOADED_ENTRY_POINTS
    if installed and not _LOADED_ENTRY_POINTS:
        _LOADED_ENTRY_POINTS = True
        for ep in entry_points(group=GROUP):
            try:
                obj = ep.load()
                if callable(obj) and not isinstance(obj, ModuleType):
                    obj()
            except Exception as e:  # someone else's package must not stop aekit: say so and go on
                warnings.warn(f"the installed aekit plugin {ep.name} ({ep.value}) failed to load: "
                              f"{type(e).__name__}: {e}", RuntimeWarning, stacklevel=2)
    for name in modules:
        _import(name, f"--plugin {name}")
    return list(modules)


def _import(name: str, flag: str) -> ModuleType:
    """Import the module ``name`` that the option ``flag`` (e.g. ``"--plugin my_presets"``) names: from the installed packages, PYTHONPATH, or the current
    folder (as ``python -m`` would; after the others, so a file here never hides an installed module)."""
    import os
    import sys

    if not isinstance(name, str) or not name or name.startswith(".") or "/" in name:
        raise ValueError(f"{flag.split()[0]} takes an importable module name such as my_package.presets, got {name!r}")
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.append(here)
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ValueError(f"{flag}: cannot import {name} ({e}); is it installed, on PYTHONPATH or in the current "
                         f"folder ({here})?") from None
    except Exception as e:  # the plugin's own code failed: one line that names it
        raise ValueError(f"{flag}: importing {name} raised {type(e).__name__}: {e}") from None


def model_factory(spec: str):
    """``"module:function"`` → the function, imported on request (``--model``): it takes no arguments and
    builds a model composed by hand, for runs that have no preset to rebuild theirs.

    Example
    -------
    >>> model_factory("aekit.presets:PRESETS")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: --model aekit.presets:PRESETS is not a function ...
    """
    module, _, name = str(spec).partition(":")
    if not module or not name:
        raise ValueError(f"--model takes MODULE:FUNCTION (a function that builds the model), got {spec!r}")
    fn = getattr(_import(module, f"--model {spec}"), name, None)
    if not callable(fn) or isinstance(fn, type(importlib)) or isinstance(fn, dict):
        raise ValueError(f"--model {spec} is not a function of {module} (it must build and return the model)")
    return fn
