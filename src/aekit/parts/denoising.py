"""The denoising autoencoder as a generative model (Goodfellow et al., *Deep Learning* §14.5.1 and §20.11).

- **Score.** Trained with Gaussian corruption of small σ, the reconstruction r(x) estimates x + σ²∇log p(x)
  (Alain & Bengio 2014): :func:`score_estimate` returns (r(x) − x)/σ², an estimate of the score ∇log p of
  the data smoothed by the corruption.
- **Sampling.** The generalised DAE's Markov chain (Bengio et al. 2013) alternates the corruption and a draw
  from the reconstruction distribution: x̃_t ~ C(x̃ | x_t), x_{t+1} ~ P(x | x̃_t). When P(x | x̃) is a
  consistent estimate of the true conditional, its stationary distribution is the data's (:func:`chain`).
- **Walkback.** Training also on corruptions of the chain's own draws, each paired with the clean x, removes
  spurious modes far from the data (:class:`Walkback`, the ``walkback`` option of the ``denoising`` preset).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import integer
from ..core.corruption import GaussianNoise, Identity
from ..core.model import Autoencoder, Batch, Penalty, evaluating, fp32

__all__ = ["Walkback", "chain", "score_estimate"]


def _device_rows(model: Autoencoder, x) -> Tensor:
    w = next(model.parameters())
    x = torch.as_tensor(x).to(w.device, w.dtype if w.is_floating_point() else torch.float32).reshape(len(x), -1)
    if x.shape[1] != model.input_size:
        raise ValueError(f"the model takes {model.input_size} values per sample, got rows of {x.shape[1]}")
    return x


@torch.no_grad()
def score_estimate(model: Autoencoder, x, sigma: float | None = None) -> Tensor:
    """(r(x) − x) / σ² at the rows ``x`` (N, D): the DAE's estimate of ∇ log p(x), shape (N, D).

    ``sigma``: the corruption's; by default the model's own Gaussian noise σ.

    Example
    -------
    >>> import aekit
    >>> dae = aekit.create("denoising", (2,), code_size=8, noise="gaussian", level=0.1, likelihood="gaussian")
    >>> score_estimate(dae, torch.zeros(3, 2)).shape
    torch.Size([3, 2])
    """
    if sigma is None:
        if not isinstance(model.corruption, GaussianNoise):
            raise ValueError("the score estimate needs the σ of Gaussian corruption: train with noise='gaussian' "
                             f"(this model's corruption is {model.corruption.name!r}) or pass sigma")
        sigma = model.corruption.sigma
    x = _device_rows(model, x)
    with evaluating(model):
        return (model.reconstruct(x) - x) / sigma**2


@torch.no_grad()
def chain(model: Autoencoder, x0, steps: int, *, every: int = 1) -> tuple[Tensor, Tensor]:
    """Run the DAE's Markov chain from the rows ``x0`` (N, D) for ``steps`` steps, keeping every ``every``-th.

    Each step corrupts with the model's corruption and draws from p(x | x̃) (the likelihood's
    :meth:`~aekit.core.likelihoods.Likelihood.sample`). Returns ``(draws, means)``, each (steps // every, N, D):
    the chain's states and the means of the distributions they were drawn from (for images, the means are
    the pictures to look at). Seed torch (``torch.manual_seed``) for the same chain twice.

    Example
    -------
    >>> import aekit
    >>> dae = aekit.create("denoising", (4,), code_size=8)
    >>> draws, means = chain(dae, torch.rand(5, 4), steps=10, every=5)
    >>> draws.shape, means.shape
    (torch.Size([2, 5, 4]), torch.Size([2, 5, 4]))
    """
    if isinstance(model.corruption, Identity):
        raise ValueError("the chain needs a corruption: train a denoising model (preset 'denoising')")
    steps, every = integer(steps, "steps"), integer(every, "every")
    x = _device_rows(model, x0)
    draws, means = [], []
    with evaluating(model):
        for t in range(1, steps + 1):
            r = fp32(model.decoder(model.code(model.corruption(x))))
            x = model.likelihood.sample(r)
            if t % every == 0:
                draws.append(x)
                means.append(model.likelihood.mean(r))
    return torch.stack(draws), torch.stack(means)


class Walkback(Penalty):
    """Walkback training (Bengio et al. 2013): ``steps`` more corruptions, each of a draw from p(x | x̃) of the
    previous one, all reconstructing the clean x; their −log p(x | x̃ⱼ) summed, averaged over the batch.

    With the model's own reconstruction term this trains on 1 + ``steps`` corruptions along the walk. The paper
    stops the walk at random (continuing with probability p); a fixed length keeps the cost of a step fixed.
    Zero outside training, where nothing is corrupted.
    """

    name = "walkback"

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = integer(steps, "walkback steps")

    def check(self, model: Autoencoder) -> None:
        if isinstance(model.corruption, Identity):
            raise ValueError("walkback needs a corruption (noise other than 'none')")

    def forward(self, b: Batch) -> Tensor:
        model = b.model
        total = b.nll.new_zeros(())
        if not model.training:
            return total
        lik, r = model.likelihood, b.r.detach()
        for _ in range(self.steps):
            with torch.no_grad():
                x_tilde = model.corruption(lik.sample(fp32(r)).to(b.x.dtype))
            r = model.decoder(model.code(x_tilde))
            total = total + lik.nll(fp32(r), b.x).mean()
            r = r.detach()
        return total
