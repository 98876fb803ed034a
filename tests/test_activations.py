"""Capturing a network's activations into shards (issue 13): exact, bounded, resumable, from the command line."""

import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from aekit import create, fit
from aekit.evaluation.activations import capture, contexts
from aekit.cli._app import app
from aekit.store.rows import ShardRows, bf16
from aekit.store.shards import ShardWriter

transformers = pytest.importorskip("transformers")  # the sae extra; in the test extra, so CI runs these
transformers.logging.set_verbosity_error()

TEXT = "\n".join(f"line {i}: the quick brown fox jumps over the lazy dog {i % 7} times." for i in range(400))


def tiny_gpt2(seed=0):
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(n_layer=3, n_embd=32, n_head=2, vocab_size=300, n_positions=64,
                                  bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    """A tiny GPT-2 and a byte-level BPE tokenizer trained here, saved as save_pretrained writes them."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    d = tmp_path_factory.mktemp("lm")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(TEXT.splitlines(), trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(d)
    tiny_gpt2().save_pretrained(d)
    (d / "corpus.txt").write_text(TEXT)
    return d


def _all(d):
    rows = ShardRows(d)
    return rows.read(0, rows.n)


def test_capture_equals_the_layer_outputs(tmp_path):
    m = tiny_gpt2()
    ids = torch.randint(0, 300, (6, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        hs = m(ids, output_hidden_states=True).hidden_states  # hs[i + 1]: the output of block i
    for dtype, tdt in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        dirs = capture(m, ["transformer.h.0", "transformer.h.1"], [ids[:4], ids[4:]], tmp_path / dtype,
                       dtype=dtype, rows_per_shard=40)
        for i, name in enumerate(["transformer.h.0", "transformer.h.1"]):
            rows, toks, T = contexts(dirs[name])
            want = hs[i + 1].reshape(-1, 32).to(tdt)
            assert (rows.n, rows.sample_shape, T, len(rows.shards)) == (96, (32,), 16, 2)
            assert rows.dtype == (bf16() if dtype == "bfloat16" else np.float32)
            assert np.array_equal(rows.read(0, 96).astype(np.float32), want.float().numpy())
            assert np.array_equal(toks.read(0, toks.n), ids.numpy())
        meta = json.loads((dirs["transformer.h.1"] / "manifest.json").read_text())["meta"]
        assert meta["model"] == "GPT2LMHeadModel" and meta["layer"] == "transformer.h.1" and meta["text"]


def test_any_module_and_the_forward_pass_stops_after_the_last_layer(tmp_path):
    class Boom(torch.nn.Module):
        def forward(self, x):
            raise AssertionError("ran past the last hooked layer")

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3), Boom())
    xs = [torch.randn(5, 4) for _ in range(4)]
    dirs = capture(net, ["1", "2"], xs, tmp_path / "a", rows_per_shard=7)
    with torch.no_grad():
        assert np.array_equal(_all(dirs["1"]), torch.cat([net[:2](x) for x in xs]).numpy())
        assert np.array_equal(_all(dirs["2"]), torch.cat([net[:3](x) for x in xs]).numpy())
    assert contexts(dirs["1"])[1:] == (None, 1) and not (tmp_path / "a" / "tokens").exists()
    assert capture(net, "2", xs, tmp_path / "b", max_rows=12) and ShardRows(tmp_path / "b" / "2").n == 12


def test_a_stopped_capture_resumes_to_the_same_shards(tmp_path, monkeypatch):
    m = tiny_gpt2()
    ids = torch.randint(0, 300, (20, 8), generator=torch.Generator().manual_seed(1))
    batches = [ids[i : i + 3] for i in range(0, 20, 3)]
    layers = ["transformer.h.0", "transformer.h.2"]
    ref = capture(m, layers, batches, tmp_path / "ref", rows_per_shard=30)

    class Crash(Exception):
        pass

    def crashing(after):
        def inputs():
            for i, b in enumerate(batches):
                if i == after:
                    raise Crash
                yield b
        return inputs()

    capture_dir = tmp_path / "run"
    with pytest.raises(Crash):  # stops between shards
        capture(m, layers, crashing(5), capture_dir, rows_per_shard=30)
    real_write, calls = ShardWriter.write, []

    def write_then_die(self, rows):  # dies inside a flush: one layer's shard written, the other's not
        calls.append(1)
        if len(calls) == 2:
            raise Crash
        real_write(self, rows)

    monkeypatch.setattr(ShardWriter, "write", write_then_die)
    with pytest.raises(Crash):
        capture(m, layers, batches, capture_dir, rows_per_shard=30)
    monkeypatch.setattr(ShardWriter, "write", real_write)
    state = json.loads((capture_dir / "capture.json").read_text())
    assert not state["done"] and state["shards"] == 2 and len(list((capture_dir / layers[0]).glob("shard-*"))) == 3
    capture(m, layers, batches, capture_dir, rows_per_shard=30)
    for name in [*layers, "tokens"]:
        assert np.array_equal(_all(capture_dir / name), _all(tmp_path / "ref" / name)), name
        assert sorted(p.name for p in (capture_dir / name).iterdir()) == \
            sorted(p.name for p in (tmp_path / "ref" / name).iterdir())
    assert ShardRows(ref[layers[0]]).n == 160
    capture(m, layers, crashing(0), capture_dir)  # done: nothing is read again


def test_captured_bfloat16_shards_train_an_autoencoder(tmp_path):
    m = tiny_gpt2()
    ids = torch.randint(0, 300, (32, 16), generator=torch.Generator().manual_seed(2))
    d = capture(m, "transformer.h.1", ids.split(8), tmp_path / "acts", dtype="bfloat16", rows_per_shard=100)
    rows = ShardRows(d["transformer.h.1"])
    x = torch.from_numpy(rows.read(0, rows.n).astype(np.float32))
    a, b = (create("undercomplete", (32,), code_size=8, hidden=[16], likelihood="gaussian") for _ in "ab")
    b.load_state_dict(a.state_dict())
    opts = dict(epochs=2, batch_size=64, val_fraction=0.0, seed=0, progress=False)
    fit(a, x, **opts)
    fit(b, d["transformer.h.1"], **opts)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_capture_errors_name_the_problem(tmp_path):
    m = tiny_gpt2()
    ids = torch.zeros(2, 8, dtype=torch.long)
    with pytest.raises(ValueError, match=r"GPT2LMHeadModel has no submodule 'transformer.h.9'; its submodules: "
                                         r"transformer, transformer.wte"):
        capture(m, "transformer.h.9", [ids], tmp_path / "a")
    with pytest.raises(ValueError, match="dtype must be 'float32', 'fp32', 'bfloat16' or 'bf16', got 'int8'"):
        capture(m, "transformer.h.0", [ids], tmp_path / "a", dtype="int8")
    capture(m, "transformer.h.0", [ids], tmp_path / "a")
    with pytest.raises(ValueError, match=r"holds a capture with other settings \(layers: \['transformer.h.0'\] "
                                         r"there, \['transformer.h.1'\] now\)"):
        capture(m, "transformer.h.1", [ids], tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.txt").write_text("mine")
    with pytest.raises(ValueError, match="exists and is not an aekit capture"):
        capture(m, "transformer.h.0", [ids], tmp_path / "b")
    with pytest.raises(ValueError, match="capture got no inputs"):
        capture(m, "transformer.h.0", [], tmp_path / "c")
    with pytest.raises(ValueError, match=r"layers \['lm_head'\] did not run in _Unused's forward pass"):
        capture(_Unused(), "lm_head", [torch.zeros(2, 3)], tmp_path / "e")


class _Unused(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.used, self.lm_head = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)

    def forward(self, x):
        return self.used(x)


def test_cli_captures_a_saved_model_from_text_and_token_files(lm_dir, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["activations", str(lm_dir), "--layer", "transformer.h.1", "--text",
                              str(lm_dir / "corpus.txt"), "--context", "16", "--batch-size", "4",
                              "--max-tokens", "1000", "--out", str(tmp_path / "acts")])
    assert res.exit_code == 0, res.output
    rows, toks, T = contexts(tmp_path / "acts" / "transformer.h.1")
    assert T == 16 and rows.n == 1008 and toks.n == 63  # whole contexts: 63 · 16 ≥ 1000
    tok = transformers.AutoTokenizer.from_pretrained(lm_dir)
    assert np.array_equal(toks.read(0, 63).reshape(-1), tok(TEXT, add_special_tokens=False)["input_ids"][:1008])
    assert "transformer.h.1: 1,008 tokens × 32 (float32)" in res.output
    lm = transformers.AutoModelForCausalLM.from_pretrained(lm_dir).eval()
    with torch.no_grad():
        want = lm(torch.from_numpy(toks.read(0, 4).astype(np.int64)), output_hidden_states=True).hidden_states[2]
    assert np.allclose(rows.read(0, 64), want.reshape(-1, 32).numpy(), atol=1e-5)
    np.save(tmp_path / "ids.npy", toks.read(0, 10))
    res = runner.invoke(app, ["activations", str(lm_dir), "--layer", "transformer.h.1", "--tokens",
                              str(tmp_path / "ids.npy"), "--dtype", "bfloat16", "--out", str(tmp_path / "t")])
    assert res.exit_code == 0, res.output
    assert np.array_equal(ShardRows(tmp_path / "t" / "transformer.h.1").read(0, 160).astype(np.float32),
                          torch.from_numpy(rows.read(0, 160)).to(torch.bfloat16).float().numpy())
    shutil.copytree(lm_dir, tmp_path / "notok", ignore=shutil.ignore_patterns("tokenizer*"))
    (tmp_path / "short.txt").write_text("the fox")
    for args, msg in (
        (["--text", str(lm_dir / "corpus.txt"), "--tokens", str(tmp_path / "ids.npy")], "exactly one of --text"),
        (["--text", str(lm_dir / "nope.txt")], "file not found"),
        (["--tokens", str(lm_dir / "corpus.txt")], "is not a readable .npy file"),
        (["--text", str(tmp_path / "short.txt")], "short.txt holds 3 tokens, fewer than one context of 128"),
    ):
        res = runner.invoke(app, ["activations", str(lm_dir), "--layer", "transformer.h.1", *args,
                                  "--out", str(tmp_path / "bad")])
        assert res.exit_code == 2 and msg in res.output, res.output
    res = runner.invoke(app, ["activations", str(tmp_path / "notok"), "--layer", "transformer.h.1", "--text",
                              str(lm_dir / "corpus.txt"), "--out", str(tmp_path / "bad2")])
    assert res.exit_code == 2 and "no tokenizer in" in res.output, res.output
    res = runner.invoke(app, ["activations", str(tmp_path), "--layer", "h", "--tokens", str(tmp_path / "ids.npy"),
                              "--out", str(tmp_path / "bad3")])
    assert res.exit_code == 2 and "is not a model directory (no config.json)" in res.output, res.output


def test_from_a_model_to_an_evaluated_sae_in_three_commands(lm_dir, tmp_path):
    runner = CliRunner()
    acts, run = tmp_path / "acts", tmp_path / "run"
    res = runner.invoke(app, ["activations", str(lm_dir), "--layer", "transformer.h.1", "--text",
                              str(lm_dir / "corpus.txt"), "--context", "16", "--out", str(acts)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["train", "--preset", "sae-topk", "--data", str(acts / "transformer.h.1"), "--stream",
                              "--expansion", "2", "--k", "4", "--epochs", "3", "--batch-size", "128",
                              "--out", str(run)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["evaluate", str(run), "--lm", str(lm_dir), "--contexts", "16"])
    assert res.exit_code == 0, res.output
    for what in ("fraction of variance unexplained (FVU)", "L0: mean active latents per token", "dead latents",
                 "dense latents", "CE loss recovered", "KL(clean ‖ SAE spliced)"):
        assert what in res.output, res.output
    assert "mean active code units" not in res.output  # the SAE's own measures, not the generic ones
    res = runner.invoke(app, ["report", str(run)])
    assert res.exit_code == 0, res.output
    page = (run / "report.html").read_text()
    for what in ('alt="latent_density"', 'alt="l0_fvu"', "top-activating contexts", "<h3>latent ", "FVU"):
        assert what in page, what
    assert "&nbsp;quick" in page or "&nbsp;fox" in page  # tokens as text (the captured model's tokenizer)
    res = runner.invoke(app, ["evaluate", str(run), "--lm", str(lm_dir), "--contexts", "0"])
    assert res.exit_code == 2 and "--contexts" in res.output
