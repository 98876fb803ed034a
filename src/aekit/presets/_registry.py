"""The registry of presets: named builders ``(input_shape, **options) -> Autoencoder``.

aekit's own recipes (the families of :mod:`aekit.presets`) and a user's are registered the same way, with
:func:`register`; :func:`~aekit.presets.catalog.create` builds one and records the JSON config that rebuilds it
exactly (used by checkpoints). A config of a user's preset also names the builder's module, so
that a checkpoint can say which module to import — it never imports one by itself.

Options that several presets share are declared once, as an :class:`OptionGroup` (a frozen dataclass)
that a builder takes as the default of one parameter: its fields are that preset's options, flat like
the others, with the default instance's values as their defaults (timm's pattern: presets forward the
shared options to a shared builder rather than restating them).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._checks import fits_in_memory
from ..core.model import Autoencoder
from .options import check_options

REQUIRED = inspect.Parameter.empty  # an option whose builder parameter has no default


class OptionGroup:
    """Interface: options that presets share, as the fields of a frozen dataclass (see the module's doc).

    Example
    -------
    >>> from aekit import get_preset
    >>> from aekit.presets._common import MLPBody
    >>> options = get_preset("sparse").options()
    >>> options["activation"], options["tied"], MLPBody(activation="relu").activation
    ('sigmoid', False, 'relu')
    """


def _groups(build: Callable) -> dict[str, OptionGroup]:
    """The builder's parameters whose default is an :class:`OptionGroup`, by parameter name."""
    return {k: p.default for k, p in inspect.signature(build).parameters.items()
            if isinstance(p.default, OptionGroup)}


@dataclass(frozen=True)
class Preset:
    """A registered recipe: its builder, a one-line summary and training defaults."""

    name: str
    build: Callable[..., Autoencoder]
    summary: str
    train_defaults: dict[str, Any] = field(default_factory=dict)

    def options(self) -> dict[str, Any]:
        """The builder's options and their defaults (everything but ``input_shape``; ``REQUIRED`` if none)."""
        out: dict[str, Any] = {}
        for k, p in inspect.signature(self.build).parameters.items():
            if isinstance(p.default, OptionGroup):
                out.update((f.name, getattr(p.default, f.name)) for f in dataclasses.fields(p.default))
            elif k != "input_shape" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                out[k] = p.default
        return out

    @property
    def module(self) -> str:
        """The module that defines the builder (where a user's preset must be imported from)."""
        return getattr(self.build, "__module__", None) or "__main__"  # exec'd code has no module


PRESETS: dict[str, Preset] = {}


def register(name: str, summary: str | None = None, **train_defaults: Any) -> Callable:
    """Decorator: register ``builder(input_shape, **options) -> Autoencoder`` as preset ``name``.

    ``summary`` defaults to the first line of the builder's docstring; ``train_defaults`` are
    :class:`~aekit.training.optim.TrainConfig` fields (e.g. ``epochs=20``). The builder's keyword
    parameters are the preset's options (``aekit presets`` lists them, ``aekit train`` takes them
    as flags), and models it builds can be saved, resumed and reported like aekit's own. An option
    named like one of aekit's (:data:`aekit.presets.options.OPTIONS`) is checked against that option's
    constraint before the builder runs; a parameter whose default is an :class:`OptionGroup` offers
    the group's fields as options.

    Example
    -------
    >>> import aekit
    >>> from torch import nn
    >>> @aekit.register("doc-two-layer", epochs=5)
    ... def two_layer(input_shape, code_size: int = 4, width: int = 32):
    ...     "A two-layer MLP of my own."
    ...     d = input_shape[0]
    ...     enc = nn.Sequential(nn.Linear(d, width), nn.ReLU(), nn.Linear(width, code_size))
    ...     dec = nn.Sequential(nn.Linear(code_size, width), nn.ReLU(), nn.Linear(width, d))
    ...     return aekit.Autoencoder(enc, dec, aekit.Gaussian(), input_shape=input_shape, code_size=code_size)
    >>> aekit.create("doc-two-layer", (10,), width=16).config["options"]
    {'code_size': 4, 'width': 16}
    """

    def deco(fn: Callable[..., Autoencoder]) -> Callable[..., Autoencoder]:
        if name in PRESETS and PRESETS[name].build is not fn:
            raise ValueError(f"preset {name!r} is already registered (by {PRESETS[name].module})")
        if "input_shape" not in inspect.signature(fn).parameters:
            raise ValueError(f"a preset builder takes input_shape as its first argument; {fn.__name__} does not")
        flat = [k for k, p in inspect.signature(fn).parameters.items() if not isinstance(p.default, OptionGroup)]
        grouped = [f.name for g in _groups(fn).values() for f in dataclasses.fields(g)]
        if len({*flat, *grouped}) < len(flat) + len(grouped):
            raise ValueError(f"{fn.__name__}: an option is declared twice (its own parameters and option groups "
                             f"must have distinct names: {sorted(flat)}, {sorted(grouped)})")
        doc = (inspect.getdoc(fn) or "").strip().splitlines()
        PRESETS[name] = Preset(name, fn, summary or (doc[0] if doc else name), dict(train_defaults))
        return fn

    return deco


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _create(preset: Preset, input_shape: Sequence[int], options: dict[str, Any]) -> Autoencoder:
    name, accepted = preset.name, preset.options()
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for preset {name!r}; accepted: {', '.join(accepted)}"
        )
    input_shape = tuple(int(s) for s in input_shape)
    if not input_shape or any(s < 1 for s in input_shape):
        raise ValueError(f"input_shape must be positive integers, got {input_shape}")
    resolved = {k: (options[k] if options.get(k) is not None else d) for k, d in accepted.items()}
    missing = [k for k, v in resolved.items() if v is REQUIRED]
    if missing:
        raise ValueError(f"preset {name!r} needs the option(s) {', '.join(missing)}")
    check_options(resolved)
    kwargs = dict(resolved)
    for param, group in _groups(preset.build).items():  # the flat options of a group, back into the group
        kwargs[param] = type(group)(**{f.name: kwargs.pop(f.name) for f in dataclasses.fields(group)})
    fits_in_memory(lambda: preset.build(input_shape, **kwargs), f"preset {name!r} with these options")
    model = preset.build(input_shape, **kwargs)
    if not isinstance(model, Autoencoder):
        raise ValueError(f"the builder of preset {name!r} returned {type(model).__name__}, not an aekit Autoencoder")
    model.config = {
        "preset": name,
        "input_shape": list(input_shape),
        "options": {k: _jsonable(v) for k, v in resolved.items()},
    }
    if not preset.module.startswith("aekit."):
        model.config["module"] = preset.module  # where to import it from to rebuild it
    return model
