"""``aekit activations``: record a language model's activations at named layers into shards to train SAEs on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import numpy as np
import typer

from .._checks import integer
from ..store.rows import NpyRows, ShardRows
from ._app import _fail, app, friendly, out
from ._lazy import lazy_module

# heavy modules (torch), loaded on first use so that `aekit --help` and option checks stay fast
evaluation_activations = lazy_module("aekit.evaluation.activations")
core_model = lazy_module("aekit.core.model")
evaluation_splice = lazy_module("aekit.evaluation.splice")
parts_sae = lazy_module("aekit.parts.sae")

if TYPE_CHECKING:
    import torch

TEXT_BLOCK = 1 << 20  # characters tokenised at a time: a text file of any size in bounded memory


def _transformers():
    try:
        import transformers
    except ImportError:
        _fail("this needs the transformers package: pip install 'aekit[sae]'")
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()  # one line of output per layer, not loading bars
    return transformers


def load_lm(path: Path, device: str = "cpu") -> torch.nn.Module:
    """A Hugging Face model saved with ``save_pretrained`` in ``path`` (never downloaded), in eval mode."""
    tf = _transformers()
    if not (path / "config.json").is_file():
        _fail(f"{path} is not a model directory (no config.json): give a directory written by save_pretrained")
    try:
        model = tf.AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    except ValueError:  # not a causal LM: the bare model
        model = tf.AutoModel.from_pretrained(path, local_files_only=True)
    return model.to(device).eval()


def text_contexts(tokenizer, path: Path, context: int, batch_size: int) -> Iterator[torch.Tensor]:
    """Batches (B, T) of consecutive, non-overlapping contexts of ``context`` tokens of a text file."""
    import torch

    ids: list[int] = []
    batch: list[list[int]] = []
    any_yielded = False
    with open(path, encoding="utf-8", errors="replace") as f:
        while block := f.read(TEXT_BLOCK) + f.readline():  # whole lines: no word cut between blocks
            ids.extend(tokenizer(block, add_special_tokens=False)["input_ids"])
            while len(ids) >= context:
                batch.append(ids[:context])
                del ids[:context]
                if len(batch) == batch_size:
                    yield torch.tensor(batch)
                    batch, any_yielded = [], True
    if batch:
        yield torch.tensor(batch)
    elif not any_yielded:
        _fail(f"{path} holds {len(ids)} tokens, fewer than one context of {context}")


def token_contexts(path: Path, batch_size: int) -> Iterator[torch.Tensor]:
    """Batches of the rows (contexts of token ids) of a ``.npy`` file (N, T), read a batch at a time."""
    import torch


    rows = NpyRows(path)
    if len(rows.sample_shape) != 1 or rows.dtype.kind not in "iu":
        _fail(f"{path} must hold token ids of shape (contexts, tokens), integers; got "
              f"{(rows.n, *rows.sample_shape)} {rows.dtype}")
    for lo in range(0, rows.n, batch_size):
        yield torch.from_numpy(rows.read(lo, min(lo + batch_size, rows.n)).astype(np.int64))


@app.command()
@friendly
def activations(
    model_dir: Annotated[Path, typer.Argument(help="A Hugging Face model directory (save_pretrained).")],
    layer: Annotated[list[str], typer.Option(help="Submodule to record, e.g. transformer.h.3 (repeatable).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory of the capture (resumed if unfinished).")],
    text: Annotated[Optional[Path], typer.Option(help="A UTF-8 text file, tokenised by the model's tokenizer.")] = None,
    tokens: Annotated[Optional[Path], typer.Option(help="A .npy of token ids (contexts, tokens).")] = None,
    context: Annotated[int, typer.Option(help="Tokens per context (with --text).")] = 128,
    batch_size: Annotated[int, typer.Option(help="Contexts per forward pass.")] = 16,
    dtype: Annotated[str, typer.Option(help="float32 or bfloat16.")] = "float32",
    max_tokens: Annotated[Optional[int], typer.Option(help="Stop after this many tokens (rows per layer).")] = None,
    rows_per_shard: Annotated[int, typer.Option(help="Rows per shard file (the memory bound).")] = 65_536,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ...")] = "cpu",
) -> None:
    """Record a model's activations at named layers over a text (or token ids) into shard directories.

    Train a sparse autoencoder on them with: aekit train --data OUT/LAYER --stream --preset ...
    """
    capture = evaluation_activations.capture

    if (text is None) == (tokens is None):
        _fail("give exactly one of --text FILE (tokenised by the model's tokenizer) and --tokens FILE.npy")
    integer(context, "--context")
    integer(batch_size, "--batch-size")
    model = load_lm(model_dir, device)
    if text is not None:
        if not text.is_file():
            _fail(f"file not found: {text}")
        saved = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
        if not any((model_dir / f).is_file() for f in saved):
            _fail(f"no tokenizer in {model_dir}: save one there (save_pretrained) or pass --tokens FILE.npy")
        tok = _transformers().AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        batches = text_contexts(tok, text, context, batch_size)
    else:
        batches = token_contexts(tokens, batch_size)
    dirs = capture(model, layer, batches, out_dir, dtype=dtype, rows_per_shard=rows_per_shard,
                   max_rows=max_tokens, meta={"source": str(text or tokens)})

    for name, d in dirs.items():
        rows = ShardRows(d)
        out.print(f"{name}: {rows.n:,} tokens × {rows.sample_shape[0]} ({rows.dtype}) → {d}",
                  markup=False, highlight=False)


def is_sae(model) -> bool:
    SAEEncoder = parts_sae.SAEEncoder

    return isinstance(model.encoder, SAEEncoder)


def sae_rows(model, x_test) -> tuple[dict[str, float], list[tuple[str, str]]]:
    """The SAE measures of the test activations (streamed): FVU, L0, dead and dense latents."""
    ALIVE = core_model.ALIVE
    sae_metrics = evaluation_splice.sae_metrics

    m = sae_metrics(model, x_test)
    rows = [("fraction of variance unexplained (FVU)", f"{m['fvu']:.4f}"),
            (f"L0: mean active latents per token (value > {ALIVE:g})", f"{m['l0']:.2f}"),
            (f"dead latents (never active on these {m['tokens']:,} tokens)", f"{m['dead_fraction']:.2%}"),
            ("dense latents (active on > 10 % of tokens)", f"{m['dense_fraction']:.2%}")]
    return {k: v for k, v in m.items() if k != "density"}, rows


def ce_rows(model, data: str, lm_dir: Path, n_contexts: int, device: str) -> tuple[dict[str, float], list]:
    """CE loss recovered with the SAE spliced into the layer its activations came from: the capture's
    manifest names the layer and keeps the token contexts; ``n_contexts`` of them (seeded) are scored."""
    import json

    import torch

    contexts = evaluation_activations.contexts
    ce_loss_recovered = evaluation_splice.ce_loss_recovered

    manifest = Path(data) / "manifest.json"
    meta = json.loads(manifest.read_text()).get("meta", {}) if manifest.is_file() else {}
    if not meta.get("layer") or not meta.get("tokens"):
        _fail(f"--lm needs activations captured from token ids by `aekit activations`; {data} does not say which "
              "layer and contexts they came from")
    _, tokens, _ = contexts(data)
    idx = np.sort(np.random.default_rng(0).choice(tokens.n, size=min(n_contexts, tokens.n), replace=False))
    ids = torch.from_numpy(tokens.take(idx).astype(np.int64))
    res = ce_loss_recovered(load_lm(lm_dir, device), meta["layer"], model, ids.split(8))
    return res, [(f"CE loss, clean / SAE spliced / zero-ablated ({meta['layer']}; nats per token)",
                  f"{res['ce_clean']:.4f} / {res['ce_sae']:.4f} / {res['ce_zero']:.4f}"),
                 ("CE loss recovered", f"{res['ce_recovered']:.2%}"),
                 ("KL(clean ‖ SAE spliced), nats per token", f"{res['kl_sae']:.4f}")]
