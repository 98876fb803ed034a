"""Semantic hashing: Hamming-distance retrieval with an autoencoder's binary codes against LSH, PCA + sign and ITQ.

One run. Per data set and bit length, every hasher is fitted on the corpus without labels; the queries are the
test images, the corpus the training images (MNIST: 10,000 against 60,000; the 8×8 digits: 360 against 1,437).
A retrieved item is relevant when it has the query's label. Printed: precision@100, mAP over the full Hamming
ranking (ties in corpus order) on the first ``--map-queries`` queries, and the time to answer all queries (top
100) from the packed index, the queries' encoding included.

aekit rows: the ``hashing`` preset (``binary`` itq, noise or ste) at its defaults except the bit count, trained
for ``--epochs`` epochs (default: the preset's 10 on MNIST; on the digits 60 for itq, 150 for the trained bits; the
Bernoulli likelihood on the pixels in [0, 1]).

    python benchmarks/hashing.py [--bits 16,32,64] [--epochs 10] [--data mnist,digits] [--binary itq,noise,ste]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from aekit import create, fit, load
from aekit.parts.projections import ITQ, LSH, PCAHash
from aekit.evaluation.retrieval import HammingIndex, ModelHasher, mean_average_precision, precision_at_k

HERE = Path(__file__).resolve().parent
# the preset's 10 epochs are ~4,700 steps on MNIST but 120 on the 1,437 digits, where the trained bits stay at
# chance (measured mAP 0.15 at 32 bits); 150 epochs, 1,700 steps, reach 0.63. The real-valued code of itq
# peaks earlier (over seeds 0-2, mean mAP at 32 bits: 30 epochs 0.650, 60 0.693, 150 0.671; README)
SMALL_DATA_EPOCHS = {"digits": {"itq": 60, "noise": 150, "ste": 150}}


def evaluate(hasher, db, db_y, q, q_y, n_map: int, fit_s: float) -> dict[str, float]:
    index = HammingIndex(hasher).add(db, db_y)
    t = time.perf_counter()
    _, idx = index.search(q, n=100)
    search_s = time.perf_counter() - t
    m = n_map or len(q)
    return {"p100": precision_at_k(db_y[idx], q_y), "map": mean_average_precision(index.distances(q[:m]), q_y[:m], db_y),
            "search_s": search_s, "fit_s": fit_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bits", default="16,32,64")
    ap.add_argument("--data", default="mnist,digits")
    ap.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    ap.add_argument("--binary", default="itq,noise,ste")
    ap.add_argument("--likelihood", default="bernoulli")
    ap.add_argument("--map-queries", type=int, default=0, help="queries for mAP (0: all)")
    ap.add_argument("--data-dir", type=Path, default=HERE.parents[1] / "shared" / "data" / "mnist")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--options", default="{}", help='more hashing-preset options, JSON, e.g. \'{"balance": 0.1}\'')
    args = ap.parse_args()
    print("| data | bits | hasher | precision@100 | mAP | search time (all queries) | fit time |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for name in args.data.split(","):
        split = load(name, data_dir=args.data_dir) if name == "mnist" else load(name)
        db, q = split.train.x.reshape(len(split.train.x), -1), split.test.x.reshape(len(split.test.x), -1)
        db_y, q_y = split.train.y, split.test.y
        for bits in map(int, args.bits.split(",")):
            rows = {}
            for label, hasher in [("LSH", LSH(bits, args.seed)), ("PCA + sign", PCAHash(bits)),
                                  ("ITQ (50 iterations)", ITQ(bits, seed=args.seed))]:
                t = time.perf_counter()
                hasher.fit(db)
                rows[label] = evaluate(hasher, db, db_y, q, q_y, args.map_queries, time.perf_counter() - t)
            for binary in args.binary.split(","):
                torch.manual_seed(args.seed)
                model = create("hashing", split.train.shape, code_size=bits, binary=binary,
                               likelihood=args.likelihood, **json.loads(args.options))
                t = time.perf_counter()
                epochs = args.epochs or SMALL_DATA_EPOCHS.get(name, {}).get(binary)  # None: the preset's
                fit(model, db, seed=args.seed, val_fraction=0, progress=False, **({"epochs": epochs} if epochs else {}))
                rows[f"aekit hashing ({binary})"] = evaluate(ModelHasher(model), db, db_y, q, q_y, args.map_queries,
                                                             time.perf_counter() - t)
            best = max(rows.values(), key=lambda r: r["map"])["map"]
            for label, r in rows.items():
                mark = "**" if r["map"] == best else ""
                print(f"| {name} | {bits} | {label} | {r['p100']:.4f} | {mark}{r['map']:.4f}{mark} | "
                      f"{r['search_s']:.2f} s | {r['fit_s']:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
