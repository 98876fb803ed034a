"""The package's shape: layers that import only downward (import-linter), no aekit import hidden in a function,
no import circle, a torch-free store, and one import path for each public name."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import aekit

SRC = Path(aekit.__file__).parent
ROOT = SRC.parents[1]


# the import graph is read as benchmarks/structure.py reads it (one reader of the package's shape)
_spec = importlib.util.spec_from_file_location("structure", ROOT / "benchmarks" / "structure.py")
structure = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(structure)


def _modules() -> dict[str, Path]:
    return structure.modules(SRC)


def _imports(inside_functions: bool) -> dict[str, set[str]]:
    """module -> the aekit modules it imports (at its top, or inside its functions), TYPE_CHECKING blocks left out."""
    mods, out = _modules(), {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        skip = {id(n) for i in ast.walk(tree) if isinstance(i, ast.If) and "TYPE_CHECKING" in ast.unparse(i.test)
                for n in ast.walk(i)}
        funcs = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for n in ast.walk(f)}
        found = set()
        for n in ast.walk(tree):
            if id(n) in skip or (id(n) in funcs) != inside_functions:
                continue
            if isinstance(n, ast.ImportFrom):
                t = structure.import_target(name, path.name == "__init__.py", n)
                targets = [f"{t}.{a.name}" if f"{t}.{a.name}" in mods else t for a in n.names]
            elif isinstance(n, ast.Import):
                targets = [a.name for a in n.names]
            else:
                continue
            found |= {t for t in targets if t.split(".")[0] == "aekit" and t != name}
        out[name] = found
    return out


def test_the_layers_contract_holds():
    """``lint-imports`` (import-linter, the contract in pyproject.toml) counts imports inside functions too."""
    exe = shutil.which("lint-imports") or pytest.fail("lint-imports is missing: pip install -e '.[test]'")
    res = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and "0 broken" in res.stdout, res.stdout[-3000:] + res.stderr[-2000:]


def test_the_contract_covers_every_package():
    """Every aekit module but the face (``aekit``, ``aekit.__main__``) sits in one layer of the contract."""
    toml = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "tomli")
    contracts = toml.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = [c for c in contracts if c["type"] == "layers"]
    assert len(layers) == 1 and layers[0]["containers"] == ["aekit"]
    names = {part.strip() for layer in layers[0]["layers"] for part in layer.split("|")}
    outside = [m for m in _modules() if m not in ("aekit", "aekit.__main__") and m.split(".")[1] not in names]
    assert not outside, outside


def test_no_aekit_module_is_imported_inside_a_function():
    """Lazy imports are for third-party modules (torch, optional extras); aekit's own are at the top, where
    import-linter and a reader see them. The lazy public face (``aekit/__init__.py``) loads by name."""
    hidden = {m: sorted(t) for m, t in _imports(inside_functions=True).items() if t}
    assert not hidden, hidden


def test_there_is_no_import_circle():
    graph = _imports(inside_functions=False)
    graph.pop("aekit", None)  # the lazy face imports nothing at import time
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        seen[m] = 1
        for t in sorted(graph.get(m, ())):
            if t == "aekit":
                continue
            assert seen.get(t) != 1, " → ".join(path[path.index(t):] + [t]) if t in path else t
            if t not in seen:
                visit(t, path + [t])
        seen[m] = 2

    for m in sorted(graph):
        if m not in seen:
            visit(m, [m])


@pytest.mark.parametrize("package", ["aekit.store", "aekit._checks", "aekit.presets.options", "aekit.training.config",
                                     "aekit.cli"])
def test_the_store_and_the_command_lines_declarations_load_without_torch(package):
    mods = [m for m in _modules() if (m == package or m.startswith(package + ".")) and not m.endswith("__main__")]
    code = (f"import sys\nfor m in {mods!r}:\n    __import__(m)\n"
            "heavy = sorted(m for m in ('torch', 'sklearn', 'scipy', 'matplotlib', 'pandas') if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]


def test_each_public_name_is_defined_where_the_face_says():
    """``aekit.X`` is the one public path of the main API: the face maps each name to the module that defines it
    (no module re-exports another's names)."""
    for module, names in aekit._WHERE.items():
        mod = importlib.import_module(f"aekit.{module}")
        for name in names:
            obj = getattr(mod, name)
            owner = getattr(obj, "__module__", None)
            if owner is not None and not isinstance(obj, dict):
                assert owner == mod.__name__, (name, owner, mod.__name__)
    assert sorted(aekit.__all__) == sorted(aekit._MODULE)


def test_private_modules_are_not_public_import_paths():
    """A module starting with ``_`` is private: nothing outside its package imports from it, except the face and
    the tests (``aekit.presets._registry.register`` is public as ``aekit.register``)."""
    for name, targets in _imports(inside_functions=False).items():
        for t in targets:
            private = [i for i, part in enumerate(t.split(".")) if part.startswith("_")]
            if private:
                owner = ".".join(t.split(".")[: private[0]])
                assert name.startswith(owner + ".") or name == owner, f"{name} imports the private {t}"
