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


# ---------------------------------------------------------------------------------------------
# OLMo-core


def olmo_core_model(kind: str, seed: int = 0, aux_losses: bool = True):
    """A tiny OLMo-core OLMoE-style MoETransformer on the CPU. OLMo-core's expert kernels need
    Triton on a GPU, so the experts' forward is replaced by the identity: everything else
    (routers, their auxiliary losses, attach_auxiliary_loss, the parameters) is OLMo-core's."""
    from olmo_core.nn.moe import MoEType
    from olmo_core.nn.transformer import TransformerConfig

    torch.manual_seed(seed)
    cfg = TransformerConfig.olmoe_1B_7B(vocab_size=128, d_model=32, n_layers=2, n_heads=4)
    moe = cfg.block.feed_forward_moe
    moe.num_experts, moe.hidden_size, moe.router.top_k = 8, 16, 2
    moe.name = MoEType(kind)
    if not aux_losses:
        moe.lb_loss_weight, moe.z_loss_weight = None, None
    model = cfg.build(init_device="cpu")
    model.init_weights(device=torch.device("cpu"), max_seq_len=64)
    for block in model.blocks.values():
        block.feed_forward_moe.experts.forward = lambda x, *args, **kwargs: x * 1.0
    return model


def olmo_core_ep_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    """For a dropless and a default MoE: OLMo-core's own apply_ep (w1 becomes a DTensor sharded
    over the EP mesh), then one MoE layer's forward and backward with attach_erc_olmo_core."""
    import warnings

    from torch.distributed.device_mesh import init_device_mesh

    from moe_inspect_torch import attach_erc_olmo_core

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        mesh = init_device_mesh("cpu", (world,), mesh_dim_names=("ep",))
        out = {}
        for kind in ("dropless", "default"):
            model = olmo_core_model(kind, aux_losses=False)
            model.apply_ep(mesh)
            model.train()
            for mode in ("sum", "exact"):
                handle = attach_erc_olmo_core(model, weight=2.0, alpha=1.0, ep_grad=mode,
                                              generator=torch.Generator().manual_seed(5 + rank))
                moe = model.blocks["0"].feed_forward_moe
                h = torch.randn(2, 16, 32, generator=torch.Generator().manual_seed(3))
                model.zero_grad(set_to_none=True)
                moe(h, loss_div_factor=64.0).sum().backward()
                res = handle.last["blocks.0.feed_forward_moe"]
                out[kind, mode] = {
                    "dW": moe.experts.mlp.w1.grad.to_local().clone(), "dR": moe.router.weight.grad.clone(),
                    "delta": res.delta, "loss": res.loss.detach(),
                    "metrics": {k: v[0].clone() for k, v in moe.compute_metrics().items() if "ERC" in k}}
                handle.remove()
        torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------
# Megatron-Core


def megatron_worker(rank: int, world: int, port: int, out_dir: str, per_token: bool = False,
                    patch_class: bool = False) -> None:
    """A Megatron-Core MoELayer (SequentialMLP experts, SwiGLU, allgather dispatcher, expert
    parallel size = world) on the CPU. Megatron's router calls torch.cuda in `gating`, so that
    one line is replaced by the same F.linear, and torch.cuda.current_device() answers "cpu";
    everything else is Megatron's."""
    import warnings

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        from megatron.core import parallel_state
        from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
        from megatron.core.process_groups_config import ProcessGroupCollection
        from megatron.core.transformer.moe.moe_layer import MoELayer
        from megatron.core.transformer.moe.moe_utils import MoEAuxLossAutoScaler
        from megatron.core.transformer.transformer_config import TransformerConfig

        from moe_inspect_torch.megatron import attach_erc_megatron, erc_for_every_moe_layer

        # Megatron allocates its communication buffers on torch.cuda.current_device(): on this
        # CPU-only machine, point that at the CPU (test-only shim; the collectives are gloo's).
        torch.cuda.current_device = lambda: "cpu"
        parallel_state.initialize_model_parallel(1, 1, expert_model_parallel_size=world)
        cfg = TransformerConfig(
            num_layers=1, hidden_size=32, num_attention_heads=4, num_moe_experts=8, moe_ffn_hidden_size=16,
            moe_router_topk=2, gated_linear_unit=True, activation_func=torch.nn.functional.silu,
            use_cpu_initialization=True, moe_token_dispatcher_type="allgather", moe_aux_loss_coeff=0.0,
            add_bias_linear=False, params_dtype=torch.float32, calculate_per_token_loss=per_token)
        spec = get_gpt_layer_local_spec(num_experts=8, moe_grouped_gemm=False)
        out = {}
        for attach in (False, True):
            torch.manual_seed(rank)  # the same layer for both passes
            undo = erc_for_every_moe_layer(weight=2.0, alpha=1.0, generator=torch.Generator().manual_seed(9 + rank)) \
                if attach and patch_class else None
            layer = MoELayer(cfg, spec.submodules.mlp.submodules, pg_collection=ProcessGroupCollection.use_mpu_process_groups())
            if undo is not None:
                undo()
            router_seed = torch.Generator().manual_seed(0)  # the router is the same on every rank
            with torch.no_grad():
                layer.router.weight.copy_(torch.randn(layer.router.weight.shape, generator=router_seed) * 0.3)
                g = torch.Generator().manual_seed(100 + rank)  # this rank's experts
                for e in layer.experts.local_experts:
                    e.linear_fc1.weight.copy_(torch.randn(e.linear_fc1.weight.shape, generator=g) * 0.2)
            layer.train()
            layer.router.gating = (lambda r: lambda inp: torch.nn.functional.linear(inp.float(), r.weight))(layer.router)
            handle = None
            if attach:
                handle = layer._erc_handle if patch_class else \
                    attach_erc_megatron(layer, weight=2.0, alpha=1.0, generator=torch.Generator().manual_seed(9 + rank))
            # What the pipeline schedule sets for 2 micro-batches without per-token loss.
            MoEAuxLossAutoScaler.set_loss_scale(torch.tensor(1.0 if per_token else 0.5))
            x = torch.randn(8, 2, 32, generator=torch.Generator().manual_seed(1))
            y, _ = layer(x)
            y.sum().backward()
            out[attach] = {"dR": layer.router.weight.grad.clone(),
                           "dW": torch.stack([e.linear_fc1.weight.grad.clone() for e in layer.experts.local_experts]),
                           "R": layer.router.weight.detach().clone(),
                           "W": torch.stack([e.linear_fc1.weight.detach().clone() for e in layer.experts.local_experts])}
            if attach:
                res = next(iter(handle.last.values()))
                out["delta"], out["loss"], out["tokens"] = res.delta, res.loss.detach(), x.shape[0] * x.shape[1]
                handle.remove()
        torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()
