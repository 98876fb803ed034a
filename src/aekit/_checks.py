"""Validation of arguments, shared by every part, preset, estimator and the trainer: constraints declared
as values (:class:`Interval`, :class:`OneOf`, ...) and one wording for every range error (:func:`check`)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from torch import nn


def is_int(v: Any) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """A finite real number (Python or NumPy), not a bool."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


class Constraint:
    """What a parameter accepts: ``accepts(v)`` and the words for it (interface)."""

    def accepts(self, v: Any) -> bool:
        raise NotImplementedError

    def __str__(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Interval(Constraint):
    """An integer (``kind=int``) or finite number (``float``) in a range; ``closed`` says which ends belong."""

    kind: type
    low: float | None = None
    high: float | None = None
    closed: str = "both"  # "both", "left", "right" or "neither"

    def accepts(self, v: Any) -> bool:
        if not (is_int(v) if self.kind is int else is_number(v)):
            return False
        left, right = self.closed in ("both", "left"), self.closed in ("both", "right")
        return ((self.low is None or (v >= self.low if left else v > self.low))
                and (self.high is None or (v <= self.high if right else v < self.high)))

    def __str__(self) -> str:
        what = "an integer" if self.kind is int else "a finite number"
        left, right = self.closed in ("both", "left"), self.closed in ("both", "right")
        if self.high is None:
            return what if self.low is None else f"{what} {'>=' if left else '>'} {self.low:g}"
        if self.low is None:
            return f"{what} {'<=' if right else '<'} {self.high:g}"
        what = "an integer in" if self.kind is int else "in"  # a bounded range says it is finite
        high = f"{self.high:g}" if self.kind is not int else (
            f"2**{self.high.bit_length() - 1}" if self.high >= 2**32 and self.high & (self.high - 1) == 0 else f"{self.high:,}")
        return f"{what} {'[' if left else '('}{self.low:g}, {high}{']' if right else ')'}"


@dataclass(frozen=True)
class OneOf(Constraint):
    """One of the listed values (strings, integers, ``None``, ``True``/``False``)."""

    values: tuple

    def __init__(self, *values: Any) -> None:
        object.__setattr__(self, "values", values)

    def accepts(self, v: Any) -> bool:
        if isinstance(v, (bool, np.bool_)) or v is None:  # True is not 1: match booleans and None by identity
            return any(v is w or (isinstance(w, bool) and bool(v) is w) for w in self.values)
        if is_int(v):
            return any(is_int(w) and v == w for w in self.values)
        return isinstance(v, str) and v in self.values

    def __str__(self) -> str:
        words = [repr(v) for v in self.values]
        return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


BOOL = OneOf(True, False)


@dataclass(frozen=True)
class Sizes(Constraint):
    """A list (or tuple) of integers >= ``low``, possibly empty: layer sizes, channels."""

    low: int = 1

    def accepts(self, v: Any) -> bool:
        return isinstance(v, (list, tuple)) and all(is_int(s) and s >= self.low for s in v)

    def __str__(self) -> str:
        return f"a list of integers >= {self.low}"


@dataclass(frozen=True)
class Instance(Constraint):
    """An instance of ``kind`` (e.g. ``dict``), described as ``words``."""

    kind: type
    words: str

    def accepts(self, v: Any) -> bool:
        return isinstance(v, self.kind)

    def __str__(self) -> str:
        return self.words


@dataclass(frozen=True)
class Text(Constraint):
    """Any string (a spec parsed elsewhere, like a noise recipe or an activation name)."""

    def accepts(self, v: Any) -> bool:
        return isinstance(v, str)

    def __str__(self) -> str:
        return "a string"


def check(v: Any, what: str, *accepted: Constraint) -> Any:
    """``v`` if one of the constraints ``accepted`` accepts it, else ``ValueError``: every range error
    of aekit reads "WHAT must be ACCEPTED, got V".

    Example
    -------
    >>> check(0.5, "nu", Interval(float, 0, 1, closed="left"))
    0.5
    >>> check("auto", "n_estimators", Interval(int, 1), OneOf("auto"))
    'auto'
    """
    if not any(c.accepts(v) for c in accepted):
        words = [str(c) for c in accepted]
        words = ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]
        raise ValueError(f"{what} must be {words}, got {v!r}")
    return v


def validate(values: Mapping[str, Any], constraints: Mapping[str, Sequence[Constraint]], where: str = "") -> None:
    """Check each of ``values`` that has an entry in ``constraints`` (scikit-learn's ``_parameter_constraints``
    idea: the accepted values are declared in one table, the wording is :func:`check`'s)."""
    for name, accepted in constraints.items():
        if name in values:
            check(values[name], f"{where}{name}", *accepted)


def number(v: Any, what: str, low: float = -math.inf, high: float = math.inf, *,
           low_open: bool = False, high_open: bool = False) -> float:
    """``float(v)`` if it is a finite number in the range, else ``ValueError`` naming ``what`` and the range.

    Example
    -------
    >>> number(0.5, "nu", 0, 1, high_open=True)
    0.5
    """
    closed = {(False, False): "both", (False, True): "left", (True, False): "right"}.get((low_open, high_open), "neither")
    return float(check(v, what, Interval(float, None if low == -math.inf else low,
                                         None if high == math.inf else high, closed)))


def integer(v: Any, what: str, low: int = 1, high: int | None = None) -> int:
    """``int(v)`` if it is an integer in [``low``, ``high``], else ``ValueError``."""
    return int(check(v, what, Interval(int, low, high)))


def fits_in_memory(build: Callable[[], nn.Module], what: str) -> None:
    """Run ``build`` on the ``meta`` device (no memory) and refuse, with ``ValueError``, a module whose
    weights exceed this machine's memory — before any tensor is allocated: a typo
    (``--code-size 10000000000``) or a crafted config must not take the machine down."""
    import torch  # here, not at the top: the command line's option checks load without torch

    try:
        with torch.device("meta"):
            dry = build()
    except NotImplementedError:  # a builder that computes with tensor values cannot build without data
        return
    except (RuntimeError, OverflowError, TypeError, MemoryError) as e:  # sizes torch cannot even describe
        if "meta" in str(e):
            return  # e.g. .item() in a user's builder: no dry build, so no estimate; the real build decides
        raise ValueError(f"{what} cannot be built ({str(e).splitlines()[0][:160]})") from None
    if not isinstance(dry, torch.nn.Module):
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
