"""Issue 39: a series as users hand it over — files whose time column orders the steps, row-index columns,
dropped columns, 1-D arrays and pandas objects, and the train-on-a-clean-start protocol (--train-steps)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from aekit.cli._app import app
from aekit.estimators import SeriesOutlierDetector
from aekit.store.series import read_series


def _write(path, header: str, rows: list[str]):
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def _read(path, **kw):
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        f = read_series(path, **kw)
    return f, [str(w.message) for w in said]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


# ---------------------------------------------------------------------------- the time column


def test_a_file_written_newest_first_is_read_oldest_first_with_a_warning(tmp_path):
    days = [f"2024-01-{d:02d}" for d in range(1, 11)]
    rows = [f"{day},{i * i},{int(i == 7)}" for i, day in enumerate(days)][::-1]
    f, said = _read(_write(tmp_path / "s.csv", "date,value,label", rows))
    assert f.time == days and f.x[:, 0].tolist() == [i * i for i in range(10)]
    assert f.labels.tolist() == [0] * 7 + [1, 0, 0]
    assert len(said) == 1 and "runs backwards in time (column 'date', newest first)" in said[0]


def test_rows_out_of_time_order_or_a_repeated_time_are_refused_with_the_line(tmp_path):
    rows = ["1,0.1", "2,0.2", "4,0.4", "3,0.3", "5,0.5"]
    with pytest.raises(ValueError, match=r"not in time order: line 5 \('3'\) comes after line 4 \('4'\)"):
        read_series(_write(tmp_path / "a.csv", "time,v", rows))
    rows = ["2024-01-01T00:00", "2024-01-01T01:00", "2024-01-01T01:00", "2024-01-01T02:00"]
    with pytest.raises(ValueError, match=r"'2024-01-01T01:00' appears twice in column 'time' \(lines 3 and 4\)"):
        read_series(_write(tmp_path / "b.csv", "time,v", [f"{t},1" for t in rows]))


def test_gaps_in_time_are_reported_and_the_steps_kept_as_they_are(tmp_path):
    hours = [0, 1, 2, 3, 9, 10, 11, 12]  # six hours missing after 03:00
    rows = [f"2024-03-01T{h:02d}:00:00,{h}" for h in hours]
    f, said = _read(_write(tmp_path / "g.csv", "timestamp,v", rows))
    assert f.x[:, 0].tolist() == hours  # not filled in
    assert len(said) == 1 and "1 gap(s) in time" in said[0] and "6.0 times the usual step" in said[0]
    assert "'2024-03-01T03:00:00' and '2024-03-01T09:00:00'" in said[0] and "not filled in" in said[0]


def test_a_time_column_that_is_not_a_time_keeps_the_file_order_and_says_so(tmp_path):
    f, said = _read(_write(tmp_path / "t.csv", "time,v", ["mon,1", "tue,5", "wed,2"]))
    assert f.time == ["mon", "tue", "wed"] and "neither numbers nor ISO dates" in said[0]


# ---------------------------------------------------------------------------- columns


def test_a_row_index_column_is_never_a_channel(tmp_path):
    x = np.sin(np.arange(6.0))
    # pandas' to_csv: an unnamed index column before the time column — left out, said
    path = tmp_path / "p.csv"
    pd.DataFrame({"time": [f"2024-01-0{d}" for d in range(1, 7)], "v": x}).to_csv(path)
    f, said = _read(path)
    assert f.names == ["v"] and f.x.shape == (6, 1) and "column '' counts the rows (a row index)" in said[0]
    assert "left out" in said[0]
    f, said = _read(path, drop_columns=["0"])  # named: no warning
    assert f.names == ["v"] and said == []
    # no time column: the index orders the steps (a reversed index reverses them)
    rows = [f"{i},{v:.3f}" for i, v in enumerate(x)][::-1]
    f, said = _read(_write(tmp_path / "i.csv", "idx,v", rows))
    assert f.names == ["v"] and f.time == [str(i) for i in range(6)] and np.allclose(f.x[:, 0], x, atol=1e-3)
    assert "orders the steps and is not read as a channel" in said[0] and "runs backwards" in said[1]


def test_drop_columns_by_name_or_index_and_an_unknown_one_is_an_error(tmp_path):
    path = _write(tmp_path / "d.csv", "time,a,note,b", [f"{t},{t},x{t},{2 * t}" for t in range(5)])
    with pytest.raises(ValueError, match=r"non-numeric value 'x0' in column 'note' on line 2; --drop-columns note"):
        read_series(path)
    assert read_series(path, ["note"]).names == ["a", "b"]
    assert read_series(path, ["note", "1"]).names == ["b"]
    with pytest.raises(ValueError, match=r"no column 'nope' to drop; its columns are 'time', 'a', 'note', 'b'"):
        read_series(path, ["nope"])
    with pytest.raises(ValueError, match="dropped columns apply to .csv files"):
        np.save(tmp_path / "x.npy", np.zeros(5))
        read_series(tmp_path / "x.npy", ["a"])


# ---------------------------------------------------------------------------- the estimator's input


def test_one_dimensional_arrays_and_pandas_series_are_one_channel():
    t = np.arange(300)
    x = np.sin(2 * np.pi * t / 20)
    det = SeriesOutlierDetector(window=20, stride=4, epochs=2, random_state=0)
    a = det.fit(x).score_samples(x)
    assert a.shape == (300,) and det.n_features_in_ == 1
    np.testing.assert_array_equal(det.fit(x[:, None]).score_samples(x[:, None]), a)  # (T,) is (T, 1)
    s = det.fit(pd.Series(x, name="level")).score_samples(pd.Series(x, name="level"))
    np.testing.assert_array_equal(s, a)
    assert list(det.feature_names_in_) == ["level"]


@pytest.mark.parametrize("column, kind", [(pd.date_range("2024", periods=100, freq="h"), "datetime64"),
                                          (["a", "b"] * 50, "")])
def test_a_dataframe_with_a_non_numeric_column_is_a_one_line_error_naming_it(column, kind):
    df = pd.DataFrame({"when": column, "v": np.arange(100.0)})
    with pytest.raises(ValueError, match=rf"^column 'when' holds {kind}.* not numbers: .*drop it"):
        SeriesOutlierDetector(window=10, epochs=1).fit(df)


# ---------------------------------------------------------------------------- --train-steps


def test_train_steps_trains_on_the_clean_start_and_tests_the_rest(tmp_path):
    t = np.arange(600)
    x = np.sin(2 * np.pi * t / 20)
    x[500:505] += 3
    rows = [f"{i},{v:.4f},{int(500 <= i < 505)},{i * 7}" for i, v in enumerate(x)]
    data = _write(tmp_path / "s.csv", "time,value,label,junk", rows)
    res = run("train", "--preset", "tcn", "--data", data, "--window", 20, "--stride", 5, "--train-steps", 200,
              "--drop-columns", "junk", "--epochs", 2, "--channels", "8", "--out", tmp_path / "r", "--quiet")
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "r" / "data.json").read_text())
    assert meta["train_steps"] == 200 and meta["drop_columns"] == ["junk"]
    np.testing.assert_allclose(meta["center"], [x[:200].mean()], atol=1e-4)  # the first 200 steps, not 80 %
    assert ": 37 train / 77 test samples" in res.stderr  # windows of the first 200 steps, (200 − 20) / 5 + 1
    assert run("evaluate", tmp_path / "r").exit_code == 0  # the split is rebuilt with the same cut and columns
    res = run("score", tmp_path / "r", data, "--out", tmp_path / "s.out.csv")  # junk left out again
    assert res.exit_code == 0, res.output
    for args, message in [
        (("train", "--data", data, "--train-steps", 100), "--train-steps says where a series' training part ends"),
        (("train", "--data", data, "--window", 20, "--train-steps", 590, "--drop-columns", "junk"),
         "the first 590 train: 590 / 10; each part needs at least window=20 steps"),
        (("train", "--data", data, "--window", 20, "--train-steps", 0), "--train-steps must be an integer >= 1"),
    ]:
        res = run(*args)
        assert res.exit_code == 2 and message in res.output, res.output
