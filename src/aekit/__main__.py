"""``python -m aekit`` (and ``torchrun -m aekit``): the ``aekit`` command."""

from .cli import main

main()
