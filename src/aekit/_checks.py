"""Validation of numeric arguments, shared by every part: one wording for every range error."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


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


def integer(v: Any, what: str, low: int = 1) -> int:
    """``int(v)`` if it is an integer ≥ ``low``, else ``ValueError``."""
    if not (is_int(v) and v >= low):
        raise ValueError(f"{what} must be an integer >= {low}, got {v!r}")
    return int(v)
