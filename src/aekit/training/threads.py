"""How many CPU threads torch uses while aekit trains or scores, restored afterwards.

torch starts one intra-op thread per core. A small model's matrix products are too small to split: the
threads then only synchronise, and on a shared or oversubscribed machine (``GridSearchCV(n_jobs=…)``,
several fits at once) each step waits for the slowest core. ``benchmarks/threads.py`` measures it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .._checks import check
from .config import THREADS, cores

# One thread below this many multiply-adds per step (parameters × batch size): small tabular models, whose steps
# are faster on one thread, while MNIST MLPs (≥ 10⁸ per step) gain from every core (benchmarks/threads.py).
SMALL_STEP = 2**24




def threads_for(threads: int, model: torch.nn.Module | None = None, batch_size: int = 1) -> int:
    """The thread count aekit uses: ``threads`` if > 0; for 0 (automatic) one thread for a model whose
    step is small (parameters × ``batch_size`` < ``SMALL_STEP``) and torch's current setting otherwise;
    -1: every core.

    Example
    -------
    >>> import torch
    >>> threads_for(0, torch.nn.Linear(8, 4), batch_size=64)
    1
    >>> threads_for(3)
    3
    """
    check(threads, "threads", THREADS)
    if threads > 0:
        return threads
    if threads == -1:
        return cores()
    if model is not None and sum(p.numel() for p in model.parameters()) * batch_size < SMALL_STEP:
        return 1
    return torch.get_num_threads()


@contextmanager
def using_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` inside the block, the caller's restored after it."""
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
