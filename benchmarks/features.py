"""Do regularised overcomplete autoencoders learn useful features? One run on MNIST.

Each model has a 1000-unit code (overcomplete: 784 inputs; one hidden layer of
1000 sigmoid units before it in the deep row) and is trained with its preset's
defaults for ``--epochs`` epochs. A logistic-regression linear
probe (scikit-learn, standardised inputs) is fitted on the codes of the training
images and scored on the test images, next to the same probe on raw pixels and on
PCA-100 codes. The probe's regularisation C is chosen per feature set from
``--probe-c`` by accuracy on a held-out 10 % of the training codes (never on the
test set), then refitted on all training codes. For the denoising models, the PSNR of corrupted test images and of
their reconstructions against the clean images is printed too.

    python benchmarks/features.py [--epochs 10] [--probe-c 0.01 0.03 0.1] [--data-dir ../shared/data/mnist]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA

from aekit import create, fit, load
from aekit.evaluation.metrics import choose_c, encode, linear_probe, psnr, reconstruct, sparsity

HERE = Path(__file__).resolve().parent

MODELS = {
    "plain overcomplete (no regulariser)": ("overcomplete", {}),
    "sparse, L1": ("sparse", {"penalty": "l1", "lam": 1e-3}),
    "sparse, KL(rho=0.05, lam=1)": ("sparse", {"penalty": "kl", "rho": 0.05, "lam": 1.0}),
    "sparse, KL, deep 784-1000-1000": ("sparse", {"penalty": "kl", "rho": 0.05, "lam": 1.0, "hidden": [1000]}),
    "k-sparse (k=40, alpha=2)": ("ksparse", {"k": 40, "alpha": 2.0}),
    "denoising, masking 0.25": ("denoising", {"noise": "masking", "level": 0.25}),
    "denoising, Gaussian 0.3": ("denoising", {"noise": "gaussian", "level": 0.3}),
    "denoising, salt-and-pepper 0.2": ("denoising", {"noise": "salt_pepper", "level": 0.2}),
    "contractive (closed form)": ("contractive", {"lam": 0.1}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default: each preset's)")
    ap.add_argument("--precision", default=None, help="fp32 or bf16 (default: each preset's)")
    ap.add_argument("--probe-train", type=int, default=60000, help="training codes used to fit the probe")
    ap.add_argument("--probe-iter", type=int, default=300, help="max_iter of the logistic regression")
    ap.add_argument("--probe-c", type=float, nargs="+", default=[0.01, 0.03, 0.1],
                    help="candidate C values of the probe, chosen on held-out training codes")
    ap.add_argument("--only", nargs="*", default=None, help="run only models whose label contains one of these")
    ap.add_argument("--data-dir", type=Path, default=HERE.parent.parent / "shared" / "data" / "mnist")
    args = ap.parse_args()

    s = load("mnist", data_dir=args.data_dir)
    n = args.probe_train
    x_tr, y_tr, x_te, y_te = s.train.x, s.train.y, s.test.x, s.test.y
    rows = []


    def probe(c_tr: np.ndarray, c_te: np.ndarray) -> tuple[float, float, float]:
        """(test accuracy, chosen C, seconds)"""
        t = time.perf_counter()
        c = choose_c(c_tr, y_tr[:n], args.probe_c, args.probe_iter)
        return linear_probe(c_tr, y_tr[:n], c_te, y_te, args.probe_iter, c), c, time.perf_counter() - t

    rows.append(("raw pixels (784)", *probe(x_tr[:n], x_te), 0.0, "", ""))
    t = time.perf_counter()
    pca = PCA(100, random_state=0).fit(x_tr)
    rows.append(("PCA-100", *probe(pca.transform(x_tr[:n]), pca.transform(x_te)), time.perf_counter() - t, "", ""))

    for label, (preset, opts) in MODELS.items():
        if args.only and not any(o in label for o in args.only):
            continue
        torch.manual_seed(0)
        model = create(preset, s.train.shape, code_size=1000, **opts)
        t = time.perf_counter()
        overrides = {k: v for k, v in (("lr", args.lr), ("precision", args.precision)) if v is not None}
        fit(model, x_tr, epochs=args.epochs, val_fraction=0.0, progress=False, **overrides)
        train_s = time.perf_counter() - t
        c_tr, c_te = encode(model, x_tr[:n]), encode(model, x_te)
        acc, c, probe_s = probe(c_tr, c_te)
        sp = sparsity(c_te, tol=0.01)
        extra = f"L0 {sp['l0']:.0f}, dead {sp['dead_fraction']:.0%}"
        denoise = ""
        if preset == "denoising":
            torch.manual_seed(1)
            noisy = model.corrupt(torch.from_numpy(x_te)).numpy()
            denoise = f"{psnr(x_te, noisy):.1f} → {psnr(x_te, reconstruct(model, noisy)):.1f}"
        rows.append((label, acc, c, probe_s, train_s, extra, denoise))
        print(f"{label}: {acc:.4f} (C={c:g}; {train_s:.0f} s train, {probe_s:.0f} s probe)", flush=True)

    print(f"\nMNIST, 1000-unit codes, {args.epochs} epochs each (lr {args.lr or 'preset default'}, precision "
          f"{args.precision or 'preset default'}), probe fitted on {n} training codes, {torch.get_num_threads()} threads\n")
    print("| features | probe test accuracy | probe C | train time | probe time | code (test) | PSNR noisy → denoised (dB) |")
    print("|---|---:|---:|---:|---:|---|---|")
    for label, acc, c, pr, tr, extra, dn in rows:
        print(f"| {label} | {100 * acc:.2f} % | {c:g} | {tr:.0f} s | {pr:.0f} s | {extra} | {dn} |")


if __name__ == "__main__":
    main()
