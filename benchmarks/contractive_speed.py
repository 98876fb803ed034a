"""Cost of the contractive penalty, one run.

(a) Training-step time of the 784→1000 sigmoid CAE (closed-form penalty) over the
    plain autoencoder of the same shape. Goal: ≤ 1.3×.
(b) A deep CAE 784-1000-500-30 (no closed form): training-step time with the
    stochastic penalty (m random projections) against the exact Jacobian
    (torch.func vmap+jacrev) and against the per-code-unit backward loop that a
    popular library uses (one backward pass per code unit). Goal: ≥ 10× faster
    than the loop.

All steps: Adam, batch 128, MNIST images, fp32, forward + backward + update.

    python benchmarks/contractive_speed.py [--steps 30] [--data-dir ../shared/data/mnist]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from aekit import create, load
from aekit.core.model import Batch, Penalty

HERE = Path(__file__).resolve().parent


class PerUnitLoop(Penalty):
    """The baseline only: λ‖J‖²_F built from one backward pass per code unit (do not use)."""

    name = "contractive"
    needs_input_grad = True

    def __init__(self, lam: float) -> None:
        super().__init__()
        self.lam = lam

    def forward(self, b: Batch) -> torch.Tensor:
        total = 0.0
        for j in range(b.h.shape[1]):
            (g,) = torch.autograd.grad(b.h[:, j].sum(), b.x_tilde, create_graph=True, retain_graph=True)
            total = total + g.square().sum(1)
        return self.lam * total.mean()


def step_time(model, x: torch.Tensor, steps: int, batch: int = 128) -> float:
    """Median-free simple mean seconds per training step after 3 warm-up steps."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    model.train()

    def one(i):
        xb = x[(i * batch) % (len(x) - batch):][:batch]
        loss = model(xb).loss
        opt.zero_grad()
        loss.backward()
        opt.step()

    for i in range(3):
        one(i)
    t = time.perf_counter()
    for i in range(steps):
        one(i)
    return (time.perf_counter() - t) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--data-dir", type=Path, default=HERE.parent.parent / "shared" / "data" / "mnist")
    args = ap.parse_args()
    x = torch.from_numpy(load("mnist", data_dir=args.data_dir).train.x[:20000])

    def build(preset, **kw):
        torch.manual_seed(0)
        return create(preset, (1, 28, 28), **kw)

    # (model, penalty, seconds per step, ratio to the plain AE of the same shape)
    rows = []
    plain = step_time(build("overcomplete", code_size=1000), x, args.steps)
    cae = build("contractive", code_size=1000, lam=0.1)
    assert cae.penalties[0].method == "closed"
    rows.append(("(a) 784-1000 sigmoid", "none (plain AE)", plain, 1.0))
    rows.append(("(a) 784-1000 sigmoid", "closed form", step_time(cae, x, args.steps), None))

    deep = dict(code_size=30, hidden=[1000, 500], lam=0.1)
    plain_deep = step_time(build("undercomplete", code_size=30, hidden=[1000, 500], activation="sigmoid", code_activation="sigmoid"), x, args.steps)
    rows.append(("(b) 784-1000-500-30", "none (plain deep AE)", plain_deep, 1.0))
    for label, kw in (("stochastic, m=1", dict(method="stochastic", projections=1)),
                      ("stochastic, m=4", dict(method="stochastic", projections=4)),
                      ("exact (vmap of jacrev)", dict(method="exact"))):
        rows.append(("(b) 784-1000-500-30", label, step_time(build("contractive", **deep, **kw), x, args.steps), None))
    loop_model = build("undercomplete", code_size=30, hidden=[1000, 500], activation="sigmoid", code_activation="sigmoid")
    loop_model.penalties.append(PerUnitLoop(0.1))
    loop = step_time(loop_model, x, max(3, args.steps // 5))
    rows.append(("(b) 784-1000-500-30", "per-code-unit backward loop (baseline)", loop, None))

    print(f"\nAdam, batch 128, MNIST, fp32, {torch.get_num_threads()} threads\n")
    print("| model | contractive penalty | ms/step | vs plain AE | speed-up over per-unit loop |")
    print("|---|---|---:|---:|---:|")
    for model, pen, t, _ in rows:
        base = plain if model.startswith("(a)") else plain_deep
        speedup = f"{loop / t:.1f}x" if model.startswith("(b)") else ""
        print(f"| {model} | {pen} | {1e3 * t:.1f} | {t / base:.2f}x | {speedup} |")

if __name__ == "__main__":
    main()
