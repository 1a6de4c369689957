#!/usr/bin/env python3
"""PyTorch peer for the trainer benchmark: transformers' OlmoeForCausalLM trained with AdamW.

Reference configuration (issue 6): vocab 256, d 256, 4 layers, 4 heads, 8 experts, top-2,
D 256, sequence 256, batch 8, fp32. Prints one line per measurement and a final JSON line
with the median tokens/s, so `make bench` can put it beside ours.

    python scripts/bench_train.py [--steps 10] [--warmup 2] [--threads 2] [--erc]
"""
import argparse
import json
import resource
import statistics
import time

import torch
from transformers import OlmoeConfig, OlmoeForCausalLM
from transformers.models.olmoe.modeling_olmoe import load_balancing_loss_func


def erc_loss(model, alpha=1.0):
    """The ERC loss written plainly (paper, Figure 8), summed over layers."""
    total = 0.0
    for layer in model.model.layers:
        R = layer.mlp.gate.weight                      # [n, d]
        gate_up = layer.mlp.experts.gate_up_proj       # [n, 2D, d], gate rows first
        n = R.shape[0]
        D = gate_up.shape[1] // 2
        Wg = gate_up[:, :D, :]                         # [n, D, d]
        with torch.no_grad():
            dist = torch.cdist(R, R)
            dist.fill_diagonal_(float("inf"))
            eps = dist.min(dim=1).values / (2 * R.norm(dim=1))
            delta = 1 + (2 * torch.rand_like(R) - 1) * eps[:, None]
        proxy = delta * R                              # [n, d]
        M = torch.einsum("id,jkd->ijk", proxy, Wg).norm(dim=-1)   # [n, n]
        diag = M.diagonal()
        off = ~torch.eye(n, dtype=torch.bool)
        spec = torch.relu(M - alpha * diag[:, None])[off].sum()
        prec = torch.relu(M - alpha * diag[None, :])[off].sum()
        total = total + (spec + prec) / n**2
    return total


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--erc", action="store_true", help="add the ERC loss (weight 1, alpha 1)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = OlmoeConfig(vocab_size=256, hidden_size=256, intermediate_size=256, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=4, num_experts=8, num_experts_per_tok=2,
                      max_position_embeddings=a.seq, router_aux_loss_coef=0.01)
    model = OlmoeForCausalLM(cfg).float().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    x = torch.randint(0, 256, (a.batch, a.seq))
    tokens = a.batch * a.seq

    def step():
        out = model(input_ids=x, labels=x, output_router_logits=True)
        loss = out.loss
        if a.erc:
            loss = loss + erc_loss(model)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    rates, cpus = [], []
    for i in range(a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        loss = step()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        rates.append(tokens / dt)
        cpus.append(dc)
        print(f"step {i} loss {loss:.4f} {tokens / dt:.0f} tokens/s, {dc:.3f} CPU s")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"impl": "pytorch", "erc": a.erc, "tokens_per_s": statistics.median(rates),
                      "cpu_s_per_step": statistics.median(cpus),
                      "peak_rss_mb": round(rss_mb, 1), "threads": a.threads}))


if __name__ == "__main__":
    main()
