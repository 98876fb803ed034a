"""Validation of numeric arguments, shared by every part: one wording for every range error."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn


def is_int(v: Any) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """A finite real number (Python or NumPy), not a bool."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def number(v: Any, what: str, low: float = -math.inf, high: float = math.inf, *,
           low_open: bool = False, high_open: bool = False) -> float:
    """``float(v)`` if it is a finite number in the range, else ``ValueError`` naming ``what`` and the range.

    Example
    -------
    >>> number(0.5, "nu", 0, 1, high_open=True)
    0.5
    """
    ok = is_number(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        if high == math.inf:
            accepted = f"a finite number {'>' if low_open else '>='} {low:g}"
        else:
            accepted = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{what} must be {accepted}, got {v!r}")
    return float(v)


def integer(v: Any, what: str, low: int = 1, high: int | None = None) -> int:
    """``int(v)`` if it is an integer in [``low``, ``high``], else ``ValueError``."""
    if not (is_int(v) and v >= low and (high is None or v <= high)):
        accepted = f">= {low}" if high is None else f"in [{low}, {high:,}]"
        raise ValueError(f"{what} must be an integer {accepted}, got {v!r}")
    return int(v)


def fits_in_memory(build: Callable[[], nn.Module], what: str) -> None:
    """Run ``build`` on the ``meta`` device (no memory) and refuse, with ``ValueError``, a module whose
    weights exceed this machine's memory — before any tensor is allocated: a typo
    (``--code-size 10000000000``) or a crafted config must not take the machine down."""
    try:
        with torch.device("meta"):
            dry = build()
    except NotImplementedError:  # a builder that computes with tensor values cannot build without data
        return
    except (RuntimeError, OverflowError, TypeError, MemoryError) as e:  # sizes torch cannot even describe
        if "meta" in str(e):
            return  # e.g. .item() in a user's builder: no dry build, so no estimate; the real build decides
        raise ValueError(f"{what} cannot be built ({str(e).splitlines()[0][:160]})") from None
    if not isinstance(dry, nn.Module):
        return  # not a model at all: the caller says so
    need = sum(t.numel() * t.element_size() for t in [*dry.parameters(), *dry.buffers()])
    have = memory_bytes()
    if need > have:
        raise ValueError(f"{what} needs {need / 2**30:,.1f} GiB for its weights alone, more than this machine's "
                         f"{have / 2**30:,.1f} GiB of memory; check the sizes (code_size, hidden, channels)")


def memory_bytes() -> int:
    """This machine's physical memory in bytes (2**62 where the platform does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**62
