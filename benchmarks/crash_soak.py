"""Crash-consistency soak: kill -9 a short `aekit train` at random moments, then resume it.

Each trial starts the same seeded run (checkpoints every 3 steps and every epoch, so many kills land
inside a checkpoint write), waits until it has started, sends SIGKILL at a random moment of the
run, and then checks that the run directory is readable, that `aekit train --resume` completes, and
that the final weights equal those of an uninterrupted run bit for bit.

    python benchmarks/crash_soak.py [--trials 20] [--seed 0]

Prints one line per trial and a summary table; exits 1 if any trial fails.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ARGS = ["--code-size", "4", "--hidden", "16", "--epochs", "6", "--batch-size", "16", "--checkpoint-steps", "3",
        "--checkpoint-every", "1", "--schedule", "cosine", "--patience", "10", "--quiet"]


def aekit(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aekit.cli", *args], capture_output=True, text=True, timeout=timeout)


def weights(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(run / "model.safetensors")


def readable(run: Path) -> str | None:
    """None if every file of the run that exists parses; else what is wrong."""
    from aekit.training.checkpoint import load_tensors

    for name in ("train.json", "data.json"):
        if (run / name).exists():
            try:
                json.loads((run / name).read_text())
            except ValueError as e:
                return f"{name}: {e}"
    if (run / "trainer.safetensors").exists():
        try:
            load_tensors(run / "trainer.safetensors")
        except ValueError as e:
            return str(e)
    return None


def start(data: Path, run: Path) -> subprocess.Popen:
    """A training run, returned once it has started (its train.json exists)."""
    p = subprocess.Popen([sys.executable, "-m", "aekit.cli", "train", "--data", str(data), "--out", str(run), *ARGS],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "train.json").exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    return p


def trial(i: int, rng: random.Random, root: Path, data: Path, duration: float, reference: dict) -> dict:
    run = root / f"trial{i}"
    p = start(data, run)
    time.sleep(rng.uniform(0, duration))
    finished = p.poll() is not None
    p.send_signal(signal.SIGKILL)
    _, stderr = p.communicate(timeout=60)
    res = {"trial": i, "killed": not finished, "in_write": bool(list(run.glob("*.tmp"))),
           "checkpoint": (run / "trainer.safetensors").exists()}
    res["unreadable"] = readable(run)
    if finished:
        res["resumed"], last = p.returncode == 0, stderr
    else:
        r = aekit("train", "--resume", str(run), "--quiet")
        res["resumed"], last = r.returncode == 0, r.stderr
    res["error"] = None if res["resumed"] else (last.strip().splitlines() or ["?"])[-1]
    res["identical"] = res["resumed"] and weights(run).keys() == reference.keys() and all(
        np.array_equal(v.numpy(), reference[k].numpy()) for k, v in weights(run).items())
    shutil.rmtree(run, ignore_errors=True)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="aekit-soak-"))
    try:
        data = root / "x.npy"
        np.save(data, np.random.default_rng(0).random((600, 32), dtype=np.float32))
        ref = root / "reference"
        p = start(data, ref)
        t = time.perf_counter()
        _, stderr = p.communicate(timeout=600)
        if p.returncode != 0:
            print(stderr)
            return 1
        duration = time.perf_counter() - t  # from the start of training to the exit: where kills are drawn
        reference = weights(ref)
        print(f"uninterrupted run: {duration:.1f} s of training, evaluation and saving", flush=True)
        rows = []
        for i in range(args.trials):
            res = trial(i, rng, root, data, duration, reference)
            rows.append(res)
            print(f"trial {i:2d}: {'killed' if res['killed'] else 'finished first'}"
                  f"{', during a checkpoint write' if res['in_write'] else ''}"
                  f"{', with a checkpoint' if res['checkpoint'] else ', before the first checkpoint'}: "
                  f"{'readable' if res['unreadable'] is None else 'UNREADABLE ' + res['unreadable']}, "
                  f"{'resumed' if res['resumed'] else 'RESUME FAILED: ' + str(res['error'])}, "
                  f"{'identical' if res['identical'] else 'DIFFERENT'}", flush=True)
        ok = [r for r in rows if r["unreadable"] is None and r["resumed"] and r["identical"]]
        print()
        print("| trials | killed mid-run | of them in a checkpoint write | before the first checkpoint | "
              "readable, resumed and bit-identical |")
        print("|---:|---:|---:|---:|---:|")
        print(f"| {len(rows)} | {sum(r['killed'] for r in rows)} | {sum(r['in_write'] for r in rows)} | "
              f"{sum(r['killed'] and not r['checkpoint'] for r in rows)} | {len(ok)}/{len(rows)} |")
        return 0 if len(ok) == len(rows) else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
