"""Training throughput: the aekit trainer against a plain PyTorch DataLoader loop.

Both train the `hinton2006` model (784-1000-500-250-30-...-784, Bernoulli loss) on
MNIST with the same optimiser (Adam), learning rate and batch size, for the same
number of epochs, in this process, one after the other. The plain loop is the
usual tutorial loop: ``DataLoader(TensorDataset(x), batch_size, shuffle=True)``.

    python benchmarks/train_speed.py [--epochs 2] [--batch-size 128] [--data-dir ../shared/data/mnist]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from aekit import create, fit, load

HERE = Path(__file__).resolve().parent


def plain_loop(model, x: torch.Tensor, epochs: int, batch_size: int, lr: float) -> float:
    """The reference: a DataLoader over a TensorDataset, one optimiser step per batch. Returns samples/s."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(x), batch_size=batch_size, shuffle=True)
    model.train()
    t = time.perf_counter()
    for _ in range(epochs):
        for (xb,) in loader:
            loss = model(xb).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    return epochs * len(x) / (time.perf_counter() - t)


def aekit_loop(model, x: torch.Tensor, epochs: int, batch_size: int, lr: float, precision: str) -> float:
    t = time.perf_counter()
    fit(model, x, epochs=epochs, batch_size=batch_size, lr=lr, optimizer="adam", schedule="constant",
        val_fraction=0.0, progress=False, device="cpu", precision=precision)
    return epochs * len(x) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--data-dir", type=Path, default=HERE.parent.parent / "shared" / "data" / "mnist")
    args = ap.parse_args()

    x = torch.from_numpy(load("mnist", data_dir=args.data_dir).train.x)

    def fresh():
        torch.manual_seed(0)
        return create("hinton2006", (1, 28, 28))

    # warm-up (allocator, kernels) so neither side pays first-call costs
    plain_loop(fresh(), x[:2048], 1, args.batch_size, args.lr)
    rows = [("plain DataLoader loop", "fp32", plain_loop(fresh(), x, args.epochs, args.batch_size, args.lr))]
    for prec in ("fp32", "bf16"):
        rows.append((f"aekit fit", prec, aekit_loop(fresh(), x, args.epochs, args.batch_size, args.lr, prec)))
    base = rows[0][2]
    print(f"\nhinton2006 on MNIST ({len(x)} samples), Adam lr={args.lr}, batch {args.batch_size}, "
          f"{args.epochs} epochs, {torch.get_num_threads()} threads\n")
    print(f"| trainer | precision | samples/s | ratio |")
    print(f"|---|---|---:|---:|")
    for name, prec, sps in rows:
        print(f"| {name} | {prec} | {sps:,.0f} | {sps / base:.2f}x |")


if __name__ == "__main__":
    main()
