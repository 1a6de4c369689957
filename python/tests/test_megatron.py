"""attach_erc_megatron on Megatron-Core's own MoELayer (CPU; see dist_worker.megatron_worker)."""
import pytest
import torch
import torch.multiprocessing as mp

import dist_worker
from helpers import free_port
from moe_inspect_torch import erc_loss

pytest.importorskip("megatron.core")


def close(a, b, rtol=1e-5):
    torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * b.abs().max().item())


def run(world, tmp_path, per_token=False, patch_class=False):
    # fork: the workers inherit the imports of this process.
    mp.start_processes(dist_worker.megatron_worker, args=(world, free_port(), str(tmp_path), per_token, patch_class),
                       nprocs=world, join=True, start_method="fork")
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]


@pytest.mark.parametrize("world,per_token,patch_class", [(1, False, False), (1, True, False), (2, False, False),
                                                         (2, False, True)])
def test_erc_through_moe_aux_loss_auto_scaler(world, per_token, patch_class, tmp_path):
    """attach_erc_megatron on a built layer, or erc_for_every_moe_layer before building it."""
    outs = run(world, tmp_path, per_token, patch_class)
    delta = outs[0]["delta"]
    for o in outs[1:]:
        assert torch.equal(o["delta"], delta)  # one noise draw per EP group
    r = outs[0][True]["R"].clone().requires_grad_(True)
    w = torch.cat([o[True]["W"] for o in outs]).requires_grad_(True)  # all experts, [n, 2D, d]
    res = erc_loss(r, w, alpha=1.0, noise=False, delta=delta, layout="fused_gate_up")
    res.loss.backward()
    # The aux scale (0.5 for 2 micro-batches, or 1 with per-token loss, times the local tokens).
    scale = 2.0 * (outs[0]["tokens"] if per_token else 0.5)
    n_local = w.shape[0] // world
    for rank, o in enumerate(outs):
        close(o["loss"], res.loss.detach())
        # "sum" convention: each EP rank's local experts get world x the exact gradient.
        close(o[True]["dW"] - o[False]["dW"], world * scale * w.grad[rank * n_local:(rank + 1) * n_local])
    close(sum(o[True]["dR"] - o[False]["dR"] for o in outs), world * scale * r.grad, rtol=1e-4)
