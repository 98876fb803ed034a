"""What the measures a run records are called where people read them (the CLI's table, the report), and what
they warn of.

Example
-------
>>> readable({"test_squared_error": 3.0, "pca_squared_error": 2.0}, code_size=4, input_size=64)["aekit / PCA"]
1.5
"""

from __future__ import annotations

from typing import Any

__all__ = ["labels", "readable", "warnings_for"]

RATIO = "aekit / PCA"


def labels(code_size: int, input_size: int, iw_samples: int | str = "k") -> dict[str, str]:
    """Measure key (as in ``evaluation.json``) → its name for people, in the order they are shown."""
    return {
        "test_loss": "test loss (the training objective: −log p per sample + penalties)",
        "test_squared_error": f"squared error per sample, aekit (summed over {input_size} dims)",
        "pca_squared_error": f"squared error per sample, PCA-{code_size}",
        "elbo": "test ELBO (nats per sample; a lower bound on log p(x))",
        "kl": "  of which KL(q(h|x) ‖ p(h))",
        "nll": f"test NLL, −log p(x) estimated with k={iw_samples} importance samples (nats)",
        "psnr_noisy": "PSNR noisy test images vs clean (dB)",
        "psnr_denoised": "PSNR denoised vs clean (dB)",
        "l0": "mean active code units per sample (|h| > 0.01)",
        "dead_fraction": "fraction of code units never active on the test set",
    }


def readable(res: dict[str, Any], code_size: int, input_size: int) -> dict[str, Any]:
    """``res`` with people's names (known measures first, in order; the aekit/PCA ratio after PCA's error)."""
    names = labels(code_size, input_size, res.get("iw_samples", "k"))
    out: dict[str, Any] = {}
    for key, name in names.items():
        if key in res:
            out[name] = res[key]
        if key == "pca_squared_error" and "test_squared_error" in res and res.get(key):
            out[RATIO] = res["test_squared_error"] / res[key]
    out.update({k.replace("_", " "): v for k, v in res.items() if k not in names and k != "iw_samples"})
    return out


def warnings_for(res: dict[str, Any], recon_variance: float | None = None) -> list[str]:
    """Plain-language warnings a reader must not miss: worse than PCA, reconstructions that collapsed to the mean
    (``recon_variance``: the reconstructions' total variance as a fraction of the data's)."""
    out = []
    if res.get("pca_squared_error") and res.get("test_squared_error", 0) > res["pca_squared_error"]:
        out.append(f"worse than PCA with the same code size: {res['test_squared_error'] / res['pca_squared_error']:.2f}× "
                   "its squared error. Train longer, check the likelihood matches the data (--likelihood gaussian for "
                   "real values), or standardise features whose scales differ.")
    if recon_variance is not None and recon_variance < 0.01:
        out.append(f"the reconstructions have collapsed to the mean: they vary {recon_variance:.1%} as much as the "
                   "data. The model has learned nothing per sample; see the loss curves and the learning rate.")
    return out
