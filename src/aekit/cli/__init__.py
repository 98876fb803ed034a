"""The ``aekit`` command: train, evaluate, encode, reconstruct, report, compare, presets, activations, score, index,
search.

Bad input ends with one line ``error: …`` on stderr and exit status 2. ``train.py`` holds the
``train`` command, ``use.py`` the commands that use a trained run, ``interp.py`` ``activations``, ``series.py``
``score``, ``retrieval.py`` ``index`` and ``search``.
"""

from . import interp, retrieval, series, train, use  # noqa: F401  (each registers its commands on the app)
from ._app import app

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover
    """Run the ``aekit`` command (the console script's entry point)."""
    app()
