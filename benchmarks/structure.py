"""The package's shape, as figures: modules, files flat in src/aekit, import depth, import circles (imports inside
functions counted), imports made inside functions, and the largest functions.

    python benchmarks/structure.py                 # this tree
    python benchmarks/structure.py --base 898ea50  # and a git revision beside it (read with `git archive`)
"""

from __future__ import annotations

import argparse
import ast
import collections
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def modules(src: Path) -> dict[str, Path]:
    """Each module's dotted name under ``src`` (a package's ``__init__`` as the package), and its file."""
    out = {}
    for p in src.rglob("*.py"):
        parts = list(p.relative_to(src.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def import_target(module: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    """The module a ``from … import`` names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def figures(src: Path) -> dict[str, object]:
    mods = modules(src)
    edges: dict[str, set[str]] = collections.defaultdict(set)
    inside, inside_aekit, functions = 0, 0, []
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        functions += [(f.end_lineno - f.lineno + 1, f"{name}:{f.name}") for f in funcs]
        in_func = {id(n) for f in funcs for n in ast.walk(f)}
        typing_only = {id(n) for i in ast.walk(tree) if isinstance(i, ast.If) and "TYPE_CHECKING" in ast.unparse(i.test)
                       for n in ast.walk(i)}
        for n in ast.walk(tree):
            if id(n) in typing_only or not isinstance(n, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(n, ast.Import):
                targets = [a.name for a in n.names]
            else:
                t = import_target(name, path.name == "__init__.py", n)
                targets = [f"{t}.{a.name}" if f"{t}.{a.name}" in mods else t for a in n.names]
            hit = False
            for t in targets:
                while t not in mods and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in mods and t != name and t != "aekit":
                    edges[name].add(t)
                    hit = True
            if id(n) in in_func:
                inside += 1
                inside_aekit += hit
    graph = {m: ts for m, ts in edges.items() if m != "aekit"}
    comps = _sccs(list(mods), graph)
    comp_of = {v: i for i, c in enumerate(comps) for v in c}
    down: dict[int, set[int]] = collections.defaultdict(set)
    for v, ts in graph.items():
        down[comp_of[v]] |= {comp_of[t] for t in ts if comp_of[t] != comp_of[v]}
    depth: dict[int, int] = {}

    def floors(c: int) -> int:
        if c not in depth:
            depth[c] = 1 + max((floors(d) for d in down[c]), default=0)
        return depth[c]

    functions.sort(reverse=True)
    return {"modules": len(mods), "files flat in src/aekit": sum(p.parent == src for p in mods.values()),
            "import depth (floors)": max(floors(comp_of[m]) for m in mods if m != "aekit"),
            "import circles": sum(len(c) > 1 for c in comps),
            "modules in circles": sum(len(c) for c in comps if len(c) > 1),
            "imports inside functions": inside, "… of aekit modules": inside_aekit,
            "functions over 60 lines": sum(n > 60 for n, _ in functions),
            "largest function": f"{functions[0][1]} ({functions[0][0]} lines)"}


def _sccs(nodes: list[str], graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", help="a git revision to measure beside this tree")
    args = ap.parse_args()
    columns = {"this tree": figures(ROOT / "src" / "aekit")}
    if args.base:
        with tempfile.TemporaryDirectory() as tmp:
            tar = subprocess.run(["git", "archive", args.base, "src/aekit"], cwd=ROOT, capture_output=True, check=True)
            tarfile.open(fileobj=io.BytesIO(tar.stdout)).extractall(tmp, filter="data")
            columns = {args.base: figures(Path(tmp) / "src" / "aekit"), **columns}
    width = max(len(k) for k in next(iter(columns.values())))
    print(f"{'':<{width}}  " + "  ".join(f"{c:>40}" for c in columns))
    for key in next(iter(columns.values())):
        print(f"{key:<{width}}  " + "  ".join(f"{str(col[key]):>40}" for col in columns.values()))


if __name__ == "__main__":
    sys.exit(main())
