"""Every preset aekit ships, registered, and the functions that look one up by name.

Importing this module imports each family (:mod:`~aekit.presets.classic`, :mod:`~aekit.presets.sae`,
:mod:`~aekit.presets.psd`, :mod:`~aekit.presets.hashing`), which register their presets on import; a user's
presets are registered the same way (:func:`~aekit.presets._registry.register`, or ``--plugin MODULE``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core.model import Autoencoder
# each family registers its presets on import, in this order (the order `aekit presets` lists them in; not isort's)
from . import classic  # noqa: F401
from . import sae  # noqa: F401
from . import psd  # noqa: F401
from . import hashing  # noqa: F401
from ._registry import PRESETS, Preset, _create

__all__ = ["PRESETS", "create", "from_config", "get_preset"]


def get_preset(name: str, module: str | None = None) -> Preset:
    """The registered preset ``name``, or a ``ValueError`` listing the known ones (and, when ``module``
    is the module a checkpoint says defines it, how to make it known)."""
    if isinstance(name, str) and name in PRESETS:
        return PRESETS[name]
    if module == "__main__":
        raise ValueError(f"preset {name!r} was defined in a script (__main__): move its builder into an importable "
                         "module and import it to rebuild this model")
    if isinstance(module, str):
        raise ValueError(f"preset {name!r} is not registered in this process; it is defined in module {module!r}: "
                         f"import it first (command line: --plugin {module}). A checkpoint never imports code by itself")
    import difflib

    near = difflib.get_close_matches(str(name), sorted(PRESETS), n=1)
    hint = f"did you mean {near[0]!r}? " if near else ""
    raise ValueError(f"unknown preset {name!r}; {hint}choose one of {', '.join(sorted(PRESETS))} "
                     "(your own presets: --plugin MODULE, or import the module that registers them)")


def create(name: str, input_shape: Sequence[int], **options: Any) -> Autoencoder:
    """Build preset ``name`` for samples of shape ``input_shape``.

    Options that are ``None`` take the preset's default; an unknown option is a
    ``ValueError`` that lists the accepted ones.

    Example
    -------
    >>> ae = create("undercomplete", (64,), code_size=8)
    >>> ae.config["preset"], ae.code_size
    ('undercomplete', 8)
    """
    return _create(get_preset(name), input_shape, options)


def from_config(config: dict) -> Autoencoder:
    """Rebuild a model from the ``config`` recorded by :func:`create`."""
    try:
        preset = get_preset(config["preset"], config.get("module"))
        return _create(preset, config["input_shape"], dict(config.get("options", {})))
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"malformed model config ({e!r}): {str(config)[:300]}") from None
