"""Reports for a run of every preset (self-contained HTML, each expected figure) and `aekit compare`."""

import csv
import re

import pytest
import torch
from typer.testing import CliRunner

from aekit import PRESETS, create, fit
from aekit.cli import app
from aekit.data import Dataset, Split
from aekit.manifold import circle
from aekit.report import write_report

COMMON = {"loss_curves", "reconstructions", "code_map"}
EXTRA = {"denoising": {"denoising", "chain"}, "sparse": {"unit_activity"}, "psd": {"unit_activity"}, "hashing": {"unit_activity"}, "ksparse": {"unit_activity"},
         "contractive": {"tangents"}, "vae": {"samples", "interpolations"},
         **{f"sae-{v}": {"unit_activity", "latent_density", "l0_fvu"}  # an SAE's page: densities, L0–FVU
            for v in ("relu", "topk", "batchtopk", "jumprelu")}}
SMALL = {"hinton2006": {"hidden": [32, 16]}, "conv": {"channels": [4]}, "vae": {"hidden": [16]},
         **{f"sae-{v}": {"expansion": 2} for v in ("relu", "topk", "batchtopk", "jumprelu")}}


def _figures(page: str) -> set[str]:
    return set(re.findall(r'<img alt="(\w+)" src="data:image/png;base64,', page))


@pytest.mark.filterwarnings("ignore:the code.*identity copy")
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_report_for_every_preset(name, digits, tmp_path):
    torch.manual_seed(0)
    model = create(name, digits.train.shape, **SMALL.get(name, {}))
    fit(model, digits.train.x, epochs=2, run_dir=tmp_path, progress=False)
    page = write_report(tmp_path, digits).read_text()
    assert "http://" not in page and "https://" not in page  # nothing outside the file
    assert len(re.findall(r"<img ", page)) == len(_figures(page))  # every image is embedded
    expected = COMMON | EXTRA.get(name, set())
    assert _figures(page) == expected
    for fig in expected:
        assert (tmp_path / f"{fig}.png").stat().st_size > 1000
    assert name in page and "train_reconstruction" in page  # config and metrics tables


def test_two_dimensional_runs_show_the_vector_field_and_the_chain(tmp_path):
    torch.manual_seed(0)
    x = circle(300, noise=0.05)
    split = Split(Dataset(x, None, (2,), "circle"), Dataset(x[:100], None, (2,), "circle"))
    dae = create("denoising", (2,), code_size=16, likelihood="gaussian", noise="gaussian", level=0.1)
    fit(dae, x, epochs=2, run_dir=tmp_path, progress=False)
    assert {"vector_field", "chain"} <= _figures(write_report(tmp_path, split).read_text())


def test_report_and_train_report_from_cli(tmp_path):
    runner = CliRunner()
    rd = tmp_path / "r"
    res = runner.invoke(app, ["train", "--preset", "denoising", "--code-size", "32", "--epochs", "2", "--out", str(rd),
                              "--quiet", "--report"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert (rd / "report.html").is_file() and "denoising" in _figures((rd / "report.html").read_text())
    (rd / "report.html").unlink()
    res = runner.invoke(app, ["report", str(rd)], catch_exceptions=False)
    assert res.exit_code == 0 and (rd / "report.html").is_file()
    res = runner.invoke(app, ["report", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "error:" in res.stderr


def test_compare_from_cli(tmp_path):
    runner = CliRunner()
    out = tmp_path / "cmp"
    res = runner.invoke(app, ["compare", "--presets", "linear,undercomplete", "--code-sizes", "2,4", "--epochs", "3",
                              "--out", str(out), "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(out / "compare.csv")))
    assert sorted((r["method"], int(r["code_size"])) for r in rows) == sorted(
        (m, k) for m in ("PCA", "linear", "undercomplete") for k in (2, 4))
    for r in rows:
        assert float(r["test_squared_error"]) > 0 and 0 < float(r["linear_probe_accuracy"]) <= 1
        if r["method"] == "PCA":
            assert float(r["vs_pca"]) == 1.0
    md = (out / "compare.md").read_text()
    assert "| undercomplete | 4 |" in md and "vs PCA" in md
    assert (out / "compare.png").stat().st_size > 1000
    res = runner.invoke(app, ["compare", "--presets", "bogus"])
    assert res.exit_code == 2 and "unknown preset 'bogus'" in res.stderr
