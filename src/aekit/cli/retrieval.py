"""``aekit index`` and ``aekit search``: a corpus's binary codes under a ``hashing`` run, searched by Hamming distance."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..store.atomic import atomic_write
from ._app import ModelFn, Plugins, _fail, _plugins, _run_model, app, friendly, out, rows_like_run
from ._lazy import lazy_module

# heavy modules (torch), loaded on first use so that `aekit --help` and option checks stay fast
evaluation_retrieval = lazy_module("aekit.evaluation.retrieval")
parts_hashing = lazy_module("aekit.parts.hashing")
training_loop = lazy_module("aekit.training.loop")


def _hasher(run_dir: Path, device: str, model_fn: str | None):
    BinaryCode = parts_hashing.BinaryCode
    ITQCode = parts_hashing.ITQCode
    ModelHasher = evaluation_retrieval.ModelHasher
    resolve_device = training_loop.resolve_device

    model = _run_model(run_dir, resolve_device(device), model_fn)
    if not any(isinstance(m, (BinaryCode, ITQCode)) for m in model.encoder.modules()):
        _fail(f"{run_dir} has no binary code: train it with --preset hashing")
    return ModelHasher(model)


@app.command()
@friendly
def index(
    run_dir: Annotated[Path, typer.Argument(help="A run trained with --preset hashing.")],
    corpus: Annotated[Path, typer.Argument(help="The items to index: .npy, .npz (x and optional labels y) or .csv.")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the index (.npz: packed codes, labels).")] = Path("index.npz"),
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
    plugin: Plugins = None,
    model_fn: ModelFn = None,
) -> None:
    """Encode CORPUS once into packed bits (64 to a word) for aekit search."""
    HammingIndex = evaluation_retrieval.HammingIndex

    _plugins(plugin)
    if out_path.resolve() == corpus.resolve():
        _fail(f"--out {out_path} is the corpus file: choose another name, the input is never overwritten")
    hasher = _hasher(run_dir, device, model_fn)
    x, y = rows_like_run(corpus, run_dir, hasher.model)
    idx = HammingIndex(hasher).add(x, y)
    atomic_write(out_path, lambda tmp: idx.save(tmp))
    out.print(f"indexed {len(x)} items as {hasher.model.code_size}-bit codes{' with labels' if y is not None else ''} "
              f"in {out_path}")


@app.command()
@friendly
def search(
    run_dir: Annotated[Path, typer.Argument(help="The hashing run that built the index.")],
    index_path: Annotated[Path, typer.Argument(help="An index written by aekit index.")],
    queries: Annotated[Path, typer.Argument(help="Query rows: .npy, .npz (x and optional labels y) or .csv.")],
    top: Annotated[int, typer.Option("--top", help="Neighbours per query.")] = 10,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="Write every query's neighbours here (.csv: query, rank, item, distance).")] = None,
    show: Annotated[int, typer.Option(help="Print the neighbours of this many queries.")] = 5,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
    plugin: Plugins = None,
    model_fn: ModelFn = None,
) -> None:
    """The --top nearest indexed items of each query by Hamming distance (ties in corpus order). With labels in
    both the index and the queries, precision at that depth is printed too."""
    HammingIndex = evaluation_retrieval.HammingIndex
    precision_at_k = evaluation_retrieval.precision_at_k

    _plugins(plugin)
    if top < 1:
        _fail(f"--top must be at least 1, got {top}")
    hasher = _hasher(run_dir, device, model_fn)
    idx = HammingIndex.load(index_path, hasher)
    if idx.codes.shape[1] != -(-hasher.model.code_size // 64):
        _fail(f"{index_path} holds codes of another width than {run_dir}'s {hasher.model.code_size} bits")
    q, y = rows_like_run(queries, run_dir, hasher.model)
    dist, nn = idx.search(q, top)
    for i in range(min(show, len(q))):
        pairs = ", ".join(f"{j} ({d})" for j, d in zip(nn[i], dist[i]))
        out.print(f"query {i}: {pairs}", highlight=False)
    if y is not None and idx.labels is not None:
        out.print(f"precision@{nn.shape[1]} {precision_at_k(idx.labels[nn], y):.4f} over {len(q)} queries")
    if out_path is not None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["query", "rank", "item", "distance"])
        for i in range(len(q)):
            w.writerows((i, r + 1, int(j), int(d)) for r, (j, d) in enumerate(zip(nn[i], dist[i])))
        atomic_write(out_path, lambda tmp: Path(tmp).write_text(buf.getvalue()))
        out.print(f"wrote {nn.size} neighbours to {out_path}")
