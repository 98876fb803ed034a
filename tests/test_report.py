"""Reports for a run of every preset (self-contained HTML, each expected figure) and `aekit compare`."""

import csv
import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from aekit import PRESETS, create, fit, load_model
from aekit.cli._app import app
from aekit.store.data import Dataset, Split
from aekit.evaluation.manifold import circle
from aekit.report.html import write_report

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
    assert name in page and "last epoch: train reconstruction" in page  # config and metrics tables


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


@pytest.mark.parametrize("labels", [np.array([0, 1, 2] * 20), np.array([0, 1] * 30), np.array(["a", "b"] * 30)])
def test_code_map_names_class_labels_in_a_legend_with_distinct_colours(labels):
    from matplotlib.colors import to_hex

    from aekit.report.html import code_map

    codes = np.random.default_rng(0).normal(size=(len(labels), 3))
    fig = code_map(codes, labels)
    ax, = fig.axes  # no colour bar axis
    legend = ax.get_legend()
    assert legend is not None and [t.get_text() for t in legend.get_texts()] == [str(c) for c in np.unique(labels)]
    colours = {to_hex(c.get_facecolor()[0]) for c in ax.collections}
    assert len(colours) == len(np.unique(labels))  # binary labels: two clearly different colours
    assert sum(len(c.get_offsets()) for c in ax.collections) == len(labels)


def test_code_map_of_a_continuous_target_keeps_a_colour_bar():
    from aekit.report.html import code_map

    rng = np.random.default_rng(0)
    fig = code_map(rng.normal(size=(100, 2)), rng.normal(size=100))
    assert len(fig.axes) == 2 and fig.axes[0].get_legend() is None


def test_tabular_reconstructions_plot_each_feature_against_its_value():
    from aekit.report.html import feature_scatter

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)) * np.array([1, 5, 2, 3, 4])
    x -= x.mean(0)  # centred: scaling each value by a leaves R² = 1 − (1 − a)² exactly
    a = np.array([0.9, 0.5, 0.8, 0.6, 0.95])
    fig = feature_scatter(x, x * a, n=3)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    # the 3 reconstructed worst (not the widest: after --standardize every variance is 1), in column order
    assert titles == ["feature 1: R² 0.75", "feature 2: R² 0.96", "feature 3: R² 0.84"]


def test_loss_curves_have_integer_epochs_and_no_duplicate_panel_without_a_penalty():
    from aekit.report.html import loss_curves

    rows = [{"epoch": e, "train_loss": 1.0 / e, "train_reconstruction": 1.0 / e} for e in (1, 2, 3)]
    fig = loss_curves(rows)
    assert len(fig.axes) == 1
    assert all(float(t).is_integer() for t in fig.axes[0].get_xticks())
    rows = [{**r, "train_reconstruction": 0.5 / r["epoch"], "train_l1": 0.5 / r["epoch"]} for r in rows]
    assert len(loss_curves(rows).axes) == 3


def test_the_page_names_measures_for_people_warns_when_worse_than_pca_and_folds_the_config(tmp_path):
    rd = tmp_path / "r"
    res = CliRunner().invoke(app, ["train", "--hidden", "8", "--epochs", "1", "--lr", "1e-5", "--out", str(rd),
                                   "--quiet", "--report"], catch_exceptions=False)  # one slow epoch: worse than PCA
    assert res.exit_code == 0, res.output
    assert "warning: worse than PCA with the same code size" in res.stderr  # the CLI says so too
    page = (rd / "report.html").read_text()
    assert "⚠ worse than PCA with the same code size" in page
    assert "<th>aekit / PCA</th>" in page and "<th>squared error per sample, PCA-" in page
    assert "test_squared_error" not in page.split("<details>")[0]  # no Python keys above the folded config
    assert '<details><summary><b>config</b>' in page
    code = load_model(rd).code_size  # as built: what an option 0 (automatic, e.g. psd's, the SAEs') became
    assert f'&quot;resolved&quot;: {{\n    &quot;code_size&quot;: {code},' in page


def test_collapsed_reconstructions_are_called_out():
    from aekit.evaluation.measures import warnings_for

    assert warnings_for({"test_squared_error": 1.0, "pca_squared_error": 2.0}, recon_variance=0.5) == []
    w, = warnings_for({"test_squared_error": 1.0, "pca_squared_error": 2.0}, recon_variance=0.001)
    assert "collapsed to the mean" in w and "0.1%" in w
