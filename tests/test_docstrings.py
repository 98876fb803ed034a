"""Every example in a public docstring runs and prints what it says (numpydoc ``Example`` sections)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import aekit
from aekit.presets._registry import PRESETS

MODULES = sorted(m.name for m in pkgutil.walk_packages(aekit.__path__, "aekit.") if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write a run write it here
    module = importlib.import_module(name)
    registered = dict(PRESETS)
    try:
        res = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    finally:  # a preset an example registers is not left for the other tests
        PRESETS.clear()
        PRESETS.update(registered)
    assert res.failed == 0, f"{res.failed} of {res.attempted} docstring examples of {name} failed (run it with -s)"
