"""A trained model for deployment: its encoder or its anomaly scorer as one graph (ONNX, or a ``torch.export``
program) that takes raw inputs — the run's standardisation inside — and is checked against the model it came from.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..core.model import Autoencoder, fp32

PARTS = ("encoder", "scorer")
FORMATS = {".onnx": "onnx", ".pt2": "torch.export"}
ATOL, RTOL = 1e-4, 1e-4  # float32 graphs: the exporters reorder a few sums, nothing more


class Deployable(nn.Module):
    """The part of ``model`` a deployment needs, as one module of raw inputs: flat rows ``(batch, D)``, as
    ``aekit encode`` and ``aekit.load`` give them (an image model too), or windows ``(batch, T, C)`` for a model
    of windows of a series (:attr:`input_shape`).

    ``part="encoder"``: the codes ``(batch, K)`` of :meth:`Autoencoder.encode` (a VAE's posterior mean).
    ``part="scorer"``: each row's anomaly score ``(batch,)`` as ``aekit score`` computes it — the squared
    reconstruction error summed over features; with ``windows=True``, for a model of windows ``(T, C)`` of a
    series, the mean over the window's steps of the error summed over channels (the units of
    :func:`aekit.evaluation.series.window_errors`). Higher is more anomalous. ``center`` and ``scale`` (one per feature, or
    one per channel of a window) standardise the input first, as in training, so the graph reads data in its own
    units.

    Example
    -------
    >>> from aekit import create
    >>> m = create("linear", (4,), code_size=2)
    >>> Deployable(m, "scorer", center=[0, 0, 0, 0], scale=[1, 1, 1, 2])(torch.zeros(3, 4)).shape
    torch.Size([3])
    """

    def __init__(self, model: Autoencoder, part: str = "encoder", center: Sequence[float] | np.ndarray | None = None,
                 scale: Sequence[float] | np.ndarray | None = None, windows: bool = False) -> None:
        super().__init__()
        if windows and len(model.input_shape) != 2:
            raise ValueError(f"windows=True needs a model of windows (T, C); its input_shape is {model.input_shape}")
        if part not in PARTS:
            raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
        if (center is None) != (scale is None):
            raise ValueError("give center and scale together (the training rows' mean and standard deviation)")
        if center is not None and np.size(center) != np.size(scale):
            raise ValueError(f"center has {np.size(center)} values and scale {np.size(scale)}: one of each per feature")
        self.model, self.part, self.windows = model, part, windows
        # what the graph reads: windows (T, C) as they are, anything else (images (C, H, W) too) as flat rows
        self.input_shape = model.input_shape if len(model.input_shape) == 2 else (model.input_size,)
        self.standardize = center is not None
        shape = self._stats_shape(len(np.ravel(center))) if center is not None else ()
        for name, v in (("center", center), ("scale", scale)):
            t = torch.as_tensor(np.asarray(v if v is not None else 0.0, dtype=np.float32)).reshape(shape)
            self.register_buffer(name, t)
        if self.standardize and not bool((self.scale > 0).all()):
            raise ValueError("every scale must be positive")

    def _stats_shape(self, n: int) -> tuple[int, ...]:
        if n == self.model.input_size:
            return self.input_shape
        if len(self.model.input_shape) == 2 and n == self.model.input_shape[1]:
            return (n,)  # one per channel of a window (T, C)
        raise ValueError(f"center and scale have {n} values; the model reads {self.model.input_size} features "
                         f"(input_shape {self.model.input_shape})")

    def forward(self, x: Tensor) -> Tensor:
        if self.standardize:
            x = (x - self.center) / self.scale
        x = x.flatten(1)  # not reshape(len(x), -1): len() would fix the exported batch axis
        if self.part == "encoder":
            return self.model.encode(x)
        e = (x - fp32(self.model.reconstruct(x))) ** 2
        if self.windows:  # (batch, T, C): summed over channels, mean over steps
            return e.unflatten(1, self.model.input_shape).sum(-1).mean(-1)
        return e.sum(1)


def export_model(model: Autoencoder, path: str | Path, part: str = "encoder",
                 center: Sequence[float] | np.ndarray | None = None, scale: Sequence[float] | np.ndarray | None = None,
                 example: np.ndarray | None = None, windows: bool = False) -> float:
    """Write ``model``'s encoder or scorer (:class:`Deployable`) to ``path`` — ``.onnx`` (ONNX, the ``export``
    extra) or ``.pt2`` (a ``torch.export`` program, ``torch.export.load(path).module()``) — with a dynamic batch
    axis, then run the written file on ``example`` rows (raw units, ``(n, *input_shape)``; random rows in the
    training scale if None) and compare with the model; the graph reads :attr:`Deployable.input_shape` rows. The graph is float32 on the CPU. Returns the largest absolute difference; raises
    ``ValueError`` when it exceeds float32 tolerance or the model cannot be exported. ``part``, ``center``,
    ``scale`` and ``windows`` are :class:`Deployable`'s.

    Example
    -------
    >>> import tempfile
    >>> from aekit import create
    >>> with tempfile.TemporaryDirectory() as d:
    ...     diff = export_model(create("linear", (4,), code_size=2), f"{d}/encoder.pt2")
    >>> diff < 1e-5
    True
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix)
    if fmt is None:
        raise ValueError(f"{path}: name the file .onnx (ONNX) or .pt2 (torch.export)")
    # a float32 copy on the CPU, in evaluation mode: the caller's model keeps its device, dtype and mode
    module = Deployable(copy.deepcopy(model).float().cpu(), part, center, scale, windows).eval()
    x = torch.as_tensor(_example(module, example))
    batch = torch.export.Dim("batch", min=1)
    tmp = path.with_name(f".{path.stem}.part{path.suffix}")  # checked before it takes the name: never a bad file
    with torch.no_grad(), warnings.catch_warnings():
        # parts that keep their last forward's values for the training statistics (e.g. JumpReLU's gates): the
        # graph needs none of them
        warnings.filterwarnings("ignore", message=".*assigned during export")
        want = module(x).numpy()
        try:
            if fmt == "onnx":
                _onnx(module, x, batch, tmp)
            else:
                torch.export.save(torch.export.export(module, (x,), dynamic_shapes=({0: batch},)), tmp)
        except ImportError:
            raise
        except Exception as e:  # torch's exporters raise many kinds; one line says which model and why
            tmp.unlink(missing_ok=True)
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise ValueError(f"cannot export this model's {part} to {fmt}: {type(e).__name__}: {first}") from e
    try:
        got = run_exported(tmp, x.numpy())
        if got.shape != want.shape:
            raise ValueError(f"the exported {part} answers shape {got.shape}, the model {want.shape}; nothing written")
        diff = float(np.max(np.abs(got - want))) if want.size else 0.0
        if not np.allclose(got, want, atol=ATOL, rtol=RTOL):
            raise ValueError(f"the exported {part} differs from the model by up to {diff:.3g}; nothing written")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return diff


def _example(module: Deployable, example: np.ndarray | None) -> np.ndarray:
    shape = module.input_shape
    if example is None:  # rows in the training scale: the data's own units when it was standardised
        z = np.random.default_rng(0).standard_normal((8, *shape)).astype(np.float32)
        return z * module.scale.numpy() + module.center.numpy() if module.standardize else z
    x = np.asarray(example, dtype=np.float32)
    if x.ndim < 2 or x[0].size != module.model.input_size:
        raise ValueError(f"example rows must have {module.model.input_size} values each, got shape {x.shape}")
    x = x.reshape(len(x), *shape)
    return x if len(x) > 1 else np.concatenate([x, x])  # batch 1 would fix the batch axis at 1


def _onnx(module: nn.Module, x: Tensor, batch: torch.export.Dim, path: Path) -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise ImportError(f"ONNX export needs the onnx and onnxscript packages ({e.name} is missing): "
                          "pip install 'aekit[export]'") from e
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # e.g. "torchvision is not installed" for every run
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():  # it narrates each stage on stdout
            warnings.simplefilter("ignore", (FutureWarning, DeprecationWarning))  # torch's own, nothing to act on
            program = torch.onnx.export(module, (x,), dynamo=True, input_names=["x"],
                                        output_names=["codes" if module.part == "encoder" else "scores"],
                                        dynamic_shapes=({0: batch},), verbose=False)
    finally:
        quiet.setLevel(level)
    program.save(str(path))


def run_exported(path: str | Path, x: np.ndarray) -> np.ndarray:
    """Run an exported encoder or scorer (``.onnx`` with onnxruntime, ``.pt2`` with torch) on rows ``x``.

    Example
    -------
    >>> import tempfile
    >>> from aekit import create
    >>> m = create("linear", (4,), code_size=2)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = export_model(m, f"{d}/scorer.pt2", part="scorer")
    ...     run_exported(f"{d}/scorer.pt2", np.zeros((5, 4), np.float32)).shape
    (5,)
    """
    path, x = Path(path), np.ascontiguousarray(x, dtype=np.float32)
    if path.suffix == ".onnx":
        try:
            import onnxruntime
        except ImportError as e:
            raise ImportError("running an ONNX file needs onnxruntime: pip install 'aekit[export]'") from e
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        return torch.export.load(path).module()(torch.from_numpy(x)).numpy()
