#!/usr/bin/env python3
"""Writes the t-SNE fixtures under fixtures/tsne/ so that the Swift tests need no Python.

Files (each < 1 MB), all in one tiny format: an ASCII header line
`MOEARRAY <dtype> <rows> <cols>\\n` (dtype spelled as in safetensors: U8, F16, F32) followed by
rows * cols little-endian elements, row-major:
- digits.moearray         scikit-learn's digits, 1797 x 64, U8 (the values are integers 0..16)
- digits-labels.moearray  their classes, 1797 x 1, U8
- blobs.moearray          make_blobs(8192, 50, centers=64, random_state=0), F16 (the peers run
                          on exactly these rounded values, see bench_tsne.blobs)
- blobs-labels.moearray   their centres, 8192 x 1, U8
- expected.json           the peers' KL divergences (and seconds on the machine that made them)

    /work/venv/bin/python scripts/make_tsne_fixtures.py
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_tsne  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tsne")
DTYPES = {"U8": np.dtype("<u1"), "F16": np.dtype("<f2"), "F32": np.dtype("<f4")}


def write_array(name, array, dtype):
    array = np.asarray(array)
    if array.ndim == 1:
        array = array[:, None]
    converted = array.astype(DTYPES[dtype])
    assert np.array_equal(converted.astype(np.float64), array.astype(np.float64)), name
    path = os.path.join(OUT, name)
    with open(path + ".tmp", "wb") as f:
        f.write(f"MOEARRAY {dtype} {array.shape[0]} {array.shape[1]}\n".encode("ascii"))
        f.write(np.ascontiguousarray(converted).tobytes())
    os.replace(path + ".tmp", path)


def main():
    os.makedirs(OUT, exist_ok=True)
    x, y = bench_tsne.digits()
    write_array("digits.moearray", x, "U8")
    write_array("digits-labels.moearray", y, "U8")
    x, y = bench_tsne.blobs()
    write_array("blobs.moearray", x, "F16")
    write_array("blobs-labels.moearray", y, "U8")

    expected = {
        "about": "KL divergences of the peers on these fixtures (random_state=0, 2 threads). Seconds are "
                 "indicative only: they vary by 2x with the load on the shared 2-core machine; compare "
                 "times side by side with scripts/bench_tsne.py --out FILE and MOE_TSNE_PEERS=FILE.",
        "versions": bench_tsne.versions(),
    }
    for run in bench_tsne.RUNS:
        expected[run] = bench_tsne.run(run)
        print(f"{run}: {expected[run]}", file=sys.stderr)
    path = os.path.join(OUT, "expected.json")
    with open(path + ".tmp", "w") as f:
        json.dump(expected, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
