#!/usr/bin/env python3
"""The PyTorch peer of `moe-inspect erc CKPT --no-noise --alpha 1` (and of `--samples S`): the same
analysis written plainly (safetensors safe_open, stack W_g, einsum, norm, cdist), for timing and
for checking our values.

FP8 checkpoints (DeepSeek-V3: F8_E4M3 weights with 128x128 `weight_scale_inv` blocks) are
dequantised to float32 as DeepSeek's own `weight_dequant` does, one expert at a time: its bytes
read with plain file reads into a reused buffer (safe_open's memory map would leave every page
read resident in this process), float8_e4m3fn -> float32 into its slot of the stack, times the
block scales. When a layer's stacked float32 gate projections would exceed 2 GB (DeepSeek-V3:
15 GB), the einsum runs over chunks of experts, so memory stays near 2 GB at any size.
With --samples S the proxies are R and S noisy copies delta * R, delta ~ U(1 - eps, 1 + eps) per
element (torch's generator: the noisy losses are not comparable with ours, the noise-free columns
are), and the losses are the mean over the samples.

usage: bench_erc.py CKPT_DIR OUT.csv [--threads 2] [--samples S] [--layers 3,4] [--alpha 1]
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
    alpha = float(arg("--alpha", 1.0))
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

    def read_fp8_into(dst, name):
        """Expert weight `name` (F8_E4M3 with a scale_inv beside it) dequantised into dst [rows, cols]."""
        path, begin, end = raw_location(name)
        with open(path, "rb") as fh:
            fh.seek(begin)
            fh.readinto(staging[: end - begin].numpy())
        rows, cols = dst.shape
        dst.copy_(staging[: end - begin].view(torch.float8_e4m3fn).view(rows, cols))
        s = get(name + "_scale_inv")
        if rows % 128 == 0 and cols % 128 == 0:
            dst.view(rows // 128, 128, cols // 128, 128).mul_(s[:, None, :, None])
        else:
            dst.mul_(s.repeat_interleave(128, 0)[:rows].repeat_interleave(128, 1)[:, :cols])

    headers = {}

    def raw_location(name):
        fn = weight_map[name]
        if fn not in headers:
            with open(os.path.join(ckpt, fn), "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                headers[fn] = (json.loads(fh.read(n)), 8 + n)
        header, start = headers[fn]
        begin, end = header[name]["data_offsets"]
        return os.path.join(ckpt, fn), start + begin, start + end

    def is_fp8(name):
        raw_location(name)
        return headers[weight_map[name]][0][name]["dtype"] == "F8_E4M3" and name + "_scale_inv" in weight_map

    staging = torch.empty(0, dtype=torch.uint8)
    layers = sorted({int(m.group(1)) for k in weight_map if (m := re.fullmatch(r"model\.layers\.(\d+)\.mlp\.gate\.weight", k))})
    layers = [l for l in layers if not only or l in only]
    rows = []
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
        gate = [f"model.layers.{l}.mlp.experts.{e}.gate_proj.weight" for e in range(n)]
        fp8 = is_fp8(gate[0])
        if fp8:
            _, begin, end = raw_location(gate[0])
            D = (end - begin) // d
            if staging.numel() < end - begin:
                staging = torch.empty(end - begin, dtype=torch.uint8)
        else:
            first = get(gate[0])
            D = first.shape[0]
        chunk = max(1, min(n, (2 << 30) // (4 * D * d)))
        Ms = []
        stack = torch.empty(chunk, D, d) if fp8 else None
        for e0 in range(0, n, chunk):
            if fp8:
                Wg = stack[: min(n, e0 + chunk) - e0]
                for e in range(e0, min(n, e0 + chunk)):
                    read_fp8_into(Wg[e - e0], gate[e])
            else:
                Wg = torch.stack([first if e == 0 else get(gate[e]) for e in range(e0, min(n, e0 + chunk))])
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
        del M_all, Ms, stack
    seconds = time.time() - t0
    with open(out, "w") as fh:
        fh.write("layer,n_experts,erc_loss,erc_specialization,erc_precision,eps_mean,coupling_alpha\n")
        for r in rows:
            fh.write(",".join(str(v) for v in r) + "\n")
    print(json.dumps({"seconds": seconds, "layers": len(rows), "seconds_per_layer": per_layer, "threads": threads, "samples": samples, "alpha": alpha}))


if __name__ == "__main__":
    main()
