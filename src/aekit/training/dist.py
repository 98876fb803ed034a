"""The distributed context: how many processes train, which one this is, and the few collective
operations the trainer needs — on ``torch.distributed`` as ``torchrun`` sets it up.

In one process everything here is a no-op. Under ``torchrun`` (``WORLD_SIZE`` > 1) the process
group is initialised once, with gloo on CPU and NCCL on CUDA (one GPU per process, ``LOCAL_RANK``),
and a timeout, so a rank that dies never leaves the others waiting forever. Nothing else in aekit
reads these environment variables or calls ``torch.distributed``.
"""

from __future__ import annotations

import atexit
import os
import time
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor, nn

TIMEOUT = timedelta(minutes=10)
_HELD: list[Tensor] = []  # every tensor given to a collective, until gloo's worker threads have let go of it


@dataclass(frozen=True)
class Context:
    """This process's place in the run: ``world`` processes, this one ``rank`` (``local_rank`` on its machine)."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes: metrics, checkpoints, the model, reports (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def device(self, requested: torch.device) -> torch.device:
        """The device this rank trains on: its own GPU (``cuda:LOCAL_RANK``) when CUDA is asked for."""
        if self.distributed and requested.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return requested

    def sum(self, t: Tensor) -> Tensor:
        """``t`` summed over all ranks (in place), on every rank."""
        if self.distributed:
            dist.all_reduce(_hold(t), op=dist.ReduceOp.SUM)
        return t

    def sums(self, values: dict[str, float | Tensor], device: torch.device) -> dict[str, float]:
        """Each value summed over all ranks (one collective for all of them); keys must agree across ranks."""
        keys = sorted(values)
        if not keys:
            return {}
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
        return dict(zip(keys, self.sum(t).tolist()))

    def flags(self, *flags: bool, device: torch.device) -> list[bool]:
        """Each flag OR-ed over all ranks: one rank's NaN, signal or due checkpoint is every rank's."""
        if not self.distributed:
            return list(flags)
        t = torch.tensor([float(f) for f in flags], device=device)
        return [bool(v) for v in self.sum(t)]

    def gather(self, t: Tensor) -> list[Tensor]:
        """``t`` of every rank (same shape everywhere), in rank order, on every rank."""
        if not self.distributed:
            return [t]
        out = [_hold(torch.empty_like(t)) for _ in range(self.world)]
        dist.all_gather(out, _hold(t))
        return out

    def broadcast(self, t: Tensor) -> Tensor:
        """``t`` of rank 0, in place, on every rank."""
        if self.distributed:
            dist.broadcast(_hold(t), 0)
        return t

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The module to call in training: ``DistributedDataParallel`` (gradients averaged over ranks, rank 0's
        weights broadcast at the start) when distributed, else the model itself."""
        if not self.distributed:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def context(requested: torch.device | None = None) -> Context:
    """The context of this process, from ``torchrun``'s environment; initialises the process group on first
    use (the backend follows the device: NCCL for CUDA, else gloo).

    Example
    -------
    >>> context().world  # one process, no torchrun
    1
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Context()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        cuda = requested is not None and requested.type == "cuda"
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
        atexit.register(_destroy)
    return Context(world, rank, local)


def _hold(t: Tensor) -> Tensor:
    """Keep ``t`` referenced from Python until the collective's worker thread has released it.

    Why: a gloo worker frees a finished operation (and the tensors it holds) a moment *after* the caller's
    wait returns. If Python had already dropped such a tensor, that free drops its Python object too, which
    needs the GIL; once the interpreter is shutting down, taking the GIL ends the thread and the process
    aborts (SIGABRT, "terminate called without an active exception") — a finished run reported as failed.
    While Python holds a reference, the worker's release only decrements a count."""
    _HELD[:] = [h for h in _HELD if h._use_count() > 1]  # those only Python holds are safe to let go
    _HELD.append(t)
    return t


def _destroy(wait_s: float = 30.0) -> None:
    """At exit, with the interpreter still whole: wait (GIL released) until the collectives' worker threads
    have let go of every tensor aekit gave them, then destroy the process group aekit created."""
    deadline = time.monotonic() + wait_s
    while any(h._use_count() > 1 for h in _HELD) and time.monotonic() < deadline:
        time.sleep(0.001)
    _HELD.clear()
    if dist.is_initialized():
        dist.destroy_process_group()
