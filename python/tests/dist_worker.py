"""Worker processes for test_distributed.py (a module of its own so that spawn can import it)."""
import os

import torch
import torch.distributed as dist

import helpers  # noqa: F401  (puts python/ on sys.path)
from moe_inspect_torch import erc_loss


def _slice(w: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    n_local = w.shape[0] // world
    return w[rank * n_local:(rank + 1) * n_local].clone()


def _run(r, w, group, rank, world, **kw):
    """erc_loss with this rank's experts; returns (loss, parts, dR, dW_local, result)."""
    r = r.clone().requires_grad_(True)
    wl = _slice(w, rank, world).requires_grad_(True)
    res = erc_loss(r, wl, group=group, **kw)
    res.loss.backward()
    return res, r.grad, wl.grad


def worker(rank: int, world: int, port: int, data: dict, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        r, w, delta, up = data["router"], data["gate"], data["delta"], data["up"]
        out = {}
        group = dist.group.WORLD
        # Fixed delta, both conventions.
        for mode in ("exact", "sum"):
            res, dr, dw = _run(r, w, group, rank, world, alpha=0.5, noise=False, delta=delta, ep_grad=mode)
            out[mode] = {"loss": res.loss.detach(), "spec": res.specialization.detach(),
                         "prec": res.precision.detach(), "alpha_star": res.coupling_alpha,
                         "M": res.activation, "dR": dr, "dW": dw}
        # Noise drawn on rank 0 only (other ranks' generators differ) and broadcast.
        g = torch.Generator().manual_seed(1234 + rank)
        res, dr, dw = _run(r, w, group, rank, world, alpha=1.0, noise=True, generator=g, ep_grad="exact")
        out["noisy"] = {"loss": res.loss.detach(), "delta": res.delta, "dR": dr, "dW": dw}
        # A fused gate_up layout and the swiglu feature through the same path.
        fused = torch.cat([w, up], dim=1)
        res, dr, dw = _run(r, fused, group, rank, world, alpha=1.0, noise=False, delta=delta,
                           layout="fused_gate_up", feature="swiglu", ep_grad="exact")
        out["swiglu"] = {"loss": res.loss.detach(), "dR": dr, "dW": dw}

        if world == 4:
            # Expert parallelism inside data parallelism: EP groups {0,1} and {2,3}; ranks {0,2}
            # and {1,3} hold the same experts (expert-data-parallel replicas).
            groups = [dist.new_group([0, 1]), dist.new_group([2, 3])]
            ep = groups[rank // 2]
            ep_rank = rank % 2
            g = torch.Generator().manual_seed(99 + rank)
            res, dr, dw = _run(r, w, ep, ep_rank, 2, alpha=1.0, noise=True, generator=g, ep_grad="sum")
            # Megatron-Core's reduction: every gradient summed over its data-parallel replicas and
            # divided by the data-parallel size (4 for the router, replicas {0,2}/{1,3} for experts).
            dr_avg = dr.clone()
            dist.all_reduce(dr_avg)
            dr_avg /= world
            edp = dist.new_group([0, 2]), dist.new_group([1, 3])
            dw_avg = dw.clone()
            dist.all_reduce(dw_avg, group=edp[ep_rank])
            dw_avg /= world
            out["ep_dp"] = {"loss": res.loss.detach(), "delta": res.delta, "dR_avg": dr_avg, "dW_avg": dw_avg}
        torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()
