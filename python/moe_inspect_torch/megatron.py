"""ERC for Megatron-Core MoE layers, through ``MoEAuxLossAutoScaler`` (Megatron's aux-loss path).

Megatron-Core attaches its router losses to the router's output probabilities with
``MoEAuxLossAutoScaler.apply(probs, aux_loss)``: an identity whose backward gives the auxiliary
loss the gradient ``MoEAuxLossAutoScaler.main_loss_backward_scale``, which the pipeline schedule
sets each micro-batch (``loss_scale * cp_size / num_microbatches``, or ``loss_scale`` with
``calculate_per_token_loss``). :func:`attach_erc_megatron` wraps ``forward`` of every
``MoELayer``'s router so that ``weight * ERC`` of that layer is attached the same way.

Scaling, so that one optimizer step adds exactly ``weight * ERC`` per layer (derived from
Megatron-Core's gradient reduction, see docs/pytorch.md):

- default (per-micro-batch mean loss): ERC is divided by the router's TP x CP group size
  (Megatron sums the router's gradient over tensor-parallel ranks, sequence parallelism being
  required with MoE and TP, and the aux scale multiplies by the CP size), as Megatron divides
  its z-loss coefficient;
- ``calculate_per_token_loss``: ERC is multiplied by the router's local token count, as Megatron
  does for its load-balancing loss, because every gradient is later divided by the global
  token count.

Expert parallelism uses the MoE layer's ``ep_group`` with the ``"sum"`` gradient convention,
which is the one Megatron's expert-gradient scaling expects. Expert tensor parallelism (experts
split over TP ranks) is not supported.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from .erc import ERCResult, erc_loss

__all__ = ["attach_erc_megatron", "erc_for_every_moe_layer", "megatron_gate_weight", "MegatronERCHandle"]


def _size(group) -> int:
    if group is None:
        return 1
    size = getattr(group, "size", None)
    if callable(size):
        return size()
    import torch.distributed as dist
    return dist.get_world_size(group)


def megatron_gate_weight(experts: nn.Module, hidden_size: int) -> Tuple[torch.Tensor, str]:
    """``(W, layout)`` of a Megatron-Core experts module's local first projections (fc1): for a
    gated linear unit (SwiGLU) fc1 holds the gate rows then the up rows, so the layout is a
    fused one; without it fc1 is the gate-less input projection itself.

    ``SequentialMLP`` (``local_experts[i].linear_fc1.weight`` [2D, d]) and ``TEGroupedMLP``
    (``linear_fc1.weight{i}`` [2D, d]) are stacked (gradients flow back through the stack);
    the legacy ``GroupedMLP`` stores ``weight1`` as [d, n_local * 2D] and is viewed."""
    config = experts.config
    glu = bool(getattr(config, "gated_linear_unit", False))
    if getattr(config, "moe_mlp_glu_interleave_size", None):
        raise ValueError("interleaved GLU weights (moe_mlp_glu_interleave_size) are not supported")
    tp = getattr(experts, "tp_group", None)
    if _size(tp) > 1:
        raise ValueError("expert tensor parallelism (expert_tensor_parallel_size > 1) is not supported by ERC here")
    n_local = experts.num_local_experts
    name = type(experts).__name__
    if hasattr(experts, "local_experts"):
        w = torch.stack([e.linear_fc1.weight for e in experts.local_experts])
    elif hasattr(experts, "linear_fc1") and hasattr(experts.linear_fc1, "weight0"):
        w = torch.stack([getattr(experts.linear_fc1, f"weight{i}") for i in range(n_local)])
    elif hasattr(experts, "weight1"):
        w = experts.weight1.view(n_local, hidden_size, -1)  # [n_local, d, (2)D]
        return (w, "fused_gate_up_transposed") if glu else (w.transpose(1, 2), "experts")
    else:
        raise ValueError(f"unsupported Megatron-Core experts module {name}")
    return w, ("fused_gate_up" if glu else "experts")


class MegatronERCHandle:
    """What :func:`attach_erc_megatron` returns; :meth:`remove` restores the routers."""

    def __init__(self):
        #: The wrapped MoE layers.
        self.layers: List[nn.Module] = []
        #: Per MoE layer name, the :class:`ERCResult` of the last training forward pass (detached).
        self.last: Dict[str, ERCResult] = {}
        self._restore: list = []

    def remove(self) -> None:
        """Puts back every router's original ``forward``."""
        for fn in self._restore:
            fn()
        self._restore.clear()
        self.layers.clear()
        self.last.clear()


def _is_moe_layer(m: nn.Module) -> bool:
    return m._modules.get("router") is not None and m._modules.get("experts") is not None \
        and isinstance(getattr(m._modules["router"], "weight", None), torch.Tensor) and hasattr(m, "ep_group")


def attach_erc_megatron(model: nn.Module, weight: float = 1.0, alpha: float = 1.0, *, noise: bool = True,
                        ep_grad: str = "sum", generator: Optional[torch.Generator] = None) -> MegatronERCHandle:
    """Adds ``weight * ERC`` of every Megatron-Core ``MoELayer`` in ``model`` to its auxiliary
    losses (gate feature; the router's ``weight`` [n, d] and the experts' fc1 gate rows).

    Args:
        model: a Megatron-Core model (e.g. ``GPTModel``) or a single ``MoELayer``; call before
            wrapping with Megatron's DDP (the wrapper keeps the modules).
        weight: ERC weight; per optimizer step the total is ``weight * sum over layers of ERC``.
        alpha: the ERC alpha.
        noise: the paper's noise on the proxies.
        ep_grad: expert-parallel gradient convention of :func:`erc_loss`; keep ``"sum"`` with
            Megatron's gradient reduction.
        generator: torch.Generator for the noise.
    """
    from megatron.core.transformer.moe.moe_utils import MoEAuxLossAutoScaler

    handle = MegatronERCHandle()
    for name, layer in [(n, m) for n, m in model.named_modules() if _is_moe_layer(m)]:
        router = layer.router
        original = router.__dict__.get("forward")
        bound = router.forward
        hidden = layer.config.hidden_size

        def forward(input, *args, _layer=layer, _router=router, _bound=bound, _name=name, **kwargs):
            probs, routing_map = _bound(input, *args, **kwargs)
            if not (_router.training and torch.is_grad_enabled()):
                return probs, routing_map
            w, layout = megatron_gate_weight(_layer.experts, hidden)
            group = _layer.ep_group if _size(_layer.ep_group) > 1 else None
            res = erc_loss(_router.weight, w, alpha=alpha, noise=noise, generator=generator, group=group,
                           layout=layout, ep_grad=ep_grad)
            handle.last[_name] = res.detached()
            term = weight * res.loss
            if getattr(_router, "calculate_per_token_loss", False):
                term = term * probs.shape[0]
            else:
                term = term / _size(getattr(_router, "tp_cp_group", None))
            return MoEAuxLossAutoScaler.apply(probs, term), routing_map

        router.forward = forward

        def restore(_router=router, _original=original):
            if _original is None:
                _router.__dict__.pop("forward", None)
            else:
                _router.__dict__["forward"] = _original

        handle.layers.append(layer)
        handle._restore.append(restore)
    if not handle.layers:
        raise ValueError("no Megatron-Core MoELayer (with `router`, `experts` and `ep_group`) found")
    return handle


def erc_for_every_moe_layer(weight: float = 1.0, alpha: float = 1.0, **kwargs):
    """Makes every Megatron-Core ``MoELayer`` built from now on carry ERC (``attach_erc_megatron``
    on the new layer, same arguments). Call it once at the top of a training script (for example
    Megatron-LM's ``pretrain_gpt.py``) when you do not build the model yourself.

    Each layer's :class:`MegatronERCHandle` is its ``_erc_handle``. Returns a function that undoes
    the patch (layers already built keep ERC)."""
    from megatron.core.transformer.moe.moe_layer import MoELayer

    original = MoELayer.__init__

    def __init__(self, *args, **kw):
        original(self, *args, **kw)
        self._erc_handle = attach_erc_megatron(self, weight=weight, alpha=alpha, **kwargs)

    MoELayer.__init__ = __init__

    def undo():
        MoELayer.__init__ = original

    return undo
