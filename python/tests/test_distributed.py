"""Expert-parallel erc_loss on torch.distributed (gloo, 127.0.0.1) equals one process holding all
experts: 2 and 4 processes."""
import pytest
import torch
import torch.multiprocessing as mp

import dist_worker
from helpers import free_port
from moe_inspect_torch import erc_loss

N, D, d = 8, 6, 10


def make_data():
    g = torch.Generator().manual_seed(7)
    router = torch.randn(N, d, generator=g)
    gate = torch.randn(N, D, d, generator=g) / d ** 0.5
    up = torch.randn(N, D, d, generator=g) / d ** 0.5
    delta = 0.7 + 0.6 * torch.rand(N, d, generator=g)
    return {"router": router, "gate": gate, "up": up, "delta": delta}


def reference(data, **kw):
    r = data["router"].clone().requires_grad_(True)
    w = kw.pop("weight", data["gate"]).clone().requires_grad_(True)
    res = erc_loss(r, w, **kw)
    res.loss.backward()
    return res, r.grad, w.grad


def close(a, b, rtol=1e-5):
    torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * b.abs().max().item())


@pytest.fixture(scope="module", params=[2, 4])
def run(request, tmp_path_factory):
    world = request.param
    data = make_data()
    out_dir = tmp_path_factory.mktemp(f"ep{world}")
    mp.spawn(dist_worker.worker, args=(world, free_port(), data, str(out_dir)), nprocs=world, join=True)
    outs = [torch.load(out_dir / f"rank{r}.pt") for r in range(world)]
    return world, data, outs


def test_exact_convention_equals_one_process(run):
    world, data, outs = run
    ref, dr, dw = reference(data, alpha=0.5, noise=False, delta=data["delta"])
    n_local = N // world
    for rank, o in enumerate(outs):
        e = o["exact"]
        close(e["loss"], ref.loss.detach())
        close(e["spec"], ref.specialization.detach())
        close(e["prec"], ref.precision.detach())
        close(e["M"], ref.activation)
        close(e["alpha_star"], ref.coupling_alpha)
        close(e["dR"], dr)  # every rank holds the full router gradient
        close(e["dW"], dw[rank * n_local:(rank + 1) * n_local])


def test_sum_convention_is_the_autograd_all_gather(run):
    world, data, outs = run
    ref, dr, dw = reference(data, alpha=0.5, noise=False, delta=data["delta"])
    n_local = N // world
    for rank, o in enumerate(outs):
        s = o["sum"]
        close(s["loss"], ref.loss.detach())
        close(s["dW"], world * dw[rank * n_local:(rank + 1) * n_local])
    # The ranks' router gradients are their experts' shares: they sum to world * dL/dR ...
    close(sum(o["sum"]["dR"] for o in outs), world * dr)
    # ... and their mean over the group (what data-parallel averaging does) is dL/dR.
    close(sum(o["sum"]["dR"] for o in outs) / world, dr)


def test_noise_is_drawn_once_and_broadcast(run):
    world, data, outs = run
    delta = outs[0]["noisy"]["delta"]
    for o in outs[1:]:
        assert torch.equal(o["noisy"]["delta"], delta)
    ref, dr, dw = reference(data, alpha=1.0, noise=False, delta=delta)
    n_local = N // world
    for rank, o in enumerate(outs):
        close(o["noisy"]["loss"], ref.loss.detach())
        close(o["noisy"]["dR"], dr)
        close(o["noisy"]["dW"], dw[rank * n_local:(rank + 1) * n_local])


def test_fused_layout_and_swiglu_feature(run):
    world, data, outs = run
    fused = torch.cat([data["gate"], data["up"]], dim=1)
    ref, dr, dw = reference(data, weight=fused, alpha=1.0, noise=False, delta=data["delta"],
                            layout="fused_gate_up", feature="swiglu")
    n_local = N // world
    for rank, o in enumerate(outs):
        close(o["swiglu"]["loss"], ref.loss.detach())
        close(o["swiglu"]["dR"], dr)
        close(o["swiglu"]["dW"], dw[rank * n_local:(rank + 1) * n_local])


def test_expert_parallel_inside_data_parallel(run):
    """EP groups {0,1}, {2,3} with the Megatron-Core reduction (sum over replicas / dp size):
    the result is the mean of the two groups' exact ERC gradients."""
    world, data, outs = run
    if world != 4:
        pytest.skip("needs 4 processes")
    deltas = [outs[0]["ep_dp"]["delta"], outs[2]["ep_dp"]["delta"]]
    assert torch.equal(outs[1]["ep_dp"]["delta"], deltas[0]) and torch.equal(outs[3]["ep_dp"]["delta"], deltas[1])
    assert not torch.equal(deltas[0], deltas[1])  # each EP group drew its own noise
    refs = [reference(data, alpha=1.0, noise=False, delta=dl) for dl in deltas]
    dr = (refs[0][1] + refs[1][1]) / 2
    dw = (refs[0][2] + refs[1][2]) / 2
    for rank, o in enumerate(outs):
        close(o["ep_dp"]["loss"], refs[rank // 2][0].loss.detach())
        close(o["ep_dp"]["dR_avg"], dr)
        ep_rank = rank % 2
        close(o["ep_dp"]["dW_avg"], dw[ep_rank * 4:(ep_rank + 1) * 4])
