"""The registry and the recipes: named builders ``(input_shape, **options) -> Autoencoder``.

:mod:`~aekit.presets.catalog` holds every family registered and the lookups (``aekit.create``,
``aekit.get_preset``, ``aekit.PRESETS``); :mod:`~aekit.presets.options` the options they share, torch-free.
This package's ``__init__`` imports nothing, so that the command line's option checks load without torch.
"""
