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
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock
from safetensors.torch import load_file

SCRIPT = textwrap.dedent('''
    import json, os, sys
    import numpy as np, torch, aekit
    # several runs, one after another, in the same processes (and process group): each a fresh model and seed
    data = sys.argv[1]
    for run, extra in json.loads(sys.argv[2]):
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


def fit_runs(tmp_path, nproc: int, *runs: tuple[str, dict]) -> subprocess.CompletedProcess:
    """The runs ``(name, fit options)`` one after another in one launch of ``nproc`` processes."""
    return launch([str(tmp_path / "fit.py"), str(tmp_path / "x.npy"), json.dumps(runs)], nproc, tmp_path)


def close(a, b, rel=1e-5) -> bool:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return wa.keys() == wb.keys() and all(
        float((wa[k] - wb[k]).abs().max()) <= rel * float(wa[k].abs().max()) for k in wa)


# The runs every test below reads, by launch, in this order: a torchrun launch costs each process ~3 s of imports
# (torch, and torch._dynamo on the optimiser's first use), so the runs of one process count share a launch. A
# resume's second half runs in a later launch than its first half, on the other number of processes.
LAUNCHES = [
    (1, [("one", {}),  # the 1-process reference, same global batch and seed
         ("itq-one", {"preset": "hashing"}), ("resume-1-2", {"max_time": 1e-9})]),
    (2, [("resume-1-2", {"resume": True}), ("two", {}), ("two-stream", {"stream": True}),
         ("drop-2-True", {"stream": True, "batch_size": 479, "schedule": "constant"}),
         ("itq-two", {"preset": "hashing"}), ("resume-2-1", {"max_time": 1e-9})]),
    (3, [("drop-3-False", {"stream": False, "batch_size": 479, "schedule": "constant"})]),
    (1, [("resume-2-1", {"resume": True})]),
]


@pytest.fixture(scope="session")
def work(tmp_path_factory, worker_id) -> tuple[Path, dict[str, tuple[subprocess.CompletedProcess, int]]]:
    """The folder of the runs above and each run's launch, made once per test session: the first pytest-xdist
    worker to ask launches them while the others wait on a lock; each launch with the rows each of its runs logged."""
    root = tmp_path_factory.getbasetemp()
    root = root.parent if worker_id != "master" else root  # under xdist, the session's folder the workers share
    tmp, done = root / "dist-runs", root / "dist-runs.json"
    with FileLock(str(root / "dist-runs.lock")):
        if not done.exists():
            from aekit import load

            tmp.mkdir(exist_ok=True)
            (tmp / "fit.py").write_text(SCRIPT)
            np.save(tmp / "x.npy", load("digits").train.x[:600])
            launches = {}
            for nproc, runs in LAUNCHES:
                res = fit_runs(tmp, nproc, *runs)
                for name, extra in runs:
                    metrics = tmp / name / "metrics.jsonl"
                    logged = len(metrics.read_text().splitlines()) if metrics.exists() else 0
                    launches[f"{name}:{'then' if extra.get('resume') else 'first'}"] = [res.returncode, res.stderr, logged]
            done.write_text(json.dumps(launches))
    return tmp, {k: (subprocess.CompletedProcess([], rc, "", err), logged)
                 for k, (rc, err, logged) in json.loads(done.read_text()).items()}


def ran(work, name: str, half: str = "first") -> Path:
    """The folder of run ``name``, once its launch has ended well."""
    tmp, launches = work
    res, _ = launches[f"{name}:{half}"]
    assert res.returncode == 0, res.stderr
    return tmp / name


def test_two_processes_follow_one_process(work):
    one, two = ran(work, "one"), ran(work, "two")
    assert close(one, two)
    rows1 = [json.loads(r) for r in (one / "metrics.jsonl").read_text().splitlines()]
    rows2 = [json.loads(r) for r in (two / "metrics.jsonl").read_text().splitlines()]
    for a, b in zip(rows1, rows2):  # the logged losses are reduced over both ranks
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-5)


@pytest.mark.parametrize("nproc, stream", [(2, True), (3, False)])
def test_a_last_batch_with_fewer_rows_than_processes_is_dropped_on_every_rank(work, nproc, stream):
    """Issue 37.12: 480 training rows in batches of 479 leave a last global batch of 1 row; a rank with no row
    reported "training loss became nan" and the run aborted. 479 rows split over 3 processes unevenly too."""
    from aekit.training.checkpoint import load_tensors

    run = ran(work, f"drop-{nproc}-{stream}")
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(np.isfinite(r["train_loss"]) for r in rows)
    _, meta = load_tensors(run / "trainer.safetensors")
    assert meta["sched"]["last_epoch"] == 3  # one step an epoch: the 1-row batch dropped on every rank alike


def test_streamed_data_on_two_processes(work):
    assert close(ran(work, "one"), ran(work, "two-stream"))


def test_a_code_fitted_after_training_follows_one_process(work):
    """The hashing preset's ITQ rotation, fitted to the training codes at the end, is the same on two processes."""
    assert close(ran(work, "itq-one"), ran(work, "itq-two"), rel=1e-4)
    rotation = load_file(ran(work, "itq-two") / "model.safetensors")["encoder.final.rotation"]
    assert not np.allclose(rotation.numpy(), np.eye(6))  # fitted, not the identity it starts from


@pytest.mark.parametrize("first, then", [(2, 1), (1, 2)])
def test_resume_on_another_number_of_processes(work, first, then):
    name = f"resume-{first}-{then}"
    ran(work, name), ran(work, name, "then")  # both launches ended well
    first, then_ = (work[1][f"{name}:{half}"][1] for half in ("first", "then"))
    assert (first, then_) == (1, 3)  # stopped after epoch 1 (max_time), checkpoint saved; resumed to the end
    assert close(ran(work, "one"), ran(work, name, "then"))


def test_a_failing_rank_ends_the_run_with_its_message(work):
    res = fit_runs(work[0], 2, ("fails", {"fail_rank": 1}))
    assert res.returncode != 0
    assert "rank 1 failed on purpose in epoch 1" in res.stderr


def test_cli_under_torchrun(work):
    work = work[0]
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
