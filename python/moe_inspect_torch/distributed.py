"""Collectives for expert-parallel ERC, with the autograd behaviour erc_loss documents.

Only what ERC needs: the n x n_local column blocks of M are gathered once (a few kilobytes per
layer: n = 256 experts over 8 ranks is 256 x 32 floats), the noise is broadcast once, and in the
``"exact"`` convention the router's gradient is summed over the group.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["broadcast_from_group_rank0", "gather_columns", "all_reduce_grad"]


def broadcast_from_group_rank0(tensor: torch.Tensor, group) -> None:
    """In place: every rank of ``group`` receives the group's rank 0 tensor."""
    dist.broadcast(tensor, src=dist.get_global_rank(group, 0), group=group)


class _GatherColumns(torch.autograd.Function):
    """[..., n, n_local] per rank -> [..., n, n_local * world] (rank r's block at columns r*n_local).

    Backward: ``"sum"`` sums the gathered gradient over the group and keeps this rank's block
    (a reduce-scatter, the backward of ``torch.distributed.nn.functional.all_gather``);
    ``"exact"`` keeps this rank's block of its own gradient (valid when every rank backpropagates
    the same loss, which ERC's identical M makes true), so no communication.
    """

    @staticmethod
    def forward(ctx, local: torch.Tensor, group, mode: str) -> torch.Tensor:
        local = local.contiguous()
        world, rank = dist.get_world_size(group), dist.get_rank(group)
        parts = [torch.empty_like(local) for _ in range(world)]
        dist.all_gather(parts, local, group=group)
        ctx.group, ctx.mode, ctx.rank, ctx.width = group, mode, rank, local.shape[-1]
        return torch.cat(parts, dim=-1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if ctx.mode == "sum":
            grad = grad.contiguous().clone()
            dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        start = ctx.rank * ctx.width
        return grad[..., start:start + ctx.width].contiguous(), None, None


def gather_columns(local: torch.Tensor, group, mode: str = "sum") -> torch.Tensor:
    """All-gather column blocks with the gradient convention ``mode`` (``"sum"`` or ``"exact"``)."""
    return _GatherColumns.apply(local, group, mode)


class _AllReduceGrad(torch.autograd.Function):
    """Identity forward; backward sums the gradient over the group."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad, None


def all_reduce_grad(x: torch.Tensor, group) -> torch.Tensor:
    """x unchanged; its gradient is summed over ``group`` in the backward pass."""
    return _AllReduceGrad.apply(x, group)
