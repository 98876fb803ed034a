"""Sparse autoencoders on a language model's residual stream: aekit against SAELens, on the same activations.

1. A byte-level BPE tokenizer and a small GPT-2-style model (``--layers``, ``--width``) are trained here on
   an offline corpus: the text and Python source that ship with this Python installation and its packages.
2. ``--tokens`` tokens of the middle layer's output (the residual stream) are captured to bf16 shards with
   ``aekit.evaluation.activations.capture``.
3. For each k: a TopK SAE (``--expansion``× latents) trained one epoch over the activations by aekit
   (``sae-topk``: AuxK, unit-norm decoder, E‖x‖² = d scaling) and by SAELens (``TopKTrainingSAE`` with its own
   ``SAETrainer``, ``normalize_activations="expected_average_only_in"``), each in a fresh process fed the same
   shuffled batches (aekit's stream of the shards), the same batch size and learning rate.
4. Both are measured by the same code on the last 10 % of the tokens (never trained on): FVU, L0, latents
   silent on all of them, and CE loss recovered on held-out contexts; dead latents as the issue defines them
   (no activation in the last 10 M tokens: the activations' last 10 M rows, held-out ones included); tokens/s
   of training and the process's peak RSS.

    python benchmarks/sae.py [--tokens 20000000] [--ks 16,32,64] [--minutes-lm 5]

Everything is written under a temporary directory that is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def corpus(limit_bytes: int) -> str:
    """Text and source files of the standard library and installed packages, in a fixed order."""
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])]
    parts, size = [], 0
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.suffix not in (".py", ".txt", ".rst", ".md") or not path.is_file():
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            parts.append(text)
            size += len(text)
            if size >= limit_bytes:
                return "\n".join(parts)
    return "\n".join(parts)


def build_lm(work: Path, text: str, args) -> Path:
    """Train the tokenizer and the language model; save both with save_pretrained into ``work/lm``."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator((text[i : i + 100_000] for i in range(0, 20_000_000, 100_000)), trainers.BpeTrainer(
        vocab_size=args.vocab, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    lm_dir = work / "lm"
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok)
    fast.save_pretrained(lm_dir)
    blocks = [text[i : i + 1_000_000] for i in range(0, len(text), 1_000_000)]
    ids = np.concatenate([np.array(e.ids, dtype=np.int32) for e in tok.encode_batch(blocks)])
    np.save(work / "ids.npy", ids)
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=args.layers, n_embd=args.width, n_head=4, n_positions=args.context,
                                  vocab_size=args.vocab, bos_token_id=0, eos_token_id=0)
    lm = transformers.GPT2LMHeadModel(cfg)
    opt = torch.optim.AdamW(lm.parameters(), lr=1e-3, weight_decay=0.1)
    train = ids[: int(len(ids) * 0.9)]
    rng = np.random.default_rng(0)
    t0, step = time.perf_counter(), 0
    while time.perf_counter() - t0 < args.minutes_lm * 60:
        starts = rng.integers(0, len(train) - args.context, 32)
        batch = torch.from_numpy(np.stack([train[s : s + args.context] for s in starts]).astype(np.int64))
        loss = lm(batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
    lm.save_pretrained(lm_dir)
    print(f"language model: {args.layers} layers × {args.width}, {len(ids):,} corpus tokens, {step} steps in "
          f"{args.minutes_lm} min, last train loss {loss.item():.3f} nats/token", flush=True)
    return lm_dir


CHILD = r"""
import itertools, json, sys, time
from pathlib import Path
import numpy as np, torch
import aekit
from aekit.evaluation.activations import contexts
from aekit.store.rows import ShardRows, SubsetRows
from aekit.training.sources import Stream
from aekit.evaluation.splice import ce_loss_recovered
from aekit.cli.interp import load_lm

lib, acts, lm_dir, k, expansion, batch, lr, n_train, options, seed, test_start, init = sys.argv[1:13]
k, expansion, batch, lr, n_train, seed = int(k), int(expansion), int(batch), float(lr), int(n_train), int(seed)
test_start = int(test_start)
rows = ShardRows(acts)
d = rows.sample_shape[0]
train = SubsetRows(rows, np.arange(n_train))
test = SubsetRows(rows, np.arange(test_start, rows.n))
torch.manual_seed(seed)  # the SAE's initialisation; the batches below are the same for every seed

def stream():  # the same shuffled batches for both libraries: aekit's stream of the shards
    src = Stream(rows, np.arange(n_train), torch.device("cpu"), seed=0)
    for xb, _ in src.batches(1, torch.Generator().manual_seed(0), batch):
        yield xb

t0 = time.perf_counter()
if lib == "aekit":
    from dataclasses import fields
    from aekit.training.optim import TrainConfig
    opts, trainer = json.loads(options), {f.name for f in fields(TrainConfig)}
    sae = aekit.create("sae-topk", (d,), expansion=expansion, k=k, **{o: v for o, v in opts.items() if o not in trainer})
    if init == "saelens":  # SAELens's draw for the same seed: kaiming-uniform rows of W_dec (d_sae, d_in), norm 0.1
        torch.manual_seed(seed)
        with torch.no_grad():
            w = torch.nn.init.kaiming_uniform_(torch.empty(expansion * d, d))
            w /= w.norm(dim=1, keepdim=True)
            sae.decoder.parametrizations.weight.original.copy_(w.t() * 0.1)
            sae.encoder.weight.copy_(w * 0.1)
    aekit.fit(sae, train, epochs=1, batch_size=batch, lr=lr, val_fraction=0.0, progress=False,
              **{o: v for o, v in opts.items() if o in trainer})
    sae.eval()
    enc = lambda x: sae.code(x)
    dec = lambda h: sae.decode(h)
else:
    from sae_lens import SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    cfg = TopKTrainingSAEConfig(d_in=d, d_sae=expansion * d, k=k, normalize_activations="expected_average_only_in")
    tcfg = SAETrainerConfig(total_training_samples=n_train // batch * batch, train_batch_size_samples=batch, lr=lr,
                            lr_end=lr, n_batches_for_norm_estimate=20, logger=LoggingConfig(log_to_wandb=False))
    norm = list(itertools.islice(stream(), 20))  # the scale estimate: 20 batches, then training
    def provider():
        yield from norm
        yield from stream()
    sae = SAETrainer(cfg=tcfg, sae=TopKTrainingSAE(cfg), data_provider=provider()).fit()
    sae.eval()
    enc = lambda x: sae.encode(x)
    dec = lambda h: sae.decode(h)
seconds = time.perf_counter() - t0

@torch.no_grad()
def measure():
    err = sq = l0 = 0.0
    s = torch.zeros(d, dtype=torch.float64)
    fires = torch.zeros(expansion * d, dtype=torch.float64)
    n = 0
    for _, x in test.chunks():
        x = torch.from_numpy(x)
        h = enc(x)
        r = dec(h)
        err += float((x - r).double().square().sum()); sq += float(x.double().square().sum())
        s += x.double().sum(0); on = h > 1e-3; l0 += float(on.sum()); fires += on.sum(0).double(); n += len(x)
    # the issue's dead latents: no activation in the last 10 M tokens (here the activations' last 10 M rows, the
    # held-out ones included, read by the trained SAE), or in all of them if there are fewer
    window = SubsetRows(rows, np.arange(max(0, rows.n - 10_000_000), rows.n))
    fires10 = torch.zeros(expansion * d, dtype=torch.float64)
    for _, x in window.chunks():
        fires10 += (enc(torch.from_numpy(x)) > 1e-3).sum(0).double()
    return {"fvu": err / (sq - float(s.square().sum()) / n), "l0": l0 / n, "dead": float((fires10 == 0).double().mean()),
            "silent_test": float((fires == 0).double().mean()), "dead_window": len(window)}

res = {"lib": lib, "k": k, "tokens_per_s": n_train / seconds, "train_seconds": seconds, **measure()}
_, tokens, T = contexts(acts)
first = test_start // T + 1  # contexts wholly after the training tokens
ids = torch.from_numpy(tokens.read(first, min(tokens.n, first + 128)).astype(np.int64))
layer = json.loads((Path(acts) / "manifest.json").read_text())["meta"]["layer"]
ce = ce_loss_recovered(load_lm(Path(lm_dir)), layer, lambda x: dec(enc(x)), ids.split(16))
res.update(ce_recovered=ce["ce_recovered"], kl=ce["kl_sae"], ce_clean=ce["ce_clean"], ce_sae=ce["ce_sae"], ce_zero=ce["ce_zero"])
res["peak_rss_mb"] = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024
print(json.dumps(res))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=20_000_000)
    ap.add_argument("--ks", default="16,32,64")
    ap.add_argument("--expansion", type=int, default=16)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--minutes-lm", type=float, default=5)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--corpus-mb", type=float, default=120)
    ap.add_argument("--train-tokens", type=int, default=0,
                    help="train on the first N tokens only (0: 90 %% of them); the test tokens stay the last 10 %%")
    ap.add_argument("--aekit-options", default="{}", help='more sae-topk and trainer options, JSON, e.g. \'{"aux_coef": 1, "grad_clip": 1}\'')
    ap.add_argument("--seed", type=int, default=0, help="the SAEs' initialisation (the batch order stays fixed)")
    ap.add_argument("--aekit-init", choices=("aekit", "saelens"), default="aekit",
                    help="saelens: start aekit's SAE from SAELens's initial weights for the same seed (a diagnostic: "
                         "the two trainers from one start)")
    ap.add_argument("--libs", default="aekit,saelens", help="which libraries to train (comma-separated)")
    ap.add_argument("--work", type=Path, help="keep the model and activations in this directory (reused when it "
                    "already holds them: e.g. --libs aekit to train again on the same activations); default: "
                    "a temporary directory, deleted at the end")
    args = ap.parse_args()
    from aekit.evaluation.activations import capture
    from aekit.cli.interp import load_lm
    from aekit.store.rows import ShardRows

    work = args.work or Path(tempfile.mkdtemp(prefix="aekit-sae-"))
    try:
        if (work / "lm" / "config.json").exists():
            lm_dir = work / "lm"
            print(f"reusing the language model in {lm_dir}", flush=True)
        else:
            text = corpus(int(args.corpus_mb * 2**20))
            lm_dir = build_lm(work, text, args)
            del text
        ids = np.load(work / "ids.npy")
        n_ctx = len(ids) // args.context
        contexts = ids[: n_ctx * args.context].reshape(n_ctx, args.context)
        need = -(-args.tokens // args.context)
        reps = -(-need // n_ctx)  # the corpus repeats if it holds fewer tokens than asked for
        layer = f"transformer.h.{args.layers // 2 - 1}"
        t = time.perf_counter()
        n = args.tokens
        if (work / "acts" / layer / "manifest.json").exists():  # kept with --work: train on the same activations
            dirs = {layer: work / "acts" / layer}
            n = ShardRows(dirs[layer]).n
        else:
            batches = (torch.from_numpy(np.tile(contexts, (reps, 1))[i : i + 64].astype(np.int64))
                       for i in range(0, need, 64))
            dirs = capture(load_lm(lm_dir), layer, batches, work / "acts", dtype="bfloat16", max_rows=args.tokens)
        print(f"captured {n:,} tokens of {layer} ({args.width} dims, bf16) in {time.perf_counter() - t:.0f} s "
              f"(corpus: {n_ctx * args.context:,} tokens{'; repeated' if reps > 1 else ''})", flush=True)
        n_train = int(n * 0.9) // args.context * args.context
        test_start = n_train
        if args.train_tokens:
            n_train = min(n_train, args.train_tokens // args.context * args.context)
        results = []
        for k in (int(v) for v in args.ks.split(",")):
            for lib in args.libs.split(","):
                cmd = [sys.executable, "-c", CHILD, lib, str(dirs[layer]), str(lm_dir), str(k), str(args.expansion),
                       str(args.batch_size), str(args.lr), str(n_train), args.aekit_options, str(args.seed), str(test_start), args.aekit_init]
                res = subprocess.run(cmd, capture_output=True, text=True, timeout=7200,
                                     env={**os.environ, "TQDM_DISABLE": "1"})
                if res.returncode != 0:
                    sys.exit(f"{lib} k={k} failed:\n{res.stderr[-3000:]}")
                results.append(json.loads(res.stdout.strip().splitlines()[-1]))
                print(results[-1], flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nTopK SAEs, {args.expansion}× ({args.expansion * args.width} latents) on {layer} of a {args.layers}-layer "
          f"× {args.width} GPT-2-style model; one epoch over {n_train:,} tokens, batch {args.batch_size}, "
          f"Adam {args.lr:g}; measured on the last {n - test_start:,} tokens and 128 held-out contexts\n")
    print("| k | library | FVU | L0 | dead latents (10 M tokens) | silent on the held-out tokens | CE loss recovered | "
          "KL (nats/token) | tokens/s | peak RSS | aekit speed ÷ SAELens |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    pairs = zip(results[::2], results[1::2]) if args.libs == "aekit,saelens" else ((r, None) for r in results)
    for a, b in pairs:
        for r in (a, b) if b else (a,):
            ratio = f"{a['tokens_per_s'] / b['tokens_per_s']:.2f}×" if b and r is a else ""
            print(f"| {r['k']} | {'aekit' if r['lib'] == 'aekit' else 'SAELens'} | {r['fvu']:.5f} | {r['l0']:.1f} | "
                  f"{r['dead']:.2%} | {r['silent_test']:.2%} | {r['ce_recovered']:.2%} | {r['kl']:.4f} | {r['tokens_per_s']:,.0f} | "
                  f"{r['peak_rss_mb']:,.0f} MB | {ratio} |")


if __name__ == "__main__":
    main()
