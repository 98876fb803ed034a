"""Stochastic encoders: q(h | x) a diagonal Gaussian, its KL to the prior N(0, I), and what a
generative autoencoder can do — the ELBO, the importance-weighted log-likelihood, sampling.

A variational autoencoder is the same :class:`~aekit.core.model.Autoencoder` with a
:class:`GaussianEncoder` (h is drawn by reparameterisation) and a :class:`GaussianKL`
penalty, so its loss is the negative ELBO per sample in nats:

    −ELBO(x) = −E_q[log p(x | h)] + KL(q(h | x) ‖ N(0, I))     (β = 1)

estimated with one sample of h, the KL in closed form.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._checks import integer, number
from ..core.likelihoods import Bernoulli
from ..core.model import EVAL_BATCH, Autoencoder, Batch, Encoder, Penalty, batches_on, evaluating, fp32

LOG_2PI = math.log(2 * math.pi)


@dataclass
class Posterior:
    """A diagonal Gaussian N(mu, diag(exp(logvar))) over codes; each field (B, K).

    Example
    -------
    >>> q = Posterior(torch.zeros(2, 3), torch.zeros(2, 3))
    >>> q.rsample(5).shape, q.kl().sum().item()
    (torch.Size([5, 2, 3]), 0.0)
    """

    mu: Tensor
    logvar: Tensor

    @property
    def mean(self) -> Tensor:
        return self.mu

    @property
    def var(self) -> Tensor:
        return self.logvar.exp()

    def rsample(self, n: int | None = None) -> Tensor:
        """Reparameterised draws mu + σ·ε: (B, K), or (n, B, K) for ``n`` draws per row."""
        shape = self.mu.shape if n is None else (n, *self.mu.shape)
        eps = torch.randn(shape, dtype=self.mu.dtype, device=self.mu.device)
        return self.mu + (0.5 * self.logvar).exp() * eps

    def log_prob(self, h: Tensor) -> Tensor:
        """log q(h), summed over the K code units: h (..., B, K) → (..., B)."""
        z2 = (h - self.mu).square() * (-self.logvar).exp()
        return -0.5 * (z2 + self.logvar + LOG_2PI).sum(-1)

    def kl(self) -> Tensor:
        """KL(q ‖ N(0, I)) per code unit in closed form, (B, K): ½(μ² + σ² − 1 − log σ²)."""
        return 0.5 * (self.mu.square() + self.var - 1.0 - self.logvar)


def prior_log_prob(h: Tensor) -> Tensor:
    """log N(h; 0, I), summed over the last (code) dimension."""
    return -0.5 * (h.square() + LOG_2PI).sum(-1)


class GaussianEncoder(Encoder):
    """q(h | x) = N(mu(x), diag σ²(x)): a body (B, D) → (B, F), then affine heads for mu and log σ².

    Example
    -------
    >>> from aekit.core.networks.mlp import MLP
    >>> enc = GaussianEncoder(MLP([4, 8], final="tanh"), 8, 2)
    >>> enc(torch.zeros(3, 4)).mu.shape
    torch.Size([3, 2])
    """

    stochastic = True  # the model draws h from what this returns

    def __init__(self, body: nn.Module, features: int, code_size: int) -> None:
        super().__init__()
        self.body = body
        self.mu = nn.Linear(features, code_size)
        self.logvar = nn.Linear(features, code_size)

    def forward(self, x: Tensor) -> Posterior:
        f = self.body(x)
        return Posterior(fp32(self.mu(f)), fp32(self.logvar(f)))  # fp32 even under autocast: exp()


class GaussianKL(Penalty):
    """β·KL(q(h | x) ‖ N(0, I)) per sample (summed over code units), averaged over the batch.

    ``free_bits`` λ > 0 (Kingma et al., 2016) replaces each unit's batch-mean KL by max(λ, KLⱼ):
    no gradient pushes a unit below λ nats, which keeps units from collapsing to the prior.
    The KL warm-up schedule is the trainer's (``kl_warmup_epochs``), not the model's.

    With β ≠ 1 or free bits the term (and so the loss) is no longer the KL of the ELBO; the
    model's ``stats`` then carry the true ``kl_divergence`` and ``neg_elbo`` (−ELBO, β = 1) beside it.

    Example
    -------
    >>> from aekit import create
    >>> create("vae", (1, 8, 8), beta=4.0).penalties[0].beta
    4.0
    """

    name = "kl"

    def __init__(self, beta: float = 1.0, free_bits: float = 0.0) -> None:
        super().__init__()
        self.beta = number(beta, "KL beta", 0)
        self.free_bits = number(free_bits, "free_bits", 0)

    def check(self, model: Autoencoder) -> None:
        model.need_stochastic("the KL penalty")

    def forward(self, b: Batch) -> Tensor:
        kl = b.q.kl()  # (B, K)
        if self.free_bits > 0:
            return self.beta * kl.mean(0).clamp(min=self.free_bits).sum()
        return self.beta * kl.sum(1).mean()

    def stats(self, b: Batch) -> dict[str, Tensor]:
        """The true KL(q ‖ p) and −ELBO (β = 1, no free bits), batch means in nats, whatever β and free bits."""
        kl = b.q.kl().sum(1).detach()
        return {"kl_divergence": kl.mean(), "neg_elbo": (b.nll.detach() + kl).mean()}


def _batches(model: Autoencoder, x: Tensor, batch_size: int, what: str) -> Iterator[tuple[int, Tensor]]:
    """Yield (first row, batch on the model's device), refusing a batch with NaN/inf by its index and rows."""
    x = x.reshape(len(x), -1)
    if x.shape[1] != model.input_size:
        raise ValueError(f"{what}: data has {x.shape[1]} features per sample but the model expects {model.input_size}")
    for b, (i, xb) in enumerate(batches_on(model, x, batch_size)):
        if not torch.isfinite(xb).all():
            raise ValueError(f"{what}: batch {b} (rows {i}–{i + len(xb) - 1}) contains NaN or inf")
        yield i, xb


def nonbinary_bernoulli(model: Autoencoder, x: Tensor) -> bool:
    """Whether ``model`` has a Bernoulli decoder and ``x`` is not all 0/1: its NLL is then no log-probability."""
    return isinstance(model.likelihood, Bernoulli) and not ((x == 0) | (x == 1)).all()


def _check_support(model: Autoencoder, xb: Tensor, first: int, allow_nonbinary: bool) -> None:
    if not allow_nonbinary and nonbinary_bernoulli(model, xb):
        raise ValueError(
            f"the Bernoulli likelihood is a probability only for binary data, but rows from {first} have values "
            "strictly between 0 and 1; binarise the data first (aekit.store.data.binarize, or load(..., binarize=True) / "
            "--binarize), use likelihood='gaussian', or pass allow_nonbinary=True to score it anyway"
        )


def _nll_of_draws(model: Autoencoder, h: Tensor, xb: Tensor) -> Tensor:
    """−log p(x | h) for S draws of codes per row: h (S, b, K), xb (b, D) → (S, b)."""
    s, b = h.shape[:2]
    r = fp32(model.decoder(h.reshape(s * b, -1)))
    return model.likelihood.nll(r, xb.expand(s, *xb.shape).reshape(s * b, -1)).view(s, b)


@torch.no_grad()
def elbo(model: Autoencoder, x: Tensor, batch_size: int = EVAL_BATCH, allow_nonbinary: bool = False,
         eps: Tensor | None = None) -> dict[str, Tensor]:
    """Per-sample ELBO (β = 1, free bits off) in nats, with its parts, each (N,).

    Returns ``{"elbo", "reconstruction", "kl"}`` with ``elbo = −(reconstruction + kl)``;
    the reconstruction term is a one-sample estimate of −E_q[log p(x | h)], the KL is exact.
    ``eps`` (S, K): use h = mu + σ·eps for every row and average the S draws instead of fresh
    noise — common random numbers, so each row's estimate depends on that row only
    (deterministic, and the same whatever the batch or row order).
    ``allow_nonbinary``: see :func:`log_likelihood`.
    """
    model.need_stochastic("elbo")
    with evaluating(model):
        parts: dict[str, list[Tensor]] = {"reconstruction": [], "kl": []}
        for i, xb in _batches(model, torch.as_tensor(x), batch_size, "elbo"):
            _check_support(model, xb, i, allow_nonbinary)
            q = model.encoder(xb)
            if eps is None:
                nll = model.likelihood.nll(fp32(model.decoder(q.rsample())), xb)
            else:
                h = q.mu + (0.5 * q.logvar).exp() * eps.to(q.mu)[:, None]  # (S, b, K)
                nll = _nll_of_draws(model, h, xb).mean(0)
            parts["reconstruction"].append(nll.cpu())
            parts["kl"].append(q.kl().sum(1).cpu())
    out = {k: torch.cat(v) for k, v in parts.items()}
    out["elbo"] = -(out["reconstruction"] + out["kl"])
    return out


@torch.no_grad()
def log_likelihood(
    model: Autoencoder, x: Tensor, samples: int = 1000, max_elements: int = 2**24, allow_nonbinary: bool = False
) -> Tensor:
    """Importance-weighted estimate of log p(x) with ``samples`` = k draws per row (Burda et al.'s bound), (N,).

        log p(x) ≥ E[log (1/k) Σᵢ p(x | hᵢ) p(hᵢ) / q(hᵢ | x)],   hᵢ ~ q(h | x)

    k = 1 is the ELBO; the bound tightens as k grows. Rows and samples are processed in
    chunks of about ``max_elements`` decoder outputs, so k = 1000 on MNIST needs ~100 MB.

    With a Bernoulli decoder the data must be binary (a Bernoulli is a probability only for
    0/1 values), else ``ValueError``; ``allow_nonbinary=True`` scores grey levels in [0, 1] with
    the same cross-entropy anyway — then the number is not log p(x) and not comparable with
    published binarised-MNIST likelihoods.

    Example
    -------
    >>> from aekit import create
    >>> vae = create("vae", (1, 8, 8), code_size=2, hidden=[16])
    >>> log_likelihood(vae, torch.zeros(3, 64), samples=10).shape
    torch.Size([3])
    """
    model.need_stochastic("log_likelihood")
    k = integer(samples, "samples")
    with evaluating(model):
        d = model.input_size
        ks = max(1, min(k, max_elements // d))  # samples per chunk
        rows = max(1, max_elements // (ks * d))  # rows per chunk
        out = []
        for i, xb in _batches(model, torch.as_tensor(x), rows, "log_likelihood"):
            _check_support(model, xb, i, allow_nonbinary)
            q = model.encoder(xb)
            logw = []
            for j in range(0, k, ks):
                h = q.rsample(min(ks, k - j))  # (s, b, K)
                logw.append(-_nll_of_draws(model, h, xb) + prior_log_prob(h) - q.log_prob(h))
            out.append((torch.logsumexp(torch.cat(logw), 0) - math.log(k)).cpu())
    return torch.cat(out)


@torch.no_grad()
def sample(model: Autoencoder, n: int, mean: bool = True) -> Tensor:
    """``n`` new samples: h ~ N(0, I), then the mean of p(x | h) (or a draw from it with ``mean=False``), (n, D)."""
    model.need_stochastic("sample")
    n = integer(n, "number of samples n")
    w = next(model.parameters())
    dev = w.device
    r = fp32(model.decoder(torch.randn(n, model.code_size, device=dev, dtype=w.dtype)))
    return model.likelihood.mean(r) if mean else model.likelihood.sample(r)


@torch.no_grad()
def interpolate(model: Autoencoder, x_a: Tensor, x_b: Tensor, steps: int = 8) -> Tensor:
    """Decoded points on the straight line between the posterior means of ``x_a`` and ``x_b``, (steps, D).

    The first and last rows are the reconstructions of ``x_a`` and ``x_b``.
    """
    model.need_stochastic("interpolate")
    steps = integer(steps, "steps", low=2)
    pair = torch.stack([torch.as_tensor(x_a).reshape(-1), torch.as_tensor(x_b).reshape(-1)])
    ((_, ends),) = _batches(model, pair, 2, "interpolate")  # checked: width, finite; on the model's device
    mu = model.encoder(ends).mu  # (2, K)
    t = torch.linspace(0, 1, steps, device=mu.device)[:, None]
    return model.decode((1 - t) * mu[0] + t * mu[1])
