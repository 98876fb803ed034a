"""``aekit compare``: every preset at every code size against PCA, on one data set — a table, a CSV and a plot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..core.model import seeded  # noqa: E402
from ..evaluation.metrics import encode, linear_probe, pca_error, reconstruct, squared_error  # noqa: E402
from ..presets.catalog import create, get_preset
from ..store.atomic import atomic_write  # noqa: E402
from ..store.data import Split  # noqa: E402
from ..training.loop import fit


def compare(split: Split, presets: list[str], code_sizes: list[int], out_dir: str | Path, epochs: int | None = None,
            progress: bool = False, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Train every preset at every code size (and PCA at each), measure them on the test set, and
    write ``compare.md``, ``compare.csv`` and ``compare.png`` (error against code size) into ``out_dir``.

    Each autoencoder trains for ``epochs`` epochs (``None``: its preset's default) with its preset's
    other defaults. Returns the table's rows.
    """
    import csv
    import time


    for p in presets:
        get_preset(p)  # unknown names fail before any training
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (xtr, ytr), (xte, yte) = (split.train.x, split.train.y), (split.test.x, split.test.y)
    rows: list[dict[str, Any]] = []

    def add(method: str, k: int, err: float, codes: tuple[np.ndarray, np.ndarray], seconds: float, params: int) -> None:
        acc = linear_probe(codes[0], ytr, codes[1], yte, max_iter=300) if ytr is not None else float("nan")
        rows.append({"method": method, "code_size": k, "test_squared_error": err, "linear_probe_accuracy": acc,
                     "train_seconds": seconds, "parameters": params})
        log(f"{method:>14s}  K={k:<3d}  squared error {err:8.3f}  probe {acc:.4f}  {seconds:6.1f} s")

    for k in code_sizes:
        t = time.perf_counter()
        err, pca = pca_error(xtr, xte, k)
        add("PCA", k, err, (pca.transform(xtr), pca.transform(xte)), time.perf_counter() - t, pca.components_.size)
        for p in presets:
            with seeded(0):
                model = create(p, split.train.shape, code_size=k)
            t = time.perf_counter()
            fit(model, xtr, progress=progress, val_fraction=0.0, **({"epochs": epochs} if epochs else {}))
            add(p, k, squared_error(xte, reconstruct(model, xte)), (encode(model, xtr), encode(model, xte)),
                time.perf_counter() - t, sum(q.numel() for q in model.parameters()))
    pca_of = {r["code_size"]: r["test_squared_error"] for r in rows if r["method"] == "PCA"}
    for r in rows:
        r["vs_pca"] = r["test_squared_error"] / pca_of[r["code_size"]]

    def write_csv(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    atomic_write(out / "compare.csv", write_csv)
    lines = [f"Test set of {split.test.name} ({len(xte)} samples); squared error per sample summed over "
             f"{xte.shape[1]} dimensions; {epochs or 'preset-default'} epochs per autoencoder.", "",
             "| method | code size | test squared error | vs PCA | linear-probe accuracy | train time | parameters |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["code_size"], r["method"] != "PCA")):
        lines.append(f"| {r['method']} | {r['code_size']} | {r['test_squared_error']:.3f} | "
                     f"{r['vs_pca']:.2f}x ({100 * (r['vs_pca'] - 1):+.0f} %) | {100 * r['linear_probe_accuracy']:.2f} % | "
                     f"{r['train_seconds']:.1f} s | {r['parameters']:,} |")
    atomic_write(out / "compare.md", lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for m in [*presets, "PCA"]:  # PCA last, dashed on top: the linear autoencoder lies under it
        pts = sorted((r["code_size"], r["test_squared_error"]) for r in rows if r["method"] == m)
        style = dict(color="black", ls="--", marker="x", ms=9) if m == "PCA" else dict(marker="o")
        ax.plot(*zip(*pts), label=m, **style)
    ax.set_xlabel("code size K")
    ax.set_ylabel("test squared error per sample")
    ax.set_xscale("log")
    ax.set_xticks(sorted(set(code_sizes)), [str(k) for k in sorted(set(code_sizes))])
    ax.minorticks_off()
    ax.set_title("reconstruction error against code size")
    ax.legend()
    fig.tight_layout()
    atomic_write(out / "compare.png", lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return rows
