"""The README runs as a user would run it: every ``bash`` and ``python`` block of a chapter in order, in a clean
folder of the chapter's own (with ``../shared`` beside it, as in the repository), offline. A block that cannot run here says why, in a
``<!-- readme-test: skip: REASON -->`` line just above it.

A shell line that is one ``aekit`` command (optionally ``> file``) runs through the same typer app in this process,
and ``python -c CODE`` runs CODE here: a fresh process would spend ~2.5 s importing torch and scikit-learn for each
of ~30 lines. Anything else, and any line naming ``--plugin`` (its presets would stay registered in this test
worker), runs in ``bash -euo pipefail``; the console script itself is run as a process by the CLI's own tests."""

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aekit.cli import app

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


def chapters() -> dict[str, list[tuple[int, str, str, str | None]]]:
    """The blocks of each ``## `` chapter, in order."""
    text = README.read_text()
    heads = [(text.count("\n", 0, m.start()) + 1, m[1]) for m in re.finditer(r"^## (.+)$", text, re.M)]
    out: dict[str, list] = {}
    for block in blocks():
        out.setdefault(next(h for line, h in reversed(heads) if line <= block[0]), []).append(block)
    return out


@pytest.mark.parametrize("chapter", sorted(chapters(), key=lambda c: c != "Command line"))  # the longest first
def test_each_chapter_of_the_readme_runs_in_order_in_a_clean_folder(chapter, tmp_path, monkeypatch):
    """A reader may start at any chapter: its blocks run in order in a folder of their own (the chapters run side
    by side on the test workers), with nothing an earlier chapter made."""
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
    for line, lang, code, skip in chapters()[chapter]:
        if skip is not None:
            continue
        if lang == "python":
            exec(compile(code, f"README.md block at line {line}", "exec"), {"__name__": "__main__"})
        else:
            for at, command in commands(code, line):
                run_shell(command, f"README.md line {at}", work, env)
    assert not (tmp_path / "cache").exists()  # offline: nothing was downloaded


def commands(code: str, line: int) -> list[tuple[int, str]]:
    """(line, command) of each shell command of a block: continued lines and quoted newlines joined. A block that
    keeps state between its lines (``cd``, variables, ``export``) is one command."""
    if re.search(r"^\s*(cd|export)\b|^\s*\w+=|\$", code, re.M):
        return [(line, code)]
    out, part, start = [], "", line
    for i, text in enumerate(code.splitlines()):
        part, start = (part + "\n" + text, start) if part else (text, line + i)
        try:
            shlex.split(part, comments=True)
        except ValueError:  # an open quote: the command goes on on the next line
            continue
        if part.endswith("\\"):
            continue
        if shlex.split(part, comments=True):
            out.append((start, part))
        part = ""
    assert not part, f"README.md line {start}: an unfinished command"
    return out


def run_shell(command: str, where: str, work: Path, env: dict[str, str]) -> None:
    """Run one shell command: ``aekit …`` and ``python -c`` here, anything else in bash."""
    argv = shlex.split(command.replace("\\\n", " "), comments=True)  # bash drops a backslash-newline
    target = None
    if len(argv) > 2 and argv[-2] == ">":
        argv, target = argv[:-2], argv[-1]
    plain = not any(a in {"|", "||", "&&", ";", "&", "<", ">", ">>", "2>"} for a in argv) and "--plugin" not in argv
    if plain and argv[0] == "aekit":
        res = CliRunner().invoke(app, argv[1:], prog_name="aekit", env={k: v for k, v in env.items() if k != "PATH"})
        assert res.exit_code == 0, f"{where}: {command}\n{res.output[-3000:]}\n{res.exception!r}"
        if target:
            (work / target).write_text(res.stdout)
    elif plain and argv[0] == "python" and len(argv) == 3 and argv[1] == "-c" and target is None:
        with contextlib.chdir(work):
            exec(compile(argv[2], where, "exec"), {"__name__": "__main__"})
    else:
        res = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=work, capture_output=True, text=True,
                             timeout=600, env=env)
        assert res.returncode == 0, f"{where}:\n{res.stderr[-3000:]}"


def test_the_readme_is_mostly_runnable_code():
    ran = [line for line, _, _, skip in blocks() if skip is None]
    assert len(ran) >= 15 and len(chapters()) >= 5, ran


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
