"""The run directory: its files (Run), and its lock: one writer at a time, never blocked by a dead one; atomic writes."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from aekit.store.atomic import write_json
from aekit.store.run import HOLDER, RunLocked, lock

HOLD = """
import sys, time
from aekit.store.run import lock
with lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    """A second process that holds the lock of ``tmp_path/run`` until killed."""
    run = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
        yield run, p
    finally:
        p.kill()
        p.wait(timeout=30)


def test_a_second_writer_is_refused_with_the_holders_pid(holder):
    run, p = holder
    with pytest.raises(RunLocked, match=rf"run directory {run} is in use by process {p.pid} on "):
        with lock(run):
            pass
    assert json.loads((run / HOLDER).read_text())["pid"] == p.pid


def test_a_lock_left_by_a_killed_process_never_blocks(holder):
    run, p = holder
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    with lock(run):
        assert json.loads((run / HOLDER).read_text())["pid"] == os.getpid()


def test_the_lock_is_reentrant_in_one_process(tmp_path):
    with lock(tmp_path / "r"):
        with lock(tmp_path / "r"):
            pass
        with lock(tmp_path / "other"):
            pass


def test_cli_writers_are_refused_and_readers_are_not(holder, tmp_path):
    from typer.testing import CliRunner

    from aekit.cli._app import app

    run, p = holder
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--epochs", "1", "--quiet", "--out", str(run)])
    assert res.exit_code == 2 and f"is in use by process {p.pid}" in res.stderr, res.output
    # a finished run copied under the lock: resuming it is refused, reading commands work
    done = tmp_path / "done"
    assert runner.invoke(app, ["train", "--epochs", "1", "--quiet", "--out", str(done)]).exit_code == 0
    for f in done.iterdir():
        if not f.name.startswith(".aekit"):
            (run / f.name).write_bytes(f.read_bytes())
    res = runner.invoke(app, ["train", "--resume", str(run)])
    assert res.exit_code == 2 and f"is in use by process {p.pid}" in res.stderr, res.output
    assert runner.invoke(app, ["evaluate", str(run)]).exit_code == 0
    np.save(tmp_path / "x.npy", np.zeros((3, 64), np.float32))
    assert runner.invoke(app, ["encode", str(run), str(tmp_path / "x.npy"), "--out", str(tmp_path / "c.npy")]).exit_code == 0
    res = runner.invoke(app, ["report", str(run)])
    assert res.exit_code == 2 and "is in use" in res.stderr


def test_unfinished_atomic_writes_are_removed_and_modes_follow_the_umask(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "model.safetensors123.tmp").write_bytes(b"")  # a write cut short by kill -9
    with lock(run):
        assert not list(run.glob("*.tmp"))
        write_json(run / "x.json", {"a": 1})
    old = os.umask(0o022)
    os.umask(old)
    assert (run / "x.json").stat().st_mode & 0o777 == 0o666 & ~old


def test_an_unwritable_run_directory_is_one_clear_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("not a directory")
    with pytest.raises(ValueError, match="cannot create the run directory"):
        with lock(f / "run"):
            pass


def test_run_names_reads_and_writes_its_files_and_only_the_writer_writes(tmp_path):
    from aekit.store.run import Run

    run = Run(tmp_path / "r")
    run.path.mkdir()
    assert not run.started() and run.metrics() == [] and run.evaluation() == {}
    run.write_json(Run.TRAIN, {"train": {"epochs": 1}, "model": None})
    run.write_json(Run.DATA, {"data": "digits"})
    run.write_metrics([{"epoch": 1}])
    run.write_metrics([{"epoch": 2}], append=True)
    run.write_text(Run.CONFIG, "seed = 0\n")
    assert run.started() and run.metrics() == [{"epoch": 1}, {"epoch": 2}]
    assert run.data_spec() == {"data": "digits", "data_dir": None, "seed": 0, "binarize": False, "stream": False,
                               "window": None, "stride": 1, "train_steps": None}
    assert run.train_meta()["train"] == {"epochs": 1}
    other = Run(run.path, writes=False)  # another rank of a distributed run: writes nothing
    other.write_json(Run.EVALUATION, {"x": 1})
    other.write_metrics([])
    other.clear()
    assert not run.file(Run.EVALUATION).exists() and len(run.metrics()) == 2
    (run.path / "loss.png").write_text("")
    (run.path / "mine.txt").write_text("kept")
    run.clear()
    assert sorted(p.name for p in run.path.iterdir()) == ["mine.txt"]


@pytest.mark.parametrize("name, content, match", [
    ("data.json", '{"data": 3}', "corrupted file .*data.json: expected 'data'"),
    ("data.json", '{"data": "x", "seed": -1}', "corrupted file .*data.json"),
    ("train.json", '{"train": {}}', "corrupted file .*train.json: expected the keys 'train' and 'model'"),
    ("train.json", "{not json", "corrupted file .*train.json: JSONDecodeError"),
])
def test_run_files_that_are_damaged_are_named(tmp_path, name, content, match):
    from aekit.store.run import Run

    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=match):
        Run(tmp_path).data_spec() if name == "data.json" else Run(tmp_path).train_meta()
    with pytest.raises(ValueError, match="file not found: .*evaluation.json"):
        Run(tmp_path).read("evaluation.json")


def _cli(*args):
    from typer.testing import CliRunner

    from aekit.cli._app import app

    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("name", [HOLDER, ".aekit.lock", "metrics.jsonl", "model.safetensors", "loss.png"])
def test_a_symbolic_link_in_a_run_directory_is_refused_and_its_target_never_written(tmp_path, name):
    run, victim = tmp_path / "run", tmp_path / "victim.txt"
    run.mkdir()
    victim.write_text("precious")
    (run / name).symlink_to(victim)
    res = _cli("train", "--epochs", 2, "--code-size", 4, "--hidden", 16, "--quiet", "--out", run)
    assert res.exit_code == 2, res.output
    assert f"run directory {run} holds symbolic links ({name})" in res.stderr
    assert victim.read_text() == "precious" and not (run / "train.json").exists()


def test_metrics_are_appended_through_no_link_and_a_torn_last_line_is_left_out(tmp_path):
    from aekit.store.run import Run

    run = Run(tmp_path)
    run.write_metrics([{"epoch": 1}])
    (tmp_path / "elsewhere.jsonl").write_text("")
    with open(run.file(Run.METRICS), "a") as f:
        f.write('{"epoch": 2, "lo')  # a kill inside an append
    assert run.metrics() == [{"epoch": 1}]
    run.file(Run.METRICS).unlink()
    run.file(Run.METRICS).symlink_to(tmp_path / "elsewhere.jsonl")
    with pytest.raises(ValueError, match="metrics.jsonl is a symbolic link"):
        run.write_metrics([{"epoch": 3}], append=True)
    assert (tmp_path / "elsewhere.jsonl").read_text() == ""
    run.write_metrics([{"epoch": 1}])  # a whole rewrite replaces the link itself, never its target
    assert not run.file(Run.METRICS).is_symlink() and (tmp_path / "elsewhere.jsonl").read_text() == ""


def test_an_overwrite_killed_while_clearing_is_finished_before_the_next_run(tmp_path):
    from aekit.store.run import CLEARING

    run = tmp_path / "run"
    assert _cli("train", "--epochs", 1, "--code-size", 4, "--hidden", 16, "--quiet", "--report", "--out", run
                ).exit_code == 0
    old = {p.name for p in run.iterdir()}
    assert {"evaluation.json", "report.html", "run.toml", "metrics.jsonl"} <= old
    # what a kill inside Run.clear leaves: the marker, train.json already gone, the old evaluation and report kept
    (run / CLEARING).write_text("")
    for name in ("train.json", "model.json", "trainer.safetensors"):
        (run / name).unlink()
    res = _cli("train", "--epochs", 1, "--code-size", 4, "--hidden", 16, "--quiet", "--out", run)
    assert res.exit_code == 0, res.output
    assert not (run / "report.html").exists() and not list(run.glob("*.png")) and not (run / CLEARING).exists()
    # a kill before the marker was written removed nothing: the run is still there and needs --overwrite
    res = _cli("train", "--epochs", 1, "--code-size", 4, "--hidden", 16, "--quiet", "--out", run)
    assert res.exit_code == 2 and "already holds a run" in res.stderr
