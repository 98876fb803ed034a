"""Every Python example in the README runs."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
SHELL = re.findall(r"<!-- readme-test: run -->\n```bash\n(.*?)```", README.read_text(), re.S)


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_python_example_runs(i, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[i], f"README block {i}", "exec"), {})


@pytest.mark.parametrize("i", range(len(SHELL)))
def test_readme_marked_shell_example_runs(i, tmp_path):
    """Shell blocks marked ``<!-- readme-test: run -->`` run as they are, with the installed ``aekit``."""
    import os
    import shutil
    import subprocess
    import sys

    path = os.pathsep.join([os.path.dirname(shutil.which("aekit") or sys.executable), os.environ["PATH"]])
    res = subprocess.run(["bash", "-euo", "pipefail", "-c", SHELL[i]], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600, env={**os.environ, "PATH": path})
    assert res.returncode == 0, res.stderr


def test_readme_has_the_two_quick_start_commands():
    text = README.read_text()
    assert "pip install torch==2.13.0 && pip install -e . && aekit train" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert 'pip install torch==2.13.0 && pip install -e ".[test]" && python -m pytest' in text
    assert 'pip install torch==2.13.0 && pip install -e ".[test]" && python -m pytest' in ci
