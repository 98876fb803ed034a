"""Training on several processes with torch.distributed (issue 12): gloo on CPU, launched by torchrun.

Every test starts its processes with ``torchrun --standalone`` (a free port of its own), a timeout,
and kills the whole process group if it overstays.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from safetensors.torch import load_file

SCRIPT = textwrap.dedent('''
    import json, os, sys
    import numpy as np, torch, aekit
    data, run, extra = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    x = data if extra.pop("stream", False) else np.load(data)
    torch.manual_seed(0)
    m = aekit.create(extra.pop("preset", "undercomplete"), (1, 8, 8), code_size=6, hidden=[32])
    opts = dict(epochs=3, batch_size=64, lr=3e-3, schedule="cosine", val_fraction=0.2, seed=3, progress=False)
    opts.update(extra)
    resume = opts.pop("resume", False)
    fail = opts.pop("fail_rank", None)

    def boom(epoch, row, model):
        if os.environ.get("RANK") == str(fail):
            raise RuntimeError(f"rank {fail} failed on purpose in epoch {epoch}")

    aekit.fit(m, x, run_dir=run, resume=resume, callbacks=[boom], **opts)
''')


def launch(args: list[str], nproc: int, tmp_path, timeout: float = 240) -> subprocess.CompletedProcess:
    """``torchrun --standalone`` with ``nproc`` processes (or plain python for 1); the group is killed on timeout."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] \
        if nproc > 1 else [sys.executable]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen(cmd + args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True, env=env)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise
    return subprocess.CompletedProcess(cmd + args, p.returncode, out, err)


def fit_run(tmp_path, name: str, nproc: int, **extra) -> subprocess.CompletedProcess:
    res = launch([str(tmp_path / "fit.py"), str(tmp_path / "x.npy"), str(tmp_path / name), json.dumps(extra)],
                 nproc, tmp_path)
    return res


def close(a, b, rel=1e-5) -> bool:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return wa.keys() == wb.keys() and all(
        float((wa[k] - wb[k]).abs().max()) <= rel * float(wa[k].abs().max()) for k in wa)


@pytest.fixture(scope="module")
def work(tmp_path_factory, digits=None):
    from aekit import load

    tmp = tmp_path_factory.mktemp("dist")
    (tmp / "fit.py").write_text(SCRIPT)
    np.save(tmp / "x.npy", load("digits").train.x[:600])
    assert fit_run(tmp, "one", 1).returncode == 0  # the 1-process reference, same global batch and seed
    return tmp


def test_two_processes_follow_one_process(work):
    res = fit_run(work, "two", 2)
    assert res.returncode == 0, res.stderr
    assert close(work / "one", work / "two")
    rows1 = [json.loads(r) for r in (work / "one" / "metrics.jsonl").read_text().splitlines()]
    rows2 = [json.loads(r) for r in (work / "two" / "metrics.jsonl").read_text().splitlines()]
    for a, b in zip(rows1, rows2):  # the logged losses are reduced over both ranks
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-5)


@pytest.mark.parametrize("nproc, stream", [(2, True), (3, False)])
def test_a_last_batch_with_fewer_rows_than_processes_is_dropped_on_every_rank(work, nproc, stream):
    """Issue 37.12: 480 training rows in batches of 479 leave a last global batch of 1 row; a rank with no row
    reported "training loss became nan" and the run aborted. 479 rows split over 3 processes unevenly too."""
    from aekit.training.checkpoint import load_tensors

    name = f"drop-{nproc}-{stream}"
    res = fit_run(work, name, nproc, stream=stream, batch_size=479, schedule="constant")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(r) for r in (work / name / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(np.isfinite(r["train_loss"]) for r in rows)
    _, meta = load_tensors(work / name / "trainer.safetensors")
    assert meta["sched"]["last_epoch"] == 3  # one step an epoch: the 1-row batch dropped on every rank alike


def test_streamed_data_on_two_processes(work):
    res = fit_run(work, "two-stream", 2, stream=True)
    assert res.returncode == 0, res.stderr
    assert close(work / "one", work / "two-stream")


def test_a_code_fitted_after_training_follows_one_process(work):
    """The hashing preset's ITQ rotation, fitted to the training codes at the end, is the same on two processes."""
    for name, nproc in [("itq-one", 1), ("itq-two", 2)]:
        res = fit_run(work, name, nproc, preset="hashing")
        assert res.returncode == 0, res.stderr
    assert close(work / "itq-one", work / "itq-two", rel=1e-4)
    rotation = load_file(work / "itq-two" / "model.safetensors")["encoder.final.rotation"]
    assert not np.allclose(rotation.numpy(), np.eye(6))  # fitted, not the identity it starts from


@pytest.mark.parametrize("first, then", [(2, 1), (1, 2)])
def test_resume_on_another_number_of_processes(work, first, then):
    name = f"resume-{first}-{then}"
    res = fit_run(work, name, first, max_time=1e-9)
    assert res.returncode == 0, res.stderr  # stops after epoch 1, checkpoint saved
    assert len((work / name / "metrics.jsonl").read_text().splitlines()) == 1
    res = fit_run(work, name, then, resume=True)
    assert res.returncode == 0, res.stderr
    assert close(work / "one", work / name)


def test_a_failing_rank_ends_the_run_with_its_message(work):
    res = fit_run(work, "fails", 2, fail_rank=1)
    assert res.returncode != 0
    assert "rank 1 failed on purpose in epoch 1" in res.stderr


def test_cli_under_torchrun(work):
    args = ["-m", "aekit", "train", "--hidden", "32", "--code-size", "6", "--epochs", "2", "--quiet"]
    res = launch(args + ["--out", "cli2"], 2, work)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("saved to cli2") == 1  # rank 0 reports
    assert launch(args + ["--out", "cli1"], 1, work).returncode == 0
    assert close(work / "cli1", work / "cli2")
    res = launch(args, 2, work)
    assert res.returncode != 0 and "give --out when training on several processes" in res.stderr


def test_collective_tensors_stay_held_until_only_python_holds_them():
    """The exit crash's guard (aekit.training.dist._hold): a tensor another owner still holds (as a gloo worker does for a
    moment after the wait returns) stays referenced from Python; once only Python holds it, it is let go."""
    import torch

    from aekit.training import dist

    dist._HELD.clear()
    a, b = torch.ones(3), torch.zeros(2)
    worker = a.view(3)  # a second owner of a's TensorImpl, like the worker's reference
    dist._hold(a), dist._hold(b)
    del a, b
    dist._hold(torch.ones(1))  # each new hold prunes: b had only Python left
    assert len(dist._HELD) == 2 and dist._HELD[0] is worker._base
    del worker
    dist._destroy(wait_s=5.0)  # returns at once: nothing is held elsewhere any more
    assert dist._HELD == []
