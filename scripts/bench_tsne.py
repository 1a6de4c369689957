#!/usr/bin/env python3
"""Peer side of the t-SNE benchmark: scikit-learn and openTSNE on the fixture data sets.

Runs scikit-learn's exact and Barnes-Hut t-SNE on the digits data (1797 x 64) and openTSNE's
Barnes-Hut (and optionally FFT) t-SNE on 8192 blobs of 50 dimensions, all with random_state=0
and 2 threads, and prints one JSON object {run: {"kl": ..., "seconds": ..., ...}} on stdout.
The Swift side (Tests/EmbeddingTests/TSNEBenchmarkTests.swift, run with MOE_BENCH=1) reads the
same data from fixtures/tsne/ and compares its KL divergence and time with these figures.

    /work/venv/bin/python scripts/bench_tsne.py                 # all runs
    /work/venv/bin/python scripts/bench_tsne.py --runs blobs-opentsne-bh --out peers.json
"""
import argparse
import json
import os
import sys
import time

# Two threads for every peer, as on the 2-core benchmark machine; set before numpy loads.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "2")

import numpy as np  # noqa: E402

RUNS = ("digits-exact", "digits-bh", "digits-bh-angle0.2", "digits-opentsne-bh", "blobs-opentsne-bh",
        "blobs-opentsne-fft", "blobs-sklearn-bh")
DEFAULT_RUNS = ("digits-exact", "digits-bh", "digits-opentsne-bh", "blobs-opentsne-bh")


def digits():
    """scikit-learn's digits as float32 (values are the integers 0..16) and their labels."""
    from sklearn.datasets import load_digits
    d = load_digits()
    return d.data.astype(np.float32), d.target.astype(np.int64)


def blobs():
    """make_blobs(8192, 50, centers=64, random_state=0), rounded through float16 as stored."""
    from sklearn.datasets import make_blobs
    x, y = make_blobs(n_samples=8192, n_features=50, centers=64, random_state=0)
    return x.astype(np.float16).astype(np.float32), y.astype(np.int64)


def run_sklearn(x, method, angle=0.5):
    from sklearn.manifold import TSNE
    t0 = time.perf_counter()
    model = TSNE(method=method, angle=angle, random_state=0, n_jobs=2)
    model.fit_transform(x)
    seconds = time.perf_counter() - t0
    return {"kl": float(model.kl_divergence_), "seconds": seconds,
            "iterations": int(model.n_iter_) + 1, "peer": "scikit-learn", "method": method,
            "angle": angle}


def run_opentsne(x, method):
    import openTSNE
    t0 = time.perf_counter()
    embedding = openTSNE.TSNE(n_jobs=2, random_state=0, negative_gradient_method=method).fit(x)
    seconds = time.perf_counter() - t0
    return {"kl": float(embedding.kl_divergence), "seconds": seconds, "iterations": 750,
            "peer": "openTSNE", "method": method}


def run(name):
    data = digits if name.startswith("digits") else blobs
    x, _ = data()
    if name in ("digits-exact",):
        return run_sklearn(x, "exact")
    if name in ("digits-bh", "blobs-sklearn-bh"):
        return run_sklearn(x, "barnes_hut")
    if name == "digits-bh-angle0.2":
        # Closer to exact repulsion: shows how much KL scikit-learn's angle 0.5 gives away.
        return run_sklearn(x, "barnes_hut", angle=0.2)
    if name.endswith("opentsne-bh"):
        return run_opentsne(x, "bh")
    if name.endswith("opentsne-fft"):
        return run_opentsne(x, "fft")
    raise ValueError(f"unknown run {name}")


def versions():
    import sklearn
    import openTSNE
    return {"scikit-learn": sklearn.__version__, "openTSNE": openTSNE.__version__,
            "numpy": np.__version__, "python": sys.version.split()[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=",".join(DEFAULT_RUNS),
                        help=f"comma-separated subset of {', '.join(RUNS)}")
    parser.add_argument("--out", help="also write the JSON to this file")
    args = parser.parse_args()
    results = {"versions": versions()}
    for name in args.runs.split(","):
        results[name] = run(name)
        print(f"{name}: {results[name]}", file=sys.stderr)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
