"""Your own networks, first-class (issue 11): registered builders, models composed by hand, plugins on the
command line (a module or an installed entry point), run configuration files."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import aekit
from aekit import Autoencoder, Gaussian, create, fit, load_model, save_model
from aekit.cli._app import app
from aekit.report.html import write_report

PLUGIN = '''
import aekit
from torch import nn


@aekit.register("{name}", epochs=3)
def builder(input_shape, code_size: int = 4, width: int = 32, bias: bool = True, scales=(1.0,)):
    """A two-layer MLP from a plugin."""
    d = 1
    for s in input_shape:
        d *= s
    enc = nn.Sequential(nn.Linear(d, width, bias=bias), nn.ReLU(), nn.Linear(width, code_size))
    dec = nn.Sequential(nn.Linear(code_size, width), nn.ReLU(), nn.Linear(width, d))
    return aekit.Autoencoder(enc, dec, aekit.Gaussian(), input_shape=input_shape, code_size=code_size)
'''


def _plugin(tmp_path, monkeypatch, module: str, preset: str):
    """A module file on sys.path whose import registers ``preset``."""
    (tmp_path / f"{module}.py").write_text(PLUGIN.format(name=preset))
    monkeypatch.syspath_prepend(str(tmp_path))
    return module


def _weights(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def run(*args, env=None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


# ---------------------------------------------------------------------------- Python


def test_a_registered_builder_saves_reloads_resumes_and_reports(tmp_path, monkeypatch, digits):
    import importlib

    importlib.import_module(_plugin(tmp_path, monkeypatch, "aekit_plugin_py", "mine-py"))
    assert aekit.get_preset("mine-py").summary == "A two-layer MLP from a plugin."
    x = digits.train.x[:300]
    torch.manual_seed(0)
    full = create("mine-py", digits.train.shape, width=16)
    assert full.config == {"preset": "mine-py", "input_shape": [1, 8, 8], "module": "aekit_plugin_py",
                           "options": {"code_size": 4, "width": 16, "bias": True, "scales": [1.0]}}
    fit(full, x, epochs=4, run_dir=tmp_path / "full", progress=False)
    assert _same(_weights(full), _weights(load_model(tmp_path / "full")))

    class Stop(Exception):
        pass

    def stop(epoch, row, model):
        if epoch == 2:
            raise Stop

    torch.manual_seed(0)
    part = create("mine-py", digits.train.shape, width=16)
    with pytest.raises(Stop):
        fit(part, x, epochs=4, run_dir=tmp_path / "part", progress=False, callbacks=[stop])
    resumed = create("mine-py", digits.train.shape, width=16)
    fit(resumed, x, epochs=4, run_dir=tmp_path / "part", resume=True, progress=False)
    assert _same(_weights(full), _weights(resumed))
    assert write_report(tmp_path / "part", digits).is_file()


def test_a_checkpoint_never_imports_the_module_it_names(tmp_path, monkeypatch):
    module = _plugin(tmp_path, monkeypatch, "aekit_plugin_sub", "mine-sub")
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import aekit, {module}
        aekit.save_model(aekit.create("mine-sub", (6,)), {str(tmp_path / "run")!r})
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    code = f"import aekit; aekit.load_model({str(tmp_path / 'run')!r})"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "not registered in this process; it is defined in module 'aekit_plugin_sub'" in \
        res.stderr and "--plugin aekit_plugin_sub" in res.stderr
    assert "aekit_plugin_sub" not in sys.modules


def _by_hand(width=16):
    enc = nn.Sequential(nn.Linear(64, width), nn.Tanh(), nn.Linear(width, 4))
    dec = nn.Sequential(nn.Linear(4, width), nn.Tanh(), nn.Linear(width, 64))
    return Autoencoder(enc, dec, Gaussian(), input_shape=(64,), code_size=4)


def test_a_model_composed_by_hand_trains_resumes_and_reports(tmp_path, digits):
    """The issue's example: save, run_dir, resume and report for an Autoencoder of plain nn modules."""
    x = digits.train.x[:300]
    torch.manual_seed(0)
    full = _by_hand()
    fit(full, x, epochs=4, run_dir=tmp_path / "full", progress=False)
    assert json.loads((tmp_path / "full" / "model.json").read_text())["preset"] is None

    class Stop(Exception):
        pass

    torch.manual_seed(0)
    part = _by_hand()
    with pytest.raises(Stop):
        fit(part, x, epochs=4, run_dir=tmp_path / "part", progress=False,
            callbacks=[lambda e, r, m: (_ for _ in ()).throw(Stop()) if e == 2 else None])
    resumed = _by_hand()
    fit(resumed, x, epochs=4, run_dir=tmp_path / "part", resume=True, progress=False)
    assert _same(_weights(full), _weights(resumed))
    assert _same(_weights(full), _weights(load_model(tmp_path / "part", model=_by_hand())))
    assert write_report(tmp_path / "part", digits, model=resumed).is_file()
    with pytest.raises(ValueError, match="composed by hand"):
        write_report(tmp_path / "part", digits)
    res = run("report", tmp_path / "part", "--data", "digits")
    assert res.exit_code == 2 and "composed by hand: pass --model MODULE:FUNCTION" in res.stderr
    res = run("train", "--resume", tmp_path / "part")  # trained from Python: no data.json
    assert res.exit_code == 2 and "resume from Python" in res.stderr


def test_register_refuses_what_cannot_work():
    with pytest.raises(ValueError, match="takes input_shape"):
        aekit.register("bad-one")(lambda code_size=2: None)

    @aekit.register("needs-width")
    def needs(input_shape, width):
        return None

    with pytest.raises(ValueError, match="needs the option\\(s\\) width"):
        create("needs-width", (4,))
    with pytest.raises(ValueError, match="returned NoneType, not an aekit Autoencoder"):
        create("needs-width", (4,), width=3)
    with pytest.raises(ValueError, match="already registered"):
        aekit.register("needs-width")(lambda input_shape: None)


def test_an_option_group_is_declared_once_and_offered_flat():
    """A builder's OptionGroup parameter offers its fields as flat options, with the group's defaults;
    create hands the builder the group rebuilt from them; the config stays flat (old checkpoints load)."""
    from dataclasses import dataclass

    from aekit.presets._registry import OptionGroup

    @dataclass(frozen=True)
    class Width(OptionGroup):
        width: int = 8
        depth: int = 1

    seen = []

    @aekit.register("grouped-doc")
    def grouped(input_shape, code_size: int = 2, shape: Width = Width(depth=2)):
        seen.append(shape)
        return aekit.create("undercomplete", input_shape, code_size=code_size, hidden=[shape.width] * shape.depth)

    try:
        assert aekit.get_preset("grouped-doc").options() == {"code_size": 2, "width": 8, "depth": 2}
        model = create("grouped-doc", (10,), width=5)
        assert seen[-1] == Width(width=5, depth=2) and [m.out_features for m in model.encoder.linears] == [5, 5, 2]
        assert model.config["options"] == {"code_size": 2, "width": 5, "depth": 2}
        with pytest.raises(ValueError, match="unknown option\\(s\\) shape"):
            create("grouped-doc", (10,), shape=Width())
        with pytest.raises(ValueError, match="declared twice"):
            aekit.register("grouped-twice")(lambda input_shape, width=3, shape=Width(): None)
    finally:
        aekit.PRESETS.pop("grouped-doc", None)


def test_create_checks_options_against_the_option_table():
    """An option named like one of aekit's is checked by its constraint, before the builder runs,
    with the one wording; the classic presets forward the shared body options (no restated defaults)."""
    with pytest.raises(ValueError, match="^lam must be a finite number >= 0, got -1$"):
        create("sparse", (8,), lam=-1)
    with pytest.raises(ValueError, match="^tied must be True or False, got 'yes'$"):
        create("denoising", (8,), tied="yes")
    with pytest.raises(ValueError, match="^hidden must be a list of integers >= 1, got 64$"):
        create("undercomplete", (8,), code_size=2, hidden=64)
    with pytest.raises(ValueError, match="^penalty must be 'l1' or 'kl', got 'l2'$"):
        create("sparse", (8,), penalty="l2")
    shared = {"hidden", "activation", "tied", "likelihood", "sigma"}
    for name in ("undercomplete", "overcomplete", "hinton2006", "sparse", "ksparse", "denoising", "contractive"):
        assert shared <= set(aekit.get_preset(name).options()), name
    tied = create("ksparse", (8,), code_size=16, k=2)
    assert type(tied.decoder).__name__ == "TiedMLP"  # ksparse's own default for the shared option


# ---------------------------------------------------------------------------- command line


def test_cli_plugin_presets_take_their_options_as_flags(tmp_path, monkeypatch):
    module = _plugin(tmp_path, monkeypatch, "aekit_plugin_cli", "mine-cli")
    res = run("presets", "--plugin", module)
    assert res.exit_code == 0 and "mine-cli" in res.stdout and "A two-layer MLP" in res.stdout
    rd = tmp_path / "r"
    res = run("train", "--plugin", module, "--preset", "mine-cli", "--width", "12", "--no-bias", "--scales", "0.5,2",
              "--code-size", "3", "--epochs", "2", "--max-time", "1e-9", "--out", rd, "--quiet")
    assert res.exit_code == 0, res.output
    opts = json.loads((rd / "model.json").read_text())["options"]
    assert opts == {"code_size": 3, "width": 12, "bias": False, "scales": [0.5, 2.0]}
    res = run("train", "--plugin", module, "--preset", "mine-cli", "--widht", "12", "--quiet")
    assert res.exit_code == 2 and "unknown option --widht" in res.stderr and "--width" in res.stderr
    res = run("train", "--plugin", module, "--preset", "mine-cli", "--width", "wide", "--quiet")
    assert res.exit_code == 2 and "--width must be an integer, got 'wide'" in res.stderr
    # the run continues from its checkpoint (stopped by --max-time after epoch 1) and is reported
    assert run("train", "--resume", rd, "--plugin", module, "--quiet").exit_code == 0
    assert set(json.loads((rd / "train.json").read_text())) == {"train", "model", "outcome"}
    assert run("report", rd, "--plugin", module).exit_code == 0 and (rd / "report.html").is_file()
    assert run("evaluate", rd, "--plugin", module).exit_code == 0


def test_cli_needs_the_plugin_named_explicitly(tmp_path, monkeypatch):
    """A run directory names its plugin; it is imported only when --plugin says so (fresh process)."""
    module = _plugin(tmp_path, monkeypatch, "aekit_plugin_fresh", "mine-fresh")
    env = {"PYTHONPATH": str(tmp_path)}
    rd = tmp_path / "r"
    cli = [sys.executable, "-m", "aekit.cli"]
    # trained here (importing the plugin in this process); evaluated in fresh processes, which have not imported it
    res = run("train", "--plugin", module, "--preset", "mine-fresh", "--epochs", "1", "--out", rd, "--quiet")
    assert res.exit_code == 0, res.output
    res = subprocess.run([*cli, "evaluate", str(rd)], capture_output=True, text=True, timeout=300, env={**_env(), **env})
    assert res.returncode == 2, res.stderr
    assert "(command line: --plugin aekit_plugin_fresh)" in res.stderr and "never imports code" in res.stderr
    res = subprocess.run([*cli, "evaluate", str(rd), "--plugin", module], capture_output=True, text=True,
                         timeout=300, env={**_env(), **env})
    assert res.returncode == 0, res.stderr


def _env():
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_installed_entry_points_register_presets(tmp_path):
    """An installed package's ``aekit.presets`` entry point: a dist-info on sys.path is what pip installs."""
    (tmp_path / "aekit_plugin_ep.py").write_text(PLUGIN.format(name="mine-ep"))
    (tmp_path / "broken_ep.py").write_text("raise RuntimeError('this plugin is broken')\n")
    info = tmp_path / "aekit_plugin_ep-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: aekit-plugin-ep\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[aekit.presets]\nmine = aekit_plugin_ep\nbroken = broken_ep\n")
    env = {**_env(), "PYTHONPATH": str(tmp_path)}
    res = subprocess.run([sys.executable, "-m", "aekit.cli", "presets"], capture_output=True, text=True,
                         timeout=300, env=env)
    assert res.returncode == 0 and "mine-ep" in res.stdout, res.stderr
    assert "warning: the installed aekit plugin broken (broken_ep) failed to load: RuntimeError" in res.stderr
    code = "import aekit; aekit.load_plugins(); print(aekit.create('mine-ep', (6,)).config['module'])"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert res.stdout.strip() == "aekit_plugin_ep", res.stderr


# ---------------------------------------------------------------------------- configuration files


def test_print_config_reruns_the_same_run(tmp_path):
    """Issue 11.3: the resolved configuration of a run, printed and run again, gives the same final weights."""
    args = ["--preset", "denoising", "--code-size", "32", "--noise", "masking", "--level", "0.3", "--epochs", "3",
            "--lr", "0.003", "--seed", "5", "--quiet"]
    assert run("train", *args, "--out", tmp_path / "a").exit_code == 0
    res = run("train", *args, "--print-config")
    assert res.exit_code == 0 and not list(tmp_path.glob("runs"))
    (tmp_path / "run.toml").write_text(res.stdout)
    assert res.stdout == (tmp_path / "a" / "run.toml").read_text()  # every run keeps it
    assert run("train", "--config", tmp_path / "run.toml", "--out", tmp_path / "b", "--quiet").exit_code == 0
    assert _same(load_model(tmp_path / "a").state_dict(), load_model(tmp_path / "b").state_dict())
    # flags override the file
    assert run("train", "--config", tmp_path / "run.toml", "--epochs", "1", "--out", tmp_path / "c",
               "--quiet").exit_code == 0
    assert json.loads((tmp_path / "c" / "train.json").read_text())["train"]["epochs"] == 1


@pytest.mark.parametrize("text, message", [
    ('preset = "undercomplete"\nepochs = 3\n', "unknown key 'epochs' in .*preset options go in \\[model\\]"),
    ('[model]\nwidth = 3\n', "unknown option\\(s\\) width for preset 'undercomplete'; accepted: code_size"),
    ('[train]\nepoch = 3\n', "unknown training option\\(s\\) epoch; accepted"),
    ('[train]\nseed = 3\n', "seed goes at the top level"),
    ('seed = "x"\n', "seed in .* must be an integer, got 'x'"),
    ('preset = \n', "cannot read the configuration"),
])
def test_bad_configuration_files(tmp_path, text, message):
    (tmp_path / "bad.toml").write_text(text)
    res = run("train", "--config", tmp_path / "bad.toml", "--epochs", "1", "--out", tmp_path / "r", "--quiet")
    assert res.exit_code == 2, res.output
    import re

    assert re.search(message, res.stderr), res.stderr


def test_a_run_from_python_is_reported_from_the_command_line(tmp_path, digits):
    np.save(tmp_path / "x.npy", digits.train.x)
    model = create("undercomplete", digits.train.shape, code_size=4)
    fit(model, digits.train.x, epochs=1, run_dir=tmp_path / "r", progress=False)
    res = run("report", tmp_path / "r")
    assert res.exit_code == 2 and "no data.json" in res.stderr
    assert run("report", tmp_path / "r", "--data", tmp_path / "x.npy").exit_code == 0


def test_a_builder_that_computes_with_tensor_values_still_works(tmp_path):
    """The dry build on the meta device cannot run .item(): such a builder is built for real instead."""

    @aekit.register("uses-item")
    def uses_item(input_shape, code_size: int = 2):
        d = int(torch.tensor(input_shape).prod().item())
        return Autoencoder(nn.Linear(d, code_size), nn.Linear(code_size, d), Gaussian(), input_shape=input_shape,
                           code_size=code_size)

    model = create("uses-item", (2, 3))
    save_model(model, tmp_path)
    assert _same(model.state_dict(), load_model(tmp_path).state_dict())


HAND = '''
import aekit
from torch import nn


def build():
    enc = nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 4))
    dec = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 64))
    return aekit.Autoencoder(enc, dec, aekit.Bernoulli(), input_shape=(64,), code_size=4)


def not_a_model():
    return 3
'''


def test_cli_runs_a_model_composed_by_hand_with_model(tmp_path, monkeypatch):
    """--model MODULE:FUNCTION: train, resume, evaluate and report a model without a preset."""
    (tmp_path / "aekit_hand_cli.py").write_text(HAND)
    monkeypatch.syspath_prepend(str(tmp_path))
    fn = "aekit_hand_cli:build"
    common = ["--model", fn, "--epochs", "3", "--quiet"]
    assert run("train", *common, "--out", tmp_path / "full").exit_code == 0
    assert run("train", *common, "--max-time", "1e-9", "--out", tmp_path / "part").exit_code == 0
    res = run("train", "--resume", tmp_path / "part", "--quiet")
    assert res.exit_code == 2 and "pass --model MODULE:FUNCTION" in res.stderr
    assert run("train", "--resume", tmp_path / "part", "--model", fn, "--quiet").exit_code == 0
    assert _same(load_model(tmp_path / "full", model=_load(fn)).state_dict(),
                 load_model(tmp_path / "part", model=_load(fn)).state_dict())
    assert run("report", tmp_path / "part", "--model", fn).exit_code == 0
    res = run("evaluate", tmp_path / "part")
    assert res.exit_code == 2 and "composed by hand: pass --model" in res.stderr
    assert run("evaluate", tmp_path / "part", "--model", fn).exit_code == 0
    res = run("train", "--model", fn, "--preset", "vae")
    assert res.exit_code == 2 and "drop --preset" in res.stderr
    res = run("evaluate", tmp_path / "part", "--model", "aekit_hand_cli:not_a_model")
    assert res.exit_code == 2 and "returned int, not an aekit Autoencoder" in res.stderr
    assert "# model: built by --model aekit_hand_cli:build" in (tmp_path / "full" / "run.toml").read_text()


def _load(fn):
    from aekit.presets.plugins import model_factory

    return model_factory(fn)()


def test_plugins_and_models_from_the_current_folder(tmp_path, monkeypatch):
    """Issue 37.22: --plugin my_presets with my_presets.py in the working folder failed ("is it installed or on
    PYTHONPATH?"); a --model that failed to import was reported as --plugin."""
    import sys

    from typer.testing import CliRunner

    from aekit.cli._app import app

    (tmp_path / "here_presets.py").write_text(
        "import aekit\nfrom aekit import create\n"
        "@aekit.register('here-mine', 'a preset of mine')\n"
        "def mine(input_shape, code_size: int = 4):\n"
        "    return create('undercomplete', input_shape, code_size=code_size, hidden=[16])\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    from aekit import PRESETS

    try:
        res = CliRunner().invoke(app, ["train", "--plugin", "here_presets", "--preset", "here-mine", "--epochs", "1",
                                       "--quiet", "--out", str(tmp_path / "r")])
    finally:  # the rest of the suite sees aekit's presets only
        PRESETS.pop("here-mine", None)
        sys.modules.pop("here_presets", None)
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["train", "--model", "not_here_nets:build", "--epochs", "1", "--out",
                                   str(tmp_path / "m")])
    assert res.exit_code == 2 and "--model not_here_nets:build: cannot import not_here_nets" in res.stderr, res.output
    assert "--plugin" not in res.stderr and str(tmp_path) in res.stderr
