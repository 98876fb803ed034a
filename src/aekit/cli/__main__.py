"""``python -m aekit.cli``: the ``aekit`` command."""

from . import main

main()
