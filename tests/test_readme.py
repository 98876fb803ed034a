"""The README runs as a user would run it: every ``bash`` and ``python`` block in order, in one clean folder
(with ``../shared`` beside it, as in the repository), offline. A block that cannot run here says why, in a
``<!-- readme-test: skip: REASON -->`` line just above it."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SHARED = README.parents[1] / "shared"
BLOCK = re.compile(r"(<!-- readme-test: (?P<marker>[^>]*?) -->\n)?```(?P<lang>bash|python)\n(?P<code>.*?)```", re.S)


def blocks() -> list[tuple[int, str, str, str | None]]:
    """(line, language, code, skip reason or None) of every bash and python block, in order."""
    text = README.read_text()
    out = []
    for m in BLOCK.finditer(text):
        marker = (m["marker"] or "").strip()
        if marker and not (marker == "run" or re.fullmatch(r"skip: \S.*", marker)):
            raise AssertionError(f"README line {text.count(chr(10), 0, m.start()) + 1}: unknown marker {marker!r}")
        skip = marker[len("skip: "):] if marker.startswith("skip: ") else None
        out.append((text.count("\n", 0, m.start("code")) + 1, m["lang"], m["code"], skip))
    return out


def test_the_readme_runs_in_order_in_one_clean_folder(tmp_path, monkeypatch):
    if not SHARED.is_dir():
        pytest.fail(f"../shared is missing beside the repository: {SHARED}")
    (tmp_path / "shared").symlink_to(SHARED)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    env = {**os.environ, "AEKIT_CACHE_DIR": str(tmp_path / "cache"),  # nothing cached: a download would show
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(work),
           "PATH": os.pathsep.join([os.path.dirname(shutil.which("aekit") or sys.executable), os.environ["PATH"]])}
    monkeypatch.setenv("AEKIT_CACHE_DIR", env["AEKIT_CACHE_DIR"])
    ran = 0
    for line, lang, code, skip in blocks():
        if skip is not None:
            continue
        if lang == "python":
            exec(compile(code, f"README.md block at line {line}", "exec"), {"__name__": "__main__"})
        else:
            res = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=work, capture_output=True, text=True,
                                 timeout=600, env=env)
            assert res.returncode == 0, f"README.md block at line {line}:\n{res.stderr[-3000:]}"
        ran += 1
    assert ran >= 15 and not (tmp_path / "cache").exists()  # offline: nothing was downloaded


def test_every_skipped_block_says_why_and_the_rest_run():
    skipped = [(line, why) for line, _, _, why in blocks() if why is not None]
    assert all(len(why) > 10 for _, why in skipped), skipped
    assert len(skipped) <= 6, skipped  # the README is runnable, not a gallery of untested commands


def test_readme_has_the_two_quick_start_commands():
    text = README.read_text()
    assert "pip install torch==2.13.0 && pip install -e . && aekit train" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert 'pip install torch==2.13.0 && pip install -e ".[test]" && python -m pytest' in text
    assert 'pip install torch==2.13.0 && pip install -e ".[test]" && python -m pytest' in ci
