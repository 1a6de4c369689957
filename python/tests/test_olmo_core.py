"""attach_erc_olmo_core on OLMo-core's own MoE modules (CPU: the Triton expert kernels are
replaced by the identity, see dist_worker.olmo_core_model)."""
import warnings

import pytest
import torch
import torch.multiprocessing as mp

import dist_worker
from helpers import free_port
from moe_inspect_torch import attach_erc_olmo_core, erc_loss

pytest.importorskip("olmo_core")
warnings.filterwarnings("ignore", message=".*[Gg]rouped GEMM.*")

LAYOUT = {"dropless": "olmo_core_dropless", "default": "olmo_core"}


def close(a, b, rtol=1e-5):
    torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * b.abs().max().item())


def reference(moe, kind, delta=None):
    """dERC/dR (flat, like OLMo-core's router weight) and dERC/dw1 straight from erc_loss."""
    n, d = moe.router.num_experts, moe.router.d_model
    r = moe.router.weight.detach().to_local() if hasattr(moe.router.weight, "to_local") else moe.router.weight.detach()
    w1 = moe.experts.mlp.w1.detach()
    w1 = w1.full_tensor() if hasattr(w1, "full_tensor") else w1
    r, w1 = r.clone().requires_grad_(True), w1.clone().requires_grad_(True)
    res = erc_loss(r.view(n, d), w1, alpha=1.0, noise=False, delta=delta, layout=LAYOUT[kind])
    res.loss.backward()
    return res, r.grad, w1.grad


@pytest.mark.parametrize("kind", ["dropless", "default"])
def test_erc_joins_the_aux_loss_path_of_a_training_step(kind):
    x = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(0))
    grads, metrics = [], None
    for attach in (False, True):
        model = dist_worker.olmo_core_model(kind)
        model.train()
        handle = attach_erc_olmo_core(model, weight=2.0, alpha=1.0, noise=False) if attach else None
        # What OLMo-core's train module does for one micro-batch: labels, and loss_div_factor =
        # the tokens of the rank's whole batch (here twice this micro-batch: scale 1/2).
        out = model(x, labels=x, loss_div_factor=64.0)
        out.loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        if attach:
            metrics = {k: v[0] for k, v in model.compute_auxiliary_metrics(reset=True).items()}
            assert len(handle.modules) == 2 and set(handle.last) == {"blocks.0.feed_forward_moe", "blocks.1.feed_forward_moe"}
    total = 0.0
    for b in ("0", "1"):
        moe = model.blocks[b].feed_forward_moe
        res, dr, dw = reference(moe, kind)
        total += res.loss.item()
        prefix = f"blocks.{b}.feed_forward_moe."
        # The experts only see ERC here (identity experts): the whole w1 gradient is ERC's.
        assert prefix + "experts.mlp.w1" not in grads[0]
        close(grads[1][prefix + "experts.mlp.w1"], 2.0 * 0.5 * dw)
        # The router gets ERC's gradient on top of the load-balancing and z-loss gradients.
        close(grads[1][prefix + "router.weight"] - grads[0][prefix + "router.weight"], 2.0 * 0.5 * dr, rtol=1e-4)
        assert metrics[f"block 0{b}/ERC loss unscaled"].item() == pytest.approx(0.5 * res.loss.item(), rel=1e-5)
        assert metrics[f"block 0{b}/ERC alpha*"].item() == pytest.approx(res.coupling_alpha.item(), rel=1e-5)
    assert metrics["ERC loss"].item() == pytest.approx(2.0 * 0.5 * total, rel=1e-5)
    # Evaluation adds nothing and remove() restores the module.
    model.eval()
    with torch.no_grad():
        model(x, labels=x, loss_div_factor=64.0)
    handle.remove()
    assert "forward" not in model.blocks["0"].feed_forward_moe.__dict__


def test_patching_the_class_and_deep_copies():
    """erc_for_every_moe (for scripts where OLMo-core builds the model) equals attaching; a deep
    copy of an attached model (OLMo-core's pipeline split copies it) computes ERC on its own
    parameters."""
    import copy

    from moe_inspect_torch.olmo_core import erc_for_every_moe

    x = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(0))

    def grads_of(model):
        model.train()
        model(x, labels=x, loss_div_factor=32.0).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    attached = dist_worker.olmo_core_model("dropless")
    attach_erc_olmo_core(attached, weight=2.0, alpha=1.0, noise=False)
    want = grads_of(attached)
    undo = erc_for_every_moe(weight=2.0, alpha=1.0, noise=False)
    try:
        patched = dist_worker.olmo_core_model("dropless")
    finally:
        undo()
    plain = dist_worker.olmo_core_model("dropless")
    assert "_erc_settings" in patched.blocks["0"].feed_forward_moe.__dict__
    assert "_erc_settings" not in plain.blocks["0"].feed_forward_moe.__dict__
    for got in (grads_of(patched), grads_of(copy.deepcopy(attached))):
        assert set(got) == set(want)
        for name, g in want.items():
            torch.testing.assert_close(got[name], g, msg=name)


def test_a_checkpointed_moe_recomputes_erc_with_the_same_noise():
    """OLMo-core refuses to checkpoint MoE blocks or MoE modules, so ERC is never recomputed
    there today; should a MoE module be wrapped anyway (torch's non-reentrant checkpoint_wrapper
    without preserving the RNG state, as OLMo-core wraps other modules), ERC is redone in the
    backward pass with the original noise and counted once."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    x = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(0))
    grads, metrics = [], []
    for checkpointing in (False, True):
        model = dist_worker.olmo_core_model("dropless")
        model.train()
        attach_erc_olmo_core(model, weight=3.0, alpha=0.5, generator=torch.Generator().manual_seed(1))
        if checkpointing:
            for block in model.blocks.values():
                block.register_module("feed_forward_moe", checkpoint_wrapper(block.feed_forward_moe, preserve_rng_state=False))
        model(x, labels=x, loss_div_factor=32.0).loss.backward()
        grads.append({n.replace("._checkpoint_wrapped_module", ""): p.grad.clone()
                      for n, p in model.named_parameters() if p.grad is not None})
        metrics.append(model.compute_auxiliary_metrics(reset=True)["ERC loss"][0].item())
    assert metrics[1] == pytest.approx(metrics[0], rel=1e-6)
    assert set(grads[1]) == set(grads[0])
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-5, atol=1e-7, msg=name)


@pytest.fixture(scope="module")
def ep_run(tmp_path_factory):
    world = 2
    out_dir = tmp_path_factory.mktemp("olmo_core_ep")
    # fork, not spawn: the workers inherit the imported OLMo-core (importing it takes seconds).
    mp.start_processes(dist_worker.olmo_core_ep_worker, args=(world, free_port(), str(out_dir)), nprocs=world,
                       join=True, start_method="fork")
    return world, [torch.load(out_dir / f"rank{r}.pt") for r in range(world)]


@pytest.mark.parametrize("kind", ["dropless", "default"])
@pytest.mark.parametrize("mode", ["sum", "exact"])
def test_expert_parallel_with_olmo_cores_apply_ep(ep_run, kind, mode):
    world, outs = ep_run
    model = dist_worker.olmo_core_model(kind, aux_losses=False)
    moe = model.blocks["0"].feed_forward_moe
    rows = moe.experts.mlp.w1.shape[0] // world
    delta = outs[0][kind, mode]["delta"]
    assert torch.equal(outs[1][kind, mode]["delta"], delta)  # drawn on EP rank 0, broadcast
    res, dr, dw = reference(moe, kind, delta=delta)
    factor = world if mode == "sum" else 1
    for rank, o in enumerate(outs):
        o = o[kind, mode]
        close(o["loss"], res.loss.detach())
        close(o["dW"], factor * 2.0 * 0.5 * dw[rank * rows:(rank + 1) * rows])
        if mode == "exact":
            close(o["dR"], 2.0 * 0.5 * dr)
        assert o["metrics"]["ERC loss unscaled"].item() == pytest.approx(0.5 * res.loss.item(), rel=1e-5)
    if mode == "sum":
        close(sum(o[kind, mode]["dR"] for o in outs), world * 2.0 * 0.5 * dr)
