"""Training throughput: the aekit trainer against a plain PyTorch DataLoader loop.

Both train the same model on MNIST with the same optimiser (Adam), learning rate
and batch size, for the same number of epochs, in this process, one after the
other. The plain loop is the usual tutorial loop:
``DataLoader(TensorDataset(x), batch_size, shuffle=True)``. Two models: the
compute-bound `hinton2006` (784-1000-500-250-30-...-784, 2.8 M parameters) and a
small `undercomplete` one (784-256-32-256-784), where per-batch overhead shows.
aekit runs in fp32 (like the loop) and in bf16 autocast (its `--precision bf16`,
the `hinton2006` default).

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

    models = {
        "hinton2006": dict(),
        "undercomplete 784-256-32": dict(code_size=32, hidden=[256]),
    }
    table = []
    for label, opts in models.items():
        preset = label.split()[0]

        def fresh():
            torch.manual_seed(0)
            return create(preset, (1, 28, 28), **opts)

        # warm-up (allocator, kernels, lazy imports) so neither side pays first-call costs
        plain_loop(fresh(), x[:4096], 1, args.batch_size, args.lr)
        aekit_loop(fresh(), x[:4096], 1, args.batch_size, args.lr, "fp32")
        base = plain_loop(fresh(), x, args.epochs, args.batch_size, args.lr)
        table.append((label, "plain DataLoader loop", "fp32", base, 1.0))
        for prec in ("fp32", "bf16"):
            sps = aekit_loop(fresh(), x, args.epochs, args.batch_size, args.lr, prec)
            table.append((label, "aekit fit", prec, sps, sps / base))
    print(f"\nMNIST ({len(x)} samples), Adam lr={args.lr}, batch {args.batch_size}, "
          f"{args.epochs} epochs each, {torch.get_num_threads()} threads\n")
    print("| model | trainer | precision | samples/s | vs DataLoader loop |")
    print("|---|---|---|---:|---:|")
    for label, name, prec, sps, ratio in table:
        print(f"| {label} | {name} | {prec} | {sps:,.0f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
