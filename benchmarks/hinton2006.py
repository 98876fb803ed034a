"""Hinton & Salakhutdinov (2006), MNIST: the deep 30-d autoencoder against PCA-30.

Measure: average squared error per test image, summed over the 784 pixels in [0, 1]
(the paper's measure; PCA-30 gives 13.87, the paper's deep autoencoder 3.00).

The `hinton2006` preset is trained with its defaults for a wall-clock budget: a
short calibration measures the epoch time, the number of epochs is chosen to fit
the budget (so the learning-rate schedule completes), and ``max_time`` stops the
run at the budget whatever happens. The curve is the test error after each epoch.

    python benchmarks/hinton2006.py --minutes 15 [--data-dir ../shared/data/mnist] [--set lr=3e-3 ...]
"""

from __future__ import annotations

import json
import time

import torch
from _budget import budget_parser, calibrated_epochs, parse_sets

from aekit import config_for, create, fit, load, pca_error, reconstruct, squared_error


def main() -> None:
    args = budget_parser(__doc__).parse_args()

    split = load("mnist", data_dir=args.data_dir)
    x_tr, x_te = split.train.x, split.test.x
    pca, _ = pca_error(x_tr, x_te, 30)

    model_opts, train_opts = parse_sets(args.set, "hinton2006", (1, 28, 28))

    def fresh():
        torch.manual_seed(args.seed)
        return create("hinton2006", (1, 28, 28), **model_opts)

    cfg = config_for(fresh(), **train_opts, seed=args.seed, device="cpu", progress=False, val_fraction=0.0)
    epochs, budget = calibrated_epochs(fresh, x_tr, cfg, args.minutes * 60,
                                       lambda m: squared_error(x_te, reconstruct(m, x_te)))

    curve = []
    t0 = time.perf_counter()

    def record(epoch, row, model):
        curve.append((epoch, time.perf_counter() - t0, row["train_loss"], squared_error(x_te, reconstruct(model, x_te))))
        model.train()
        print(f"epoch {epoch:3d}  {curve[-1][1]:6.0f} s  train loss {row['train_loss']:.2f}  test error {curve[-1][3]:.3f}",
              flush=True)

    model = fresh()
    fit(model, x_tr, cfg, epochs=epochs, max_time=budget, callbacks=[record])
    final = squared_error(x_te, reconstruct(model, x_te))
    used = time.perf_counter() - t0
    marks = {m: min((c[3] for c in curve if c[1] <= m * 60), default=float("nan")) for m in (5, 10, 15)}

    print(f"\nMNIST test set, squared error per image summed over 784 pixels; budget {args.minutes:g} min, "
          f"{torch.get_num_threads()} threads")
    print(f"training config: {json.dumps({**model.config['options'], **{k: getattr(cfg, k) for k in ('optimizer', 'lr', 'batch_size', 'schedule', 'precision')}, 'epochs': epochs})}\n")
    print("| model | test error | vs PCA-30 | train time |")
    print("|---|---:|---:|---:|")
    print(f"| PCA-30 (paper: 13.87) | {pca:.2f} | 1.00x | |")
    print(f"| Hinton & Salakhutdinov 2006 deep AE (published) | 3.00 | {3.00 / pca:.2f}x | |")
    print(f"| aekit hinton2006, {len(curve)} epochs | {final:.2f} | {final / pca:.2f}x | {used / 60:.1f} min |")
    print("\nbest test error reached within: " + ", ".join(f"{m} min: {v:.2f}" for m, v in marks.items() if m <= args.minutes + 1e-9))


if __name__ == "__main__":
    main()
