"""CPU threads (issue 19): fit and the estimators choose, use and restore torch's thread count."""

import numpy as np
import pytest
import torch

from aekit import create, fit
from aekit.estimators import AutoencoderOutlierDetector, AutoencoderTransformer
from aekit.training.threads import SMALL_STEP, threads_for, using_threads


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_the_automatic_count_is_one_thread_for_a_small_step_only(two_threads):
    small = torch.nn.Linear(8, 4)  # 36 parameters
    assert threads_for(0, small, batch_size=64) == 1
    assert threads_for(0, small, batch_size=SMALL_STEP // 36 + 1) == 2  # the same model on huge batches
    assert threads_for(0, torch.nn.Linear(784, 1000), batch_size=128) == 2
    assert threads_for(0) == 2 and threads_for(3) == 3 and threads_for(-1) >= 1
    for bad in (-2, 1.5, "2", None):
        with pytest.raises(ValueError, match="threads must be -1, 0 or a count up to"):
            threads_for(bad)


def test_more_threads_than_the_machine_can_run_are_one_error_before_anything_is_written(tmp_path):
    """--threads 100000 segfaulted in libgomp (exit 139) after writing train.json."""
    from typer.testing import CliRunner

    from aekit.cli._app import app
    from aekit.training.config import MAX_THREADS, cores

    assert MAX_THREADS == 4 * cores() and threads_for(MAX_THREADS) == MAX_THREADS
    for bad in (MAX_THREADS + 1, 100_000):
        with pytest.raises(ValueError, match=rf"threads must be -1, 0 or a count up to {MAX_THREADS} \(4 × the"):
            threads_for(bad)
        res = CliRunner().invoke(app, ["train", "--threads", str(bad), "--epochs", "1", "--out", str(tmp_path / "r")])
        assert res.exit_code == 2 and res.stderr.count("\n") == 1, res.output
        assert f"--threads must be -1, 0 or a count up to {MAX_THREADS}" in res.stderr and not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match=f"n_jobs must be None, -1 or an integer in \\[1, {MAX_THREADS}\\]"):
        AutoencoderOutlierDetector(n_jobs=100_000).fit(np.zeros((20, 3)))


def test_fit_trains_on_the_threads_asked_for_and_restores_the_callers(two_threads):
    x = np.random.default_rng(0).random((200, 6), dtype=np.float32)
    seen = []
    for threads, want in ((0, 1), (1, 1), (2, 2)):
        m = create("undercomplete", (6,), code_size=2, hidden=[8])
        fit(m, x, epochs=1, threads=threads, progress=False,
            callbacks=[lambda epoch, row, model: seen.append(torch.get_num_threads())])
        assert seen[-1] == want and torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="threads must be -1, 0 or a count up to"):
        fit(create("undercomplete", (6,), code_size=2), x, threads=-3)
    with using_threads(1):  # restored even when the block raises
        with pytest.raises(RuntimeError), using_threads(2):
            raise RuntimeError
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_estimators_take_n_jobs_and_results_do_not_depend_on_it(two_threads):
    x = np.random.default_rng(1).normal(size=(300, 5))
    scores = [AutoencoderOutlierDetector(epochs=3, n_jobs=n, random_state=0).fit(x).score_samples(x)
              for n in (None, 1, 2, -1)]
    for s in scores[1:]:
        np.testing.assert_allclose(s, scores[0], rtol=1e-4, atol=1e-5)
    assert torch.get_num_threads() == 2
    codes = [AutoencoderTransformer(epochs=2, n_jobs=n, random_state=0).fit_transform(x) for n in (None, 2)]
    np.testing.assert_allclose(codes[0], codes[1], rtol=1e-4, atol=1e-5)
    for bad in (0, -2, 1.5, "all"):
        with pytest.raises(ValueError, match="n_jobs must be None"):
            AutoencoderOutlierDetector(epochs=1, n_jobs=bad).fit(x)
