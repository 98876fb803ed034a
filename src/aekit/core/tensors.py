"""Arrays into tensors for a model: validated, flattened, in the model's dtype."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..store.files import check_array


def param_dtype(model: torch.nn.Module) -> torch.dtype:
    """The floating-point dtype of ``model``'s parameters (float32 unless it was converted, e.g. ``.double()``)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def as_tensor(x: Any, model: torch.nn.Module, what: str = "data") -> Tensor:
    """Validate ``x`` for ``model`` and return it as a CPU tensor (N, D) in the model's dtype."""
    if hasattr(x, "x") and hasattr(x, "shape") and not isinstance(x, (np.ndarray, Tensor)):  # an aekit Dataset
        x = x.x
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    dtype = param_dtype(model)
    a = check_array(x, what, np.float64 if dtype == torch.float64 else np.float32)
    a = a.reshape(len(a), -1)
    if a.shape[1] != model.input_size:
        raise ValueError(f"{what} has {a.shape[1]} features per sample but the model expects {model.input_size}")
    return torch.from_numpy(a).to(dtype)
