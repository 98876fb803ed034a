"""The report page of a sparse autoencoder on activations: what an interpretability researcher opens first.

Latent firing densities (a histogram of log10 density, with the dead and dense latents counted), the run's
point on the L0–FVU plane, and for a seeded sample of latents their top-activating contexts — the tokens
around each top token, shaded by the latent's activation — read back from the capture's token contexts.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..core.model import (
    ALIVE,
    Autoencoder,  # noqa: E402
)
from ..evaluation.splice import sae_metrics  # noqa: E402
from ..store.rows import Rows, ShardRows, SubsetRows  # noqa: E402

WINDOW = (12, 3)  # tokens shown before and after a top-activating token


def density_histogram(density: np.ndarray, tokens: int) -> Figure:
    """log10 of each latent's firing frequency; dead latents (never fired) counted in the title."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    alive = density[density > 0]
    ax.hist(np.log10(alive), bins=50, color="#4477aa")
    ax.axvline(-1, color="#aa3377", ls="--", lw=1, label="dense: > 10 % of tokens")
    ax.set_xlabel(f"log10 firing density (share of tokens a latent is active on: value > {ALIVE:g})")
    ax.set_ylabel("latents")
    ax.set_title(f"{len(density) - len(alive)} of {len(density)} latents dead (never > {ALIVE:g} on {tokens:,} "
                 "tokens)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def l0_fvu(l0: float, fvu: float) -> Figure:
    """The run's point on the sparsity–fidelity plane (lower left is better)."""
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.scatter([l0], [fvu], color="#228833", zorder=3)
    ax.annotate(f"L0 {l0:.1f}, FVU {fvu:.3f}", (l0, fvu), textcoords="offset points", xytext=(6, 6))
    ax.set_xscale("log")
    ax.set_xlim(max(l0 / 10, 0.5), l0 * 10 + 1)
    ax.set_ylim(0, max(1.0, fvu * 1.2))
    ax.set_xlabel(f"L0 (latents > {ALIVE:g} per token)")
    ax.set_ylabel("FVU")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _capture_of(x: Any) -> tuple[ShardRows, np.ndarray, dict] | None:
    """The captured layer behind test rows ``x`` (a shard directory or a split of one): all its rows, the
    global index of each of ``x``'s rows, and its manifest's meta; ``None`` if ``x`` is not a capture."""
    base, idx = (x.rows, x.idx) if isinstance(x, SubsetRows) else (x, None)
    if not isinstance(base, ShardRows):
        return None
    meta = json.loads((base.dir / "manifest.json").read_text()).get("meta", {})
    if not meta.get("tokens"):
        return None
    return base, (np.arange(base.n) if idx is None else idx), meta


@torch.no_grad()
def _codes(model: Autoencoder, x: np.ndarray) -> np.ndarray:
    p = next(model.parameters())
    return model.code(torch.from_numpy(x).to(p.device, p.dtype)).float().cpu().numpy()


def top_contexts(model: Autoencoder, x: Rows, n_latents: int = 8, per_latent: int = 5, max_rows: int = 200_000,
                 seed: int = 0) -> list[dict[str, Any]]:
    """For ``n_latents`` latents (seeded, among those that fire) the ``per_latent`` test tokens where each is
    most active, each with its context window: ``[{"latent", "density", "examples": [(tokens, acts, at)]}]``."""
    found = _capture_of(x)
    if found is None:
        return []
    base, global_idx, meta = found
    tokens = ShardRows(base.dir / meta["tokens"])
    t_len = int(meta.get("rows_per_input", 1))
    best_v = np.full((model.code_size, per_latent), -np.inf, np.float32)
    best_i = np.zeros((model.code_size, per_latent), np.int64)
    seen = 0
    for lo, chunk in x.chunks():
        h = _codes(model, chunk[: max_rows - seen])
        rows = global_idx[lo : lo + len(h)]
        for j in np.nonzero((h > ALIVE).any(0))[0]:  # merge this chunk's best into each latent's best
            v = np.concatenate([best_v[j], h[:, j]])
            keep = np.argsort(-v)[:per_latent]
            best_i[j] = np.concatenate([best_i[j], rows])[keep]
            best_v[j] = v[keep]
        seen += len(h)
        if seen >= max_rows:
            break
    firing = np.nonzero(best_v[:, 0] > ALIVE)[0]
    pick = np.sort(np.random.default_rng(seed).choice(firing, size=min(n_latents, len(firing)), replace=False))
    out = []
    for j in pick:
        examples = []
        for row, v in zip(best_i[j], best_v[j]):
            if v <= ALIVE:
                continue
            ctx, pos = divmod(int(row), t_len)
            lo, hi = max(0, pos - WINDOW[0]), min(t_len, pos + WINDOW[1] + 1)
            ids = tokens.read(ctx, ctx + 1).reshape(-1)[lo:hi]
            acts = _codes(model, base.read(ctx * t_len + lo, ctx * t_len + hi).astype(np.float32))[:, j]
            examples.append((ids, acts, pos - lo))
        out.append({"latent": int(j), "examples": examples})
    return out


def _detokenizer(meta: dict):
    """A token-id → text function from the captured model's tokenizer, if its directory has one; else ids."""
    where = Path(str(meta.get("model", "")))
    if where.is_dir() and any((where / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(where, local_files_only=True)
            return lambda i: tok.decode([int(i)])
        except (ImportError, OSError, ValueError):
            pass
    return lambda i: f"[{int(i)}]"


def contexts_html(found: list[dict[str, Any]], meta: dict) -> str:
    """The top-activating contexts as HTML: each token shaded by the latent's activation, the top one boxed."""
    word = _detokenizer(meta)
    parts = []
    for item in found:
        peak = max(float(a.max()) for _, a, _ in item["examples"])
        lines = []
        for ids, acts, at in item["examples"]:
            spans = []
            for k, (i, a) in enumerate(zip(ids, acts)):
                alpha = max(0.0, float(a)) / peak if peak > 0 else 0.0
                box = "outline:1px solid #000;" if k == at else ""
                spans.append(f'<span title="{float(a):.3g}" style="background:rgba(255,120,0,{alpha:.2f});{box}">'
                             f"{html.escape(word(i)).replace(' ', '&nbsp;')}</span>")
            lines.append(f"<div class=\"ctx\">{''.join(spans)} <small>({float(acts[at]):.3g})</small></div>")
        parts.append(f"<h3>latent {item['latent']}</h3>" + "".join(lines))
    return "".join(parts)


def sae_sections(model: Autoencoder, x: Rows | np.ndarray) -> tuple[dict[str, Any], dict[str, Figure], str]:
    """The measures, figures and top-contexts HTML of an SAE's report on test activations ``x``."""
    m = sae_metrics(model, x)
    figs = {"latent_density": density_histogram(m["density"], m["tokens"]), "l0_fvu": l0_fvu(m["l0"], m["fvu"])}
    found = _capture_of(x) if isinstance(x, Rows) else None
    ctx = contexts_html(top_contexts(model, x), found[2]) if found else ""
    measures = {"FVU": m["fvu"], f"L0 (latents > {ALIVE:g} per token)": m["l0"], "dead latents": m["dead_fraction"],
                "dense latents (> 10 % of tokens)": m["dense_fraction"], "test tokens": m["tokens"]}
    return measures, figs, ctx
