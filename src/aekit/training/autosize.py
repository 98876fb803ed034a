"""Defaults that adapt to the data: the estimators' code size, widths, k, batch size and epochs from n and d.

The presets' own defaults were chosen for MNIST-sized data (d = 784, n = 60,000). On a table of 6
features and 300 rows they would train a 256-unit network for 60 epochs (and learn to reconstruct the
anomalies too), or refuse (a code of 8 units for 6 features). The estimators fill every option the
caller left unset with :func:`adapt`'s rule:

- code size ``"auto"``: K = round(√d), clipped to [1, d − 1] (at least 1 where d = 1); presets whose code
  is overcomplete by design (a default of 0 = 2·d or expansion·d) keep their own;
- hidden widths: each of the preset's widths capped at max(16, min(2·d, n // 2)), so the network is no
  wider than twice the input, nor than half the number of rows;
- k of a TopK code: the preset's, or a quarter of the code size where that is smaller; AuxK's k likewise
  at most half the code;
- batch size: the preset's, or n // 8 where that is smaller (at least 16, or n);
- epochs: enough for about 2,000 optimiser steps, at least 1 and at most the preset's.
"""

from __future__ import annotations

import math
from typing import Any

from ..presets.catalog import get_preset
from .config import TrainConfig

STEPS = 2000  # optimiser steps the epoch rule aims at


def auto_code_size(d: int) -> int:
    """round(√d) clipped to [1, d − 1]: 1 for d ≤ 2, 3 for 8 features, 17 for 300, 28 for 784."""
    return max(1, min(d - 1, round(math.sqrt(d))))


def adapt(preset: str, n: int, d: int, model: dict[str, Any], train: dict[str, Any], steps: int | None = None,
          batch_size: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``model`` and ``train`` options with the data-adapted defaults filled in where the caller set none.

    ``model["code_size"] == "auto"`` asks for the automatic code size; any option present is kept as given.
    The epochs aim at ``steps`` optimiser steps (``STEPS`` unless given; within the preset's epochs); ``batch_size`` replaces the
    preset's default batch where the caller set none.

    Example
    -------
    >>> adapt("undercomplete", 300, 6, {"code_size": "auto"}, {})
    ({'code_size': 2, 'hidden': [16]}, {'batch_size': 37, 'epochs': 60})
    """
    p = get_preset(preset)
    accepted = p.options()
    model, train = dict(model), dict(train)
    if model.get("code_size") == "auto":
        if accepted.get("code_size") == 0:  # overcomplete by design: the preset's 2·d or expansion·d
            del model["code_size"]
        else:
            model["code_size"] = auto_code_size(d)
    default_hidden = accepted.get("hidden")
    if "hidden" not in model and default_hidden:
        cap = max(16, min(2 * d, n // 2))
        model["hidden"] = [min(int(w), cap) for w in default_hidden]
    code = model.get("code_size") or (accepted["expansion"] * d if "expansion" in accepted else 2 * d)
    for name, share in (("k", 4), ("aux_k", 2)):
        default = accepted.get(name)
        if name not in model and isinstance(default, int) and default > max(1, code // share):
            model[name] = max(1, code // share)
    defaults = {**{f: getattr(TrainConfig, f) for f in ("batch_size", "epochs")}, **p.train_defaults}
    if batch_size is not None:
        defaults["batch_size"] = batch_size
    if "batch_size" not in train:
        train["batch_size"] = min(int(defaults["batch_size"]), max(min(16, n), n // 8))
    if "epochs" not in train:
        per_epoch = math.ceil(n / min(train["batch_size"], n))
        train["epochs"] = max(1, min(int(defaults["epochs"]), math.ceil((steps or STEPS) / per_epoch)))
    return model, train
