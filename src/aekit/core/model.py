"""The one model: an autoencoder composed of corruption, encoder, decoder, likelihood and penalties.

    x̃ ~ C(x̃ | x),   h = f(x̃),   r = g(h),   loss = −log p(x | r) + Σ Ω(h, x̃, f)

Variants of the family are recipes over these parts (see :mod:`aekit.presets`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from .corruption import Corruption, Identity
from .likelihoods import Likelihood

if TYPE_CHECKING:
    from ..parts.variational import Posterior


@contextmanager
def evaluating(*modules: nn.Module) -> Iterator[None]:
    """Eval mode inside the block, each module's own mode restored after (also on an error): a library call
    that scores or encodes leaves the caller's model as it found it.

    Example
    -------
    >>> m = nn.Dropout().train()
    >>> with evaluating(m):
    ...     m.training
    False
    >>> m.training
    True
    """
    modes = [{k: v.training for k, v in m.named_modules()} for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            for k, v in m.named_modules():
                v.training = mode.get(k, v.training)


@contextmanager
def seeded(seed: int, device: torch.device | str | None = None) -> Iterator[None]:
    """torch's global RNG seeded with ``seed`` inside the block (the CPU's, and a CUDA ``device``'s), and the
    caller's state restored after: a fixed estimate without re-seeding the user's random numbers.

    Example
    -------
    >>> before = torch.get_rng_state()
    >>> with seeded(0):
    ...     a = torch.rand(1)
    >>> with seeded(0):
    ...     b = torch.rand(1)
    >>> bool(a == b), bool((torch.get_rng_state() == before).all())
    (True, True)
    """
    device = torch.device(device) if device is not None else None
    cuda = device is not None and device.type == "cuda"
    with torch.random.fork_rng(devices=[device.index or 0] if cuda else []):
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


EVAL_BATCH = 2048  # rows per step wherever data is only scored, encoded, evaluated or reconstructed (no gradients)


def batches_on(model: nn.Module, x: Tensor, batch_size: int) -> Iterator[tuple[int, Tensor]]:
    """(first row, ``x[i : i + batch_size]`` on ``model``'s device and in its dtype) over the rows of ``x``:
    the one loop of every function that scores, encodes or evaluates data in batches.

    Example
    -------
    >>> [(i, tuple(b.shape)) for i, b in batches_on(nn.Linear(3, 1), torch.zeros(5, 3), 2)]
    [(0, (2, 3)), (2, (2, 3)), (4, (1, 3))]
    """
    w = next(model.parameters())
    for i in range(0, len(x), batch_size):
        yield i, x[i : i + batch_size].to(w.device, w.dtype, non_blocking=True)


def fp32(t: Tensor) -> Tensor:
    """``t`` in at least single precision: bf16/fp16 (autocast) becomes fp32, fp64 stays fp64."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


@dataclass
class Batch:
    """What a penalty may look at: clean and corrupted input, code, decoder output, the model."""

    x: Tensor
    x_tilde: Tensor  # the encoder's input; requires grad when a penalty asked for input gradients
    h: Tensor
    r: Tensor
    model: "Autoencoder"
    q: "Posterior | None" = None  # q(h | x̃) when the encoder is stochastic (h is a draw from it)
    nll: Tensor | None = None  # (B,) per-sample −log p(x | r)
    pre: Tensor | None = None  # (B, K) pre-activations of a code that tracks dead units, in training
    dead: Tensor | None = None  # (K,) its units that have not fired for long (with ``pre``)


class Encoder(nn.Module):
    """Interface for what an encoder declares beyond its forward pass; any ``nn.Module`` mapping (B, D) → (B, K)
    encodes, declaring nothing (deterministic, no closed-form Jacobian).

    ``stochastic = True``: the forward pass returns q(h | x) (:class:`~aekit.parts.variational.Posterior`) and the
    model draws h from it.
    """

    stochastic: bool = False

    def jacobian_norm(self, h: Tensor) -> Tensor | None:
        """‖∂h/∂x‖²_F per sample, shape (B,), in closed form from the code ``h`` (B, K) this encoder made, or
        ``None`` where there is no closed form (the contractive penalty then estimates it)."""
        return None


class Decoder(nn.Module):
    """Interface for what a decoder declares beyond its forward pass; any ``nn.Module`` mapping (B, K) → (B, D)
    decodes, declaring nothing.

    ``teacher_forced = True``: in training the model calls it as ``decoder(h, x)`` with the clean batch x
    (B, D), so an autoregressive decoder can be fed the true previous steps; everywhere else (scoring,
    sampling, evaluation) it is called as ``decoder(h)`` and must run on its own predictions.
    """

    teacher_forced: bool = False


ALIVE = 1e-3  # a unit fires when its activation exceeds this (Gao et al.): training's dead units, reports' densities


class TracksDeadUnits(ABC):
    """Interface for a part of an encoder that records, in training, its pre-activations ``pre`` (B, K) and
    which units have not fired for long (:meth:`dead`); the model hands both to the penalties in
    :class:`Batch` (AuxK models the residual with the dead units). The one bookkeeping, shared: a
    ``since_fired`` buffer (K,) of samples since each unit last exceeded :data:`ALIVE`, and ``dead_after``."""

    pre: Tensor | None
    since_fired: Tensor
    dead_after: int

    @torch.no_grad()
    def record_firing(self, h: Tensor) -> None:
        """Count the batch's samples; units of ``h`` (B, K) above :data:`ALIVE` on any sample start again at 0."""
        self.since_fired += len(h)
        self.since_fired[h.amax(0) > ALIVE] = 0  # one reduction, not a (B, K) mask

    def dead(self) -> Tensor:
        """Boolean mask (K,) of the units silent for more than ``dead_after`` training samples."""
        return self.since_fired > self.dead_after


class Penalty(nn.Module, ABC):
    """Interface for a regulariser Ω(h, x̃, f): a scalar, already averaged over the batch.

    ``needs_input_grad``: the model builds h with x̃ requiring grad, so the penalty
    can differentiate h with respect to the input (contractive penalties).
    """

    name: str
    needs_input_grad: bool = False

    @abstractmethod
    def forward(self, b: Batch) -> Tensor: ...

    def check(self, model: "Autoencoder") -> None:
        """Raise ``ValueError`` if this penalty cannot work with ``model`` (called at construction); no side effects."""

    def setup(self, model: "Autoencoder") -> None:
        """Size state that depends on ``model``, e.g. a running mean per code unit (called at construction,
        after :meth:`check`, so a saved state loads into a model built from its config)."""

    def stats(self, b: Batch) -> dict[str, Tensor]:
        """Batch means of quantities to log beside the loss but never optimised (e.g. the true KL when
        the objective bends it); none by default."""
        return {}


class CodeConstraint(nn.Module, ABC):
    """Interface for a code activation that limits what the code can carry (e.g. TopK).

    A model whose encoder contains one counts as regularised (unless ``limits`` is False: a layer that
    only reads the code, as ITQ's bits do). ``features`` is True while :meth:`Autoencoder.encode` computes
    codes for use as features; a constraint may then loosen (TopK keeps αk units) — never while the model
    reconstructs or scores.
    """

    features: bool = False
    limits: bool = True

    @abstractmethod
    def forward(self, a: Tensor) -> Tensor: ...


@dataclass
class Output:
    """What :meth:`Autoencoder.forward` returns.

    ``loss`` is the batch mean of the per-sample objective; ``terms`` holds its
    named parts (``"reconstruction"`` and one entry per penalty), which sum to ``loss``
    unless the caller weighted some of them (see :meth:`Autoencoder.forward`). ``stats``
    holds batch means that are logged but not optimised, e.g. a VAE's true ``kl_divergence``
    and ``neg_elbo`` when β ≠ 1 or free bits make the objective differ from −ELBO.
    """

    loss: Tensor
    terms: dict[str, Tensor]
    h: Tensor
    x_tilde: Tensor
    r: Tensor  # decoder output: the parameters of p(x | h), e.g. logits
    nll: Tensor = field(repr=False)  # (B,) per-sample −log p(x | r)
    q: "Posterior | None" = field(default=None, repr=False)
    stats: dict[str, Tensor] = field(default_factory=dict)  # logged beside the loss, not part of it


class Autoencoder(nn.Module):
    """An autoencoder built from parts.

    Parameters
    ----------
    encoder, decoder
        Modules mapping flat batches ``(B, D) → (B, K)`` and ``(B, K) → (B, D)``. An :class:`Encoder`
        may declare more: ``stochastic`` (it returns q(h | x), :class:`~aekit.parts.variational.GaussianEncoder`;
        the model then draws h from it) and a closed-form Jacobian norm; a :class:`Decoder`
        ``teacher_forced`` (in training it is also given the clean x).
    likelihood
        The decoder's likelihood; reconstruction is scored against the clean ``x``.
    input_shape
        Shape of one sample, e.g. ``(64,)`` or ``(1, 28, 28)``; data is passed flat.
    code_size
        Number of code units K.
    corruption
        C(x̃ | x), applied in training mode only. Default: identity.
    penalties
        Regularisers Ω added to the loss, each reported under its own name.

    Example
    -------
    >>> from aekit.core.networks.mlp import MLP
    >>> from aekit.core.likelihoods import Gaussian
    >>> ae = Autoencoder(MLP([4, 2]), MLP([2, 4]), Gaussian(), input_shape=(4,), code_size=2)
    >>> out = ae(torch.zeros(3, 4))
    >>> sorted(out.terms), out.h.shape
    (['reconstruction'], torch.Size([3, 2]))
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood,
        *,
        input_shape: Sequence[int],
        code_size: int,
        corruption: Corruption | None = None,
        penalties: Sequence[Penalty] = (),
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.corruption = corruption if corruption is not None else Identity()
        self.penalties = nn.ModuleList(penalties)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.input_size = math.prod(self.input_shape)
        self.code_size = int(code_size)
        self.stochastic = isinstance(encoder, Encoder) and encoder.stochastic
        self._forced = isinstance(decoder, Decoder) and decoder.teacher_forced
        # a tuple, not an attribute nn.Module would register (the tracker is already the encoder's)
        self._trackers = tuple(m for m in encoder.modules() if isinstance(m, TracksDeadUnits))[:1]
        # Set by presets.create: the JSON config that rebuilds this model exactly.
        self.config: dict | None = None
        names = [p.name for p in self.penalties]
        if len(set(names)) != len(names) or "reconstruction" in names:
            raise ValueError(f"penalty names must be unique and not 'reconstruction', got {names}")
        self._dry_run()
        for p in self.penalties:
            p.check(self)
            p.setup(self)

    @torch.no_grad()
    def _dry_run(self) -> None:
        """Encode and decode two zero rows (eval mode, no state changes): a code that is not ``code_size`` wide,
        or an encoder or decoder that cannot take the shapes, is an error now rather than in the first step."""
        w = next(self.parameters(), None)
        x = torch.zeros(2, self.input_size, device=w.device if w is not None else None,
                        dtype=w.dtype if w is not None and w.is_floating_point() else None)
        if x.is_meta:  # built without memory (to be loaded into): no values to run on
            return
        with evaluating(self):
            try:
                h = self.code(x)
            except Exception as e:  # a user's module: say which part failed, on what
                raise ValueError(f"the encoder fails on a batch of shape {tuple(x.shape)}: {type(e).__name__}: {e}") from e
            if tuple(h.shape) != (2, self.code_size):
                raise ValueError(f"code_size={self.code_size}, but the encoder makes codes of shape "
                                 f"{tuple(h.shape[1:])} from a batch of shape {tuple(x.shape)}")
            try:
                r = self.decode(h)
            except Exception as e:
                raise ValueError(f"the decoder fails on codes of shape {tuple(h.shape)}: {type(e).__name__}: {e}") from e
        if tuple(r.shape) != tuple(x.shape):
            raise ValueError(f"the decoder's reconstructions have shape {tuple(r.shape[1:])}; the input has "
                             f"{self.input_size} values per sample (input_shape {self.input_shape})")

    @property
    def tracks_dead_units(self) -> bool:
        """Whether a part of the encoder tracks dead units (:class:`TracksDeadUnits`, e.g. TopK, an SAE encoder)."""
        return bool(self._trackers)

    @property
    def is_regularised(self) -> bool:
        """Whether anything (corruption, penalty or a constrained code such as TopK) stops a code copying x."""
        constrained = any(isinstance(m, CodeConstraint) and m.limits for m in self.encoder.modules())  # e.g. TopK
        return constrained or len(self.penalties) > 0 or not isinstance(self.corruption, Identity)

    def forward(self, x: Tensor, corrupt: bool | None = None, weights: Mapping[str, float] | None = None) -> Output:
        """Loss and parts for a batch ``x`` (B, D); corrupts in training mode unless ``corrupt`` says otherwise.

        ``weights`` scales named terms in ``loss`` only (e.g. ``{"kl": 0.1}`` during a KL
        warm-up); ``terms`` always holds the unscaled values.
        """
        corrupt = self.training if corrupt is None else corrupt
        x_tilde = self.corruption(x) if corrupt else x
        if any(p.needs_input_grad for p in self.penalties) and torch.is_grad_enabled():
            x_tilde = x_tilde.detach().requires_grad_(True)
        q = self.encoder(x_tilde) if self.stochastic else None
        h = q.rsample() if q is not None else self.encoder(x_tilde)
        r = self.decoder(h, x) if self._forced and self.training else self.decoder(h)
        nll = self.likelihood.nll(fp32(r), x)  # (B,) against the clean x; fp32 even under autocast
        terms = {"reconstruction": nll.mean()}
        batch = Batch(x=x, x_tilde=x_tilde, h=h, r=r, model=self, q=q, nll=nll)
        if self._trackers and self.training and self._trackers[0].pre is not None:
            batch.pre, batch.dead = self._trackers[0].pre, self._trackers[0].dead()
        stats: dict[str, Tensor] = {}
        for p in self.penalties:
            terms[p.name] = p(batch)
            stats.update(p.stats(batch))
        # no multiply per term on the usual, unweighted step
        loss = sum(weights.get(k, 1.0) * v for k, v in terms.items()) if weights else sum(terms.values())
        return Output(loss=loss, terms=terms, h=h, x_tilde=x_tilde, r=r, nll=nll, q=q, stats=stats)

    @property
    def prepares(self) -> list[nn.Module]:
        """Parts with data-dependent defaults: those with a ``prepare(x)`` method."""
        return [p for p in (self.corruption, self.encoder, self.decoder, self.likelihood, *self.penalties)
                if callable(getattr(p, "prepare", None)) and type(p).prepare is not Corruption.prepare]

    def prepare(self, x: Tensor) -> None:
        """Let parts with data-dependent defaults (:attr:`prepares`) see training rows ``x`` (N, D) once (called
        by :func:`~aekit.training.loop.fit` before the first step, with the first 65,536 training rows); e.g.
        salt-and-pepper noise takes the data's range, an SAE its activation scale and decoder bias."""
        for part in self.prepares:
            part.prepare(x)

    @property
    def finishes(self) -> list[CodeConstraint]:
        """Code layers fitted after training: those with a ``finish(h)`` method (ITQ's rotation of a code)."""
        return [m for m in self.encoder.modules() if isinstance(m, CodeConstraint) and hasattr(m, "finish")]

    @torch.no_grad()
    def finish(self, x: Tensor, batch_size: int = EVAL_BATCH) -> None:
        """Let :attr:`finishes` see the codes of the training data ``x`` (N, D), in eval mode (called by
        :func:`~aekit.training.loop.fit` after the last epoch)."""
        h = torch.cat([self.code(xb) for xb in x.split(batch_size)])
        for m in self.finishes:
            m.finish(h)

    def encode(self, x: Tensor) -> Tensor:
        """The code h = f(x) as features, shape (B, K), without corruption; the posterior mean for a
        stochastic encoder. A :class:`CodeConstraint` may loosen here (TopK keeps αk units), so
        ``decode(encode(x))`` can differ from :meth:`reconstruct`, which uses the trained code."""
        with self._features():
            return self.code(x)

    def code(self, x: Tensor) -> Tensor:
        """The code the decoder was trained on, shape (B, K): what :meth:`reconstruct` and the scores use."""
        return self.encoder(x).mean if self.stochastic else self.encoder(x)

    @contextmanager
    def _features(self) -> Iterator[None]:
        parts = [m for m in self.encoder.modules() if isinstance(m, CodeConstraint)]
        for m in parts:
            m.features = True
        try:
            yield
        finally:
            for m in parts:
                m.features = False

    def posterior(self, x: Tensor) -> "Posterior":
        """q(h | x) of a stochastic encoder: ``.mean``, ``.var``, ``.rsample(n)``."""
        self.need_stochastic("posterior")
        return self.encoder(x)

    def need_stochastic(self, what: str) -> None:
        """Raise ``ValueError`` saying that ``what`` needs a stochastic encoder, unless this model has one."""
        if not self.stochastic:
            raise ValueError(f"{what} needs a stochastic encoder (preset 'vae'); this model's code is deterministic")

    def decode(self, h: Tensor) -> Tensor:
        """The mean of p(x | h), shape (B, D)."""
        return self.likelihood.mean(self.decoder(h))

    def reconstruct(self, x: Tensor) -> Tensor:
        """The mean of p(x | g(f(x))), shape (B, D), with the code the decoder was trained on."""
        return self.decode(self.code(x))

    def denoise(self, x_noisy: Tensor) -> Tensor:
        """Reconstruct the clean x from a corrupted ``x_noisy`` (no further corruption), shape (B, D)."""
        return self.reconstruct(x_noisy)

    def corrupt(self, x: Tensor) -> Tensor:
        """Draw x̃ ~ C(x̃ | x) with the model's corruption, whatever the mode."""
        return self.corruption(x)
