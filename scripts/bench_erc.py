#!/usr/bin/env python3
"""The PyTorch peer of `moe-inspect erc CKPT --no-noise --alpha 1` (and of `--samples S`): the same
analysis written plainly (safetensors safe_open, stack W_g, einsum, norm, cdist), for timing and
for checking our values.

FP8 checkpoints (DeepSeek-V3: F8_E4M3 weights with 128x128 `weight_scale_inv` blocks) are
dequantised to float32 as DeepSeek's own `weight_dequant` does. When a layer's stacked float32
gate projections would exceed 2 GB (DeepSeek-V3: 15 GB), the einsum runs over chunks of experts.
With --samples S the proxies are R and S noisy copies delta * R, delta ~ U(1 - eps, 1 + eps) per
element (torch's generator: the noisy losses are not comparable with ours, the noise-free columns
are), and the losses are the mean over the samples.

usage: bench_erc.py CKPT_DIR OUT.csv [--threads 2] [--samples S] [--layers 3,4]
"""
import json
import os
import re
import sys
import time

import torch
from safetensors import safe_open


def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def main():
    ckpt, out = sys.argv[1], sys.argv[2]
    threads = int(arg("--threads", 2))
    samples = int(arg("--samples", 0))
    only = {int(x) for x in arg("--layers", "").split(",") if x}
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
        w = handles[fn].get_tensor(name)
        if w.dtype in (torch.float8_e4m3fn, torch.float8_e5m2) and name + "_scale_inv" in weight_map:
            s = get(name + "_scale_inv")
            rows, cols = w.shape
            s = s.repeat_interleave(128, 0)[:rows].repeat_interleave(128, 1)[:, :cols]
            return w.float() * s
        return w.float()

    layers = sorted({int(m.group(1)) for k in weight_map if (m := re.fullmatch(r"model\.layers\.(\d+)\.mlp\.gate\.weight", k))})
    layers = [l for l in layers if not only or l in only]
    rows = []
    alpha = 1.0
    gen = torch.Generator().manual_seed(0)
    per_layer = []
    for l in layers:
        tl = time.time()
        R = get(f"model.layers.{l}.mlp.gate.weight")
        n, d = R.shape
        dist = torch.cdist(R, R)
        dist.fill_diagonal_(float("inf"))
        eps = dist.min(dim=1).values / (2 * R.norm(dim=1))
        X = [R] + [R * (1 - eps[:, None] + 2 * eps[:, None] * torch.rand(n, d, generator=gen)) for _ in range(samples)]
        X = torch.cat(X)
        first = get(f"model.layers.{l}.mlp.experts.0.gate_proj.weight")
        D = first.shape[0]
        chunk = max(1, min(n, (2 << 30) // (4 * D * d)))
        Ms = []
        for e0 in range(0, n, chunk):
            Wg = torch.stack([first if e == 0 else get(f"model.layers.{l}.mlp.experts.{e}.gate_proj.weight") for e in range(e0, min(n, e0 + chunk))])
            Ms.append(torch.einsum("id,jkd->ijk", X, Wg).norm(dim=2))
            del Wg
        M_all = torch.cat(Ms, dim=1)
        off = ~torch.eye(n, dtype=torch.bool)
        losses = []
        for s in (range(1, samples + 1) if samples else [0]):
            M = M_all[s * n:(s + 1) * n]
            diag = M.diagonal()
            spec = torch.relu(M - alpha * diag[:, None])[off].sum() / n**2
            prec = torch.relu(M - alpha * diag[None, :])[off].sum() / n**2
            losses.append((spec.item() + prec.item(), spec.item(), prec.item()))
        M = M_all[:n]
        ratio = torch.maximum(M, M.T) / M.diagonal()[:, None]
        mean = [sum(v[i] for v in losses) / len(losses) for i in range(3)]
        rows.append((l, n, *mean, eps.mean().item(), ratio[off].max().item()))
        per_layer.append(time.time() - tl)
        del M_all, Ms
    seconds = time.time() - t0
    with open(out, "w") as fh:
        fh.write("layer,n_experts,erc_loss,erc_specialization,erc_precision,eps_mean,coupling_alpha\n")
        for r in rows:
            fh.write(",".join(str(v) for v in r) + "\n")
    print(json.dumps({"seconds": seconds, "layers": len(rows), "seconds_per_layer": per_layer, "threads": threads, "samples": samples}))


if __name__ == "__main__":
    main()
