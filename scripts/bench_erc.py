#!/usr/bin/env python3
"""The PyTorch peer of `moe-inspect erc CKPT --no-noise --alpha 1`: the same analysis written plainly
(safetensors safe_open, stack W_g, einsum, norm, cdist), for timing and for checking our values.

usage: bench_erc.py CKPT_DIR OUT.csv [--threads 2]
"""
import json
import os
import re
import sys
import time

import torch
from safetensors import safe_open


def main():
    ckpt, out = sys.argv[1], sys.argv[2]
    threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 2
    torch.set_num_threads(threads)
    t0 = time.time()
    index = os.path.join(ckpt, "model.safetensors.index.json")
    if os.path.exists(index):
        weight_map = json.load(open(index))["weight_map"]
    else:
        with safe_open(os.path.join(ckpt, "model.safetensors"), "pt") as f:
            weight_map = {k: "model.safetensors" for k in f.keys()}
    handles = {}

    def get(name):
        fn = weight_map[name]
        if fn not in handles:
            handles[fn] = safe_open(os.path.join(ckpt, fn), "pt")
        return handles[fn].get_tensor(name)

    layers = sorted({int(m.group(1)) for k in weight_map if (m := re.fullmatch(r"model\.layers\.(\d+)\.mlp\.gate\.weight", k))})
    rows = []
    alpha = 1.0
    for l in layers:
        R = get(f"model.layers.{l}.mlp.gate.weight").float()
        n = R.shape[0]
        Wg = torch.stack([get(f"model.layers.{l}.mlp.experts.{e}.gate_proj.weight").float() for e in range(n)])
        dist = torch.cdist(R, R)
        dist.fill_diagonal_(float("inf"))
        eps = dist.min(dim=1).values / (2 * R.norm(dim=1))
        M = torch.einsum("id,jkd->ijk", R, Wg).norm(dim=2)
        diag = M.diagonal()
        off = ~torch.eye(n, dtype=torch.bool)
        spec = torch.relu(M - alpha * diag[:, None])[off].sum() / n**2
        prec = torch.relu(M - alpha * diag[None, :])[off].sum() / n**2
        ratio = torch.maximum(M, M.T) / diag[:, None]
        rows.append((l, n, (spec + prec).item(), spec.item(), prec.item(), eps.mean().item(), ratio[off].max().item()))
        del Wg, M
    seconds = time.time() - t0
    with open(out, "w") as fh:
        fh.write("layer,n_experts,erc_loss,erc_specialization,erc_precision,eps_mean,coupling_alpha\n")
        for r in rows:
            fh.write(",".join(str(v) for v in r) + "\n")
    print(json.dumps({"seconds": seconds, "layers": len(rows), "threads": threads}))


if __name__ == "__main__":
    main()
