import json
import math
import os
import signal

import numpy as np
import pytest
import torch

from aekit import TrainConfig, config_for, create, evaluate, fit, load_model, save_model
from aekit.training.checkpoint import load_tensors
from aekit.training.loop import Interrupted
from aekit.training.optim import lr_factor


class Interrupt(Exception):
    pass


def _stop_after(k):
    def cb(epoch, row, model):
        if epoch == k:
            raise Interrupt

    return cb


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _model(seed=0):
    torch.manual_seed(seed)
    return create("undercomplete", (1, 8, 8), code_size=6, hidden=[32])


OPTS = dict(epochs=6, batch_size=50, lr=3e-3, schedule="cosine", warmup_epochs=1, val_fraction=0.2,
            patience=10, grad_clip=5.0, progress=False, optimizer="adamw", weight_decay=1e-3, seed=3)


def test_seeded_runs_are_identical(digits):
    x = digits.train.x[:400]
    a, b = _model(), _model()
    ha = fit(a, x, **OPTS)
    hb = fit(b, x, **OPTS)
    for k, v in _weights(a).items():
        assert torch.equal(v, _weights(b)[k])
    assert ha.rows[-1]["train_loss"] == hb.rows[-1]["train_loss"]


@pytest.mark.parametrize("every", [1, 2])
def test_resume_equals_uninterrupted(digits, tmp_path, every):
    x = digits.train.x[:400]
    full = _model()
    fit(full, x, **OPTS, checkpoint_every=every, run_dir=tmp_path / "full")

    part = _model()
    with pytest.raises(Interrupt):
        fit(part, x, **OPTS, checkpoint_every=every, run_dir=tmp_path / "part", callbacks=[_stop_after(4)])
    # a new process would rebuild the model from scratch; different initial weights must not matter
    resumed = _model(seed=123)
    hist = fit(resumed, x, **OPTS, checkpoint_every=every, run_dir=tmp_path / "part", resume=True)

    assert [r["epoch"] for r in hist.rows] == list(range(1, 7))
    for k, v in _weights(full).items():
        assert torch.equal(v, _weights(resumed)[k]), k
    rows = [json.loads(l) for l in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 7))
    saved = load_model(tmp_path / "part")
    for k, v in _weights(full).items():
        assert torch.equal(v, _weights(saved)[k])


def test_resume_refuses_different_options(digits, tmp_path):
    x = digits.train.x[:200]
    fit(_model(), x, **OPTS, run_dir=tmp_path)
    with pytest.raises(ValueError, match=r"different training options: lr=0.1"):
        fit(_model(), x, **{**OPTS, "lr": 0.1}, run_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match="cannot resume: no trainer.safetensors"):
        fit(_model(), x, **OPTS, run_dir=tmp_path / "empty", resume=True)


def test_metrics_history_written_per_epoch(digits, tmp_path):
    fit(_model(), digits.train.x[:300], epochs=3, progress=False, run_dir=tmp_path)
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for key in ("train_loss", "train_reconstruction", "val_loss", "val_reconstruction", "lr", "samples_per_s"):
        assert all(math.isfinite(r[key]) for r in rows), key
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "train.json").is_file()


def test_early_stopping_restores_best_weights(digits):
    model = _model()
    best = {}

    def keep(epoch, row, m):
        best[epoch] = (row["val_loss"], _weights(m))

    hist = fit(model, digits.train.x[:300], epochs=200, lr=0.05, patience=2, min_delta=1e9, progress=False,
               callbacks=[keep])
    # min_delta is huge: nothing after epoch 1 counts as an improvement
    assert hist.stopped_early and hist.best_epoch == 1 and len(hist.rows) == 3
    for k, v in best[1][1].items():
        assert torch.equal(v, _weights(model)[k])


def test_lr_schedules():
    assert lr_factor(0, 100, 10, "constant") == pytest.approx(0.1)
    assert lr_factor(50, 100, 10, "constant") == 1.0
    assert lr_factor(10, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 100, 10, "cosine") == pytest.approx(0.0)
    assert lr_factor(0, 100, 0, "onecycle") == pytest.approx(1 / 25)
    assert lr_factor(30, 100, 0, "onecycle") == pytest.approx(1.0)
    assert lr_factor(100, 100, 0, "onecycle") == pytest.approx(1e-4)


def test_schedule_reaches_the_optimizer(digits):
    lrs = []
    fit(_model(), digits.train.x[:200], epochs=4, lr=0.01, schedule="cosine", progress=False,
        callbacks=[lambda e, row, m: lrs.append(row["lr"])])
    assert lrs[0] > lrs[1] > lrs[2] > lrs[3] and lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_grad_clip_is_used(digits):
    # with a tiny clip and SGD without momentum every step moves the weights by at most lr * clip
    model = _model()
    before = torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()
    fit(model, digits.train.x[:50], epochs=1, batch_size=50, lr=1.0, optimizer="sgd", momentum=0.0,
        grad_clip=1e-3, val_fraction=0, progress=False)
    after = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    assert (after - before).norm() <= 1e-3 * 1.0001


def test_preset_training_defaults_apply():
    assert config_for(create("linear", (8,), code_size=2)).epochs == 600
    assert config_for(create("linear", (8,), code_size=2), epochs=3).epochs == 3


@pytest.mark.parametrize(
    "opts, message",
    [
        ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
        ({"lr": -1}, "lr must be a finite number > 0"),
        ({"optimizer": "rmsprop"}, "optimizer must be 'adam', 'adamw' or 'sgd', got 'rmsprop'"),
        ({"schedule": "step"}, "schedule must be 'constant', 'cosine' or 'onecycle', got 'step'"),
        ({"val_fraction": 1.0}, r"val_fraction must be in \[0, 1\), got 1.0"),
        ({"patience": 0}, "patience must be None or an integer >= 1"),
        ({"grad_clip": 0}, "grad_clip must be None or a finite number > 0"),
        ({"device": "tpu"}, "device must be"),
        ({"precision": "fp8"}, "precision must be 'fp32' or 'bf16', got 'fp8'"),
        ({"warmup_epochs": 5, "epochs": 5}, r"warmup_epochs must be in \[0, 5\), got 5"),
        ({"nonsense": 1}, "unknown training option"),
        ({"momentum": 0.5}, "momentum=0.5 has no effect here: momentum applies to optimizer='sgd' only"),
        ({"optimizer": "adamw", "momentum": 0.0}, "momentum=0.0 has no effect here"),
        ({"min_delta": 0.01}, "min_delta=0.01 has no effect here: min_delta needs patience"),
    ],
)
def test_bad_training_options(digits, opts, message):
    with pytest.raises(ValueError, match=message):
        fit(_model(), digits.train.x[:50], progress=False, **opts)


@pytest.mark.parametrize(
    "x, message",
    [
        (np.full((10, 64), np.nan, dtype=np.float32), "NaN or inf in 10 sample"),
        (np.concatenate([np.zeros((3, 64)), np.full((1, 64), np.inf)]), "first at row 3"),
        (np.zeros((0, 64)), "empty"),
        (np.zeros((10, 5)), "5 features per sample but the model expects 64"),
        (np.array([["a"] * 64]), "must be numeric"),
        (np.full((10, 64), 3.0), r"Bernoulli likelihood needs data in \[0, 1\]"),
    ],
)
def test_bad_training_data(x, message):
    with pytest.raises(ValueError, match=message):
        fit(_model(), x, epochs=1, progress=False)


def test_cuda_request_without_cuda_is_clear(digits):
    if torch.cuda.is_available():
        pytest.skip("this check is for machines without CUDA")
    with pytest.raises(ValueError, match="CUDA is not available"):
        fit(_model(), digits.train.x[:50], epochs=1, device="cuda", progress=False)


def test_bf16_precision_trains(digits):
    model = _model()
    h = fit(model, digits.train.x[:400], epochs=5, precision="bf16", progress=False)
    assert h.rows[-1]["train_loss"] < h.rows[0]["train_loss"]
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_evaluate_matches_forward(digits):
    model = _model().eval()
    x = torch.from_numpy(digits.test.x)
    res = evaluate(model, x, batch_size=100)
    assert res["loss"] == pytest.approx(model(x).loss.item(), rel=1e-5)


def test_config_object_and_keywords(digits):
    cfg = TrainConfig(epochs=2, progress=False)
    h = fit(_model(), digits.train.x[:100], cfg, epochs=1)
    assert len(h.rows) == 1


@pytest.mark.parametrize("decay_all", [False, True])
def test_weight_decay_pulls_weights_and_leaves_biases_unless_decay_all(decay_all):
    from aekit.training.optim import make_optimizer

    model = _model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = make_optimizer(model, TrainConfig(optimizer="sgd", lr=0.1, weight_decay=0.5, decay_all=decay_all))
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # only the decay moves a parameter
    opt.step()
    for n, p in model.named_parameters():
        shrunk = p.dim() >= 2 or decay_all
        torch.testing.assert_close(p.detach(), before[n] * (1 - 0.1 * 0.5 if shrunk else 1.0), msg=n)
    assert any(p.dim() < 2 for p in model.parameters())


def test_a_run_from_before_decay_all_resumes_as_it_trained():
    from aekit.training.config import as_saved

    assert as_saved({"weight_decay": 0.1}) == {"weight_decay": 0.1, "decay_all": True}
    assert as_saved({"weight_decay": 0.0}) == {"weight_decay": 0.0}
    assert as_saved({"weight_decay": 0.1, "decay_all": False})["decay_all"] is False


def test_evaluate_takes_arrays(digits):
    model = _model().eval()
    res = evaluate(model, digits.test.x[:100])
    assert res["loss"] == pytest.approx(model(torch.from_numpy(digits.test.x[:100])).loss.item(), rel=1e-5)


# option: (candidate, context); ``device``, ``threads`` and ``progress`` only place the work and draw the bar
# (threads: tests/test_threads.py)
TRAIN_ALTERNATIVES = {
    "epochs": (3, {}), "batch_size": (8, {}), "lr": (0.02, {}), "optimizer": ("sgd", {}),
    "weight_decay": (0.1, {}), "decay_all": (True, {"weight_decay": 0.1}), "momentum": (0.5, {"optimizer": "sgd"}), "schedule": ("cosine", {}),
    "warmup_epochs": (1, {}), "val_fraction": (0.2, {}), "patience": (1, {}),
    "min_delta": (1e9, {"patience": 5}), "grad_clip": (0.01, {}), "seed": (1, {}), "precision": ("bf16", {}),
    "checkpoint_every": (0, {}), "max_time": (1e-9, {}), "kl_warmup_epochs": (1, {}),
    "checkpoint_steps": (1, {"checkpoint_every": 0}), "checkpoint_minutes": (1e-9, {"checkpoint_every": 0}),
    "nan_policy": ("skip", {}),
    "shuffle_buffer": (64, {}),  # in-memory data here: an error (streamed data: tests/test_sources.py)
}


def _run_fingerprint(tmp_path, **opts):
    """Trained weights, history, and which files existed after each epoch."""
    run = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    seen = []
    hist = fit(_model(), np.load(tmp_path / "x.npy"), progress=False, run_dir=run,
               callbacks=[lambda e, row, m: seen.append(sorted(p.name for p in run.iterdir()))],
               **{"epochs": 2, **opts})
    rows = [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_s")} for r in hist.rows]
    return load_model(run).state_dict(), (rows, hist.best_epoch, hist.stopped_early, seen)


def test_every_training_option_is_in_the_table():
    from dataclasses import fields

    assert {f.name for f in fields(TrainConfig)} - {"device", "threads", "progress"} == set(TRAIN_ALTERNATIVES)


@pytest.mark.parametrize("option", sorted(TRAIN_ALTERNATIVES))
def test_every_training_option_changes_the_run_or_is_rejected(tmp_path, digits, option):
    np.save(tmp_path / "x.npy", digits.train.x[:200])
    value, context = TRAIN_ALTERNATIVES[option]
    base_w, base = _run_fingerprint(tmp_path, **context)
    try:
        w, other = _run_fingerprint(tmp_path, **{**context, option: value})
    except ValueError as e:
        assert option in str(e)
        return
    assert other != base or any(not torch.equal(w[k], base_w[k]) for k in w), f"{option}={value!r} changed nothing"


# ---------------------------------------------------------------------------- preemption, step checkpoints, NaN


def _at_training_step(model, k, action):
    """Call ``action(out)`` on the k-th training forward (1-based); validation forwards do not count."""
    seen = [0]

    def hook(module, args, out):
        if module.training:
            seen[0] += 1
            if seen[0] == k:
                return action(out)
        return None

    return model.register_forward_hook(hook)


def _preset_model(kind, seed=0):
    torch.manual_seed(seed)
    if kind == "vae":  # the global RNG draws h every step; KL warm-up by step
        return create("vae", (1, 8, 8), code_size=4, hidden=[16]), {"kl_warmup_epochs": 2}
    if kind == "ksparse":  # buffers: dead-unit counters, annealing steps; AuxK
        return create("ksparse", (1, 8, 8), code_size=32, k=4, k_start=12, anneal_steps=10, aux_k=4,
                      dead_after=50, tied=False, likelihood="gaussian"), {}
    return _model(seed), {}


@pytest.mark.parametrize("kind, sig, step", [
    ("undercomplete", signal.SIGTERM, 3), ("undercomplete", signal.SIGUSR1, 8), ("undercomplete", signal.SIGINT, 13),
    ("undercomplete", signal.SIGTERM, 14), ("vae", signal.SIGTERM, 11), ("ksparse", signal.SIGUSR1, 5),
])
def test_a_signal_saves_at_the_next_step_and_resume_is_bit_identical(digits, tmp_path, kind, sig, step):
    """Issue 10.2: SIGTERM / SIGUSR1 / SIGINT at a step inside an epoch (7 steps an epoch; step 14 ends epoch 2)."""
    x = digits.train.x[:400]
    opts = {**OPTS, "checkpoint_every": 2}
    full, extra = _preset_model(kind)
    fit(full, x, **opts, **extra, run_dir=tmp_path / "full")

    part, _ = _preset_model(kind)
    before = signal.getsignal(sig)  # SIG_IGN for SIGINT in a process started in the background
    handle = _at_training_step(part, step, lambda out: os.kill(os.getpid(), sig))
    with pytest.raises(Interrupted, match=f"stopped by {signal.Signals(sig).name} .*aekit train --resume") as e:
        fit(part, x, **opts, **extra, run_dir=tmp_path / "part")
    handle.remove()
    assert e.value.exit_status == 128 + sig
    assert signal.getsignal(sig) == before  # handlers restored
    resumed, _ = _preset_model(kind, seed=99)
    hist = fit(resumed, x, **opts, **extra, run_dir=tmp_path / "part", resume=True)
    assert [r["epoch"] for r in hist.rows] == list(range(1, 7))
    for k, v in _weights(full).items():
        assert torch.equal(v, _weights(resumed)[k]), k
    rows = [json.loads(line) for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    want = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    drop = ("seconds", "samples_per_s")
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows] == \
           [{k: v for k, v in r.items() if k not in drop} for r in want]


def test_step_checkpoints_resume_a_crashed_run_exactly(digits, tmp_path):
    x = digits.train.x[:400]
    full = _model()
    fit(full, x, **OPTS, run_dir=tmp_path / "full")
    part = _model()

    def crash(out):
        raise Interrupt

    _at_training_step(part, 12, crash)
    with pytest.raises(Interrupt):
        fit(part, x, **{**OPTS, "checkpoint_every": 0, "checkpoint_steps": 5}, run_dir=tmp_path / "part")
    meta = load_tensors(tmp_path / "part" / "trainer.safetensors")[1]
    assert (meta["epoch"], meta["position"]["batch"]) == (1, 3)  # step 10 = epoch 2, batch 3 (7 an epoch)
    resumed = _model(seed=5)
    fit(resumed, x, **{**OPTS, "checkpoint_every": 0, "checkpoint_steps": 5}, run_dir=tmp_path / "part", resume=True)
    for k, v in _weights(full).items():
        assert torch.equal(v, _weights(resumed)[k]), k


def _poison(out):
    out.loss = out.loss * float("nan")
    return out


def test_a_non_finite_loss_stops_at_its_step_and_keeps_the_last_checkpoint(digits, tmp_path):
    """Issue 10.5: stopped at the step, named; the checkpoint of epoch 1 untouched; no final model written."""
    x = digits.train.x[:400]
    model = _model()
    _at_training_step(model, 11, _poison)  # epoch 2, step 4
    with pytest.raises(Interrupt):
        fit(model, x, **OPTS, run_dir=tmp_path, callbacks=[_stop_after(1)])
    before = (tmp_path / "trainer.safetensors").read_bytes()
    model = _model()
    _at_training_step(model, 4, _poison)  # resumed at epoch 2: its 4th step
    with pytest.raises(FloatingPointError, match="training loss became nan in epoch 2 at step 4 of 7; the last "
                                                 "checkpoint .* is kept as it was; lower lr, set grad_clip, or pass "
                                                 "nan_policy=.skip."):
        fit(model, x, **OPTS, run_dir=tmp_path, resume=True)
    assert (tmp_path / "trainer.safetensors").read_bytes() == before
    assert not (tmp_path / "model.safetensors").exists()


def test_nan_policy_skip_drops_the_batch_and_counts_it(digits):
    x = digits.train.x[:400]
    model = _model()
    _at_training_step(model, 11, _poison)
    hist = fit(model, x, **OPTS, nan_policy="skip")
    assert [r["skipped_batches"] for r in hist.rows] == [0, 1, 0, 0, 0, 0]
    assert all(math.isfinite(r["train_loss"]) for r in hist.rows)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_non_finite_weights_are_never_saved(digits, tmp_path):
    """Issue 20.1: one huge SGD step makes the weights inf; the run must fail, not report success."""
    model = create("undercomplete", (1, 8, 8), code_size=4, likelihood="gaussian")
    with pytest.raises(FloatingPointError):
        fit(model, digits.train.x[:200], epochs=3, optimizer="sgd", lr=1e38, batch_size=100000, momentum=0.0,
            progress=False, run_dir=tmp_path)
    assert not (tmp_path / "model.safetensors").exists()
    with torch.no_grad():
        model.encoder.linears[0].weight[0, 0] = math.inf
    with pytest.raises(FloatingPointError, match=r"non-finite \(NaN or inf\) values in encoder.linears.0.weight"):
        save_model(model, tmp_path)


def test_step_hooks_weight_terms_see_every_step_and_log():
    from aekit.training.optim import StepHook, Warmup

    class Record(StepHook):
        def __init__(self):
            self.steps = []

        def after_step(self, step, model):
            self.steps.append(step)

    x = np.random.default_rng(0).random((64, 6)).astype(np.float32)
    rec = Record()
    model = create("sparse", (6,), code_size=4, penalty="l1", lam=0.5)
    hist = fit(model, x, epochs=2, batch_size=16, val_fraction=0.0, progress=False, hooks=[Warmup("l1", 6), rec])
    assert rec.steps == list(range(1, 9))
    assert [r["l1_weight"] for r in hist.rows] == [4 / 6, 1.0]
    torch.manual_seed(0)
    out = model(torch.from_numpy(x[:16]), weights=Warmup("l1", 6).weights(3))
    torch.testing.assert_close(out.loss, out.terms["reconstruction"] + 0.5 * out.terms["l1"])


@pytest.mark.parametrize("options, match", [
    ({"decay_all": True}, "option decay_all=True has no effect here: decay_all needs weight_decay > 0"),
    ({"checkpoint_every": 2}, "option checkpoint_every=2 has no effect here: checkpoints are saved in a run dir"),
    ({"checkpoint_steps": 5}, "option checkpoint_steps=5 has no effect here"),
    ({"checkpoint_minutes": 1.0}, "option checkpoint_minutes=1.0 has no effect here"),
])
def test_training_options_that_would_be_ignored_are_refused(options, match):
    """Issue 37.10: decay_all without weight decay and checkpoints without a run directory did nothing."""
    with pytest.raises(ValueError, match=match):
        fit(create("undercomplete", (6,), code_size=2, hidden=[8]), np.random.rand(20, 6), epochs=1,
            progress=False, **options)


def test_kl_warmup_with_beta_zero_is_refused():
    with pytest.raises(ValueError, match="option kl_warmup_epochs=2.0 has no effect here: the KL term is weighted by "
                                         "beta=0"):
        fit(create("vae", (6,), code_size=2, hidden=[8], beta=0.0, likelihood="gaussian"), np.random.rand(20, 6),
            epochs=3, kl_warmup_epochs=2.0, progress=False)
