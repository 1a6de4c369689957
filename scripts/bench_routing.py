#!/usr/bin/env python3
"""Time transformers' forward pass on the tokens `moe-inspect routing` runs, for its benchmark.

    /work/venv/bin/python scripts/bench_routing.py CKPT --data FILE [--seq-len 512] [--max-tokens N]
        [--batch 8] [--threads 2] [--dtype float32|bfloat16] [--repeats 3] [--hooks]

Reads the tokens as moe-inspect does (.npy, raw uint16 .bin, .txt as bytes), cuts windows of
--seq-len from token 0 (a last partial window dropped), runs them through
AutoModelForCausalLM (--attention sdpa or eager, torch.set_num_threads) in batches of --batch windows under
torch.inference_mode, with forward hooks on the router modules when --hooks (as the peer check
does), warms up once, and prints one JSON line: tokens, the median seconds of --repeats runs,
tokens/s and the peak RSS of the process (ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def read_tokens(path: str) -> np.ndarray:
    if path.endswith(".npy"):
        return np.load(path).astype(np.int64)
    if path.endswith(".txt"):
        return np.frombuffer(open(path, "rb").read(), dtype=np.uint8).astype(np.int64)
    return np.fromfile(path, dtype="<u2").astype(np.int64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--data", required=True)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--max-tokens", type=int)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--hooks", action="store_true")
    ap.add_argument("--attention", default="sdpa", help="attn_implementation: sdpa (default) or eager")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(a.checkpoint, dtype=getattr(torch, a.dtype), attn_implementation=a.attention).eval()
    tokens = read_tokens(a.data)
    if a.max_tokens:
        tokens = tokens[: a.max_tokens]
    w = len(tokens) // a.seq_len
    ids = torch.tensor(tokens[: w * a.seq_len]).reshape(w, a.seq_len)
    if a.hooks:
        seen = []
        for _, mod in model.named_modules():
            if type(mod).__name__.lower().endswith("topkrouter"):
                mod.register_forward_hook(lambda m, i, o: seen.append(o[2]))

    def once():
        with torch.inference_mode():
            for b in range(0, w, a.batch):
                model.model(input_ids=ids[b:b + a.batch])  # hidden states; the LM head is not timed

    once()
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(json.dumps({"tool": "transformers", "tokens": int(w * a.seq_len), "seconds": med, "tokens_per_second": w * a.seq_len / med,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "threads": a.threads, "dtype": a.dtype,
                      "batch": a.batch, "attention": a.attention}))


if __name__ == "__main__":
    main()
