"""ERC for OLMo-core MoE models, through OLMo-core's own auxiliary-loss path.

OLMo-core (allenai/OLMo-core, ``olmo_core/nn/moe``) adds its router losses (load balancing,
router z-loss) with ``olmo_core.ops.attach_auxiliary_loss(activation, aux_loss)``: an identity
on the activation whose backward gives the auxiliary loss a gradient of one. The loss never
appears in the returned loss value; it is logged through ``compute_metrics``.
:func:`attach_erc_olmo_core` does the same for ERC: it wraps ``forward`` of every MoE module
(``MoEBase``: ``feed_forward_moe`` of an ``MoETransformerBlock`` or
``MoEReorderedNormTransformerBlock``) so that, after the experts ran (their parameters are
gathered by FSDP at that point), ``weight * ERC`` of that layer is attached to the MoE output and
its value reported as the metrics ``ERC loss`` (weighted), ``ERC loss unscaled`` and
``ERC alpha*``.

Weighting across micro-batches follows OLMo-core's load-balancing loss: each micro-batch adds
``ERC * tokens_in_micro_batch / loss_div_factor`` (``loss_div_factor`` = the rank's batch
tokens counted for the loss, passed by OLMo-core's train module), so one optimizer step sees ERC
once (a little more when labels are masked, exactly like the load-balancing loss).
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
import torch.nn as nn

from .erc import ERCResult, erc_loss, in_backward_pass

__all__ = ["attach_erc_olmo_core", "olmo_core_gate_weight", "OlmoCoreERCHandle"]


def _local(t: torch.Tensor) -> torch.Tensor:
    """The local shard of a DTensor (differentiable), or the tensor itself."""
    to_local = getattr(t, "to_local", None)
    return to_local() if callable(to_local) else t


def _is_moe(m: nn.Module) -> bool:
    # Direct children only: OLMo-core's MoE blocks expose `router` and `experts` as properties
    # of their `feed_forward_moe`, which must not be wrapped twice.
    router, experts = m._modules.get("router"), m._modules.get("experts")
    mlp = getattr(experts, "mlp", None) if experts is not None else None
    return router is not None and hasattr(router, "num_experts") and hasattr(router, "d_model") \
        and isinstance(getattr(router, "weight", None), torch.Tensor) and mlp is not None \
        and isinstance(getattr(mlp, "w1", None), torch.Tensor)


def olmo_core_gate_weight(mlp: nn.Module) -> tuple:
    """``(local w1, layout)`` of an OLMo-core expert MLP (``DroplessMoEMLP`` stores w1 as
    [n_local*D, d], ``MoEMLP`` as [n_local*d, D]); the local shard under expert parallelism."""
    w1 = _local(mlp.w1)
    name = type(mlp).__name__
    if "Dropless" in name:
        return w1, "olmo_core_dropless"
    if name == "MoEMLP":
        return w1, "olmo_core"
    # Unknown subclass: decide from the shape ([n*D, d] has d columns).
    return w1, ("olmo_core_dropless" if w1.shape[-1] == mlp.d_model else "olmo_core")


class OlmoCoreERCHandle:
    """What :func:`attach_erc_olmo_core` returns; :meth:`remove` restores the modules."""

    def __init__(self):
        #: The wrapped MoE modules.
        self.modules: List[nn.Module] = []
        #: Per MoE module name (``blocks.3.feed_forward_moe``), the :class:`ERCResult` of the
        #: last training forward pass.
        self.last: Dict[str, ERCResult] = {}
        self._deltas: Dict[str, Optional[torch.Tensor]] = {}
        self._restore: list = []

    def remove(self) -> None:
        """Puts back the original ``forward``, ``compute_metrics`` and ``reset_metrics``."""
        for fn in self._restore:
            fn()
        self._restore.clear()
        self.modules.clear()
        self.last.clear()


def attach_erc_olmo_core(model: nn.Module, weight: float = 1.0, alpha: float = 1.0, *, noise: bool = True,
                         feature: str = "gate", ep_grad: str = "sum",
                         generator: Optional[torch.Generator] = None) -> OlmoCoreERCHandle:
    """Adds ``weight * ERC`` of every MoE layer of an OLMo-core model to its auxiliary losses.

    Call it on the model before or after parallelising it (EP/FSDP), before training. Each
    layer's ERC uses the router ``router.weight`` viewed as [n, d] and the experts' ``w1``
    (its local shard and ``experts.mlp.ep_pg`` as the group under expert parallelism); only the
    ``gate`` feature is available (OLMo-core's w3 could give ``up``, not wired here).

    Args:
        model: an OLMo-core ``MoETransformer`` (or any module containing ``MoEBase`` modules).
        weight: the ERC weight; the total added per step is ``weight * sum over layers of ERC``.
        alpha: the ERC alpha.
        noise: the paper's noise on the proxies.
        feature: must be ``"gate"``.
        ep_grad: the expert-parallel gradient convention of :func:`erc_loss` (``"sum"`` matches
            how OLMo-core reduces its other losses; see docs/pytorch.md).
        generator: torch.Generator for the noise (on the model's device).
    """
    if feature != "gate":
        raise ValueError("attach_erc_olmo_core supports the 'gate' feature only")
    handle = OlmoCoreERCHandle()
    for name, moe in [(n, m) for n, m in model.named_modules() if _is_moe(m)]:
        _wrap(name, moe, handle, weight, alpha, noise, ep_grad, generator)
    if not handle.modules:
        raise ValueError("no OLMo-core MoE module (with `router` and `experts.mlp.w1`) found")
    return handle


def _wrap(name: str, moe: nn.Module, handle: OlmoCoreERCHandle, weight: float, alpha: float, noise: bool,
          ep_grad: str, generator: Optional[torch.Generator]) -> None:
    original_forward = moe.__dict__.get("forward")
    original_metrics = moe.__dict__.get("compute_metrics")
    original_reset = moe.__dict__.get("reset_metrics")
    bound_forward, bound_metrics, bound_reset = moe.forward, moe.compute_metrics, moe.reset_metrics
    sums = {"erc": None, "alpha": None}

    def forward(x: torch.Tensor, *args, loss_div_factor=None, **kwargs):
        out = bound_forward(x, *args, loss_div_factor=loss_div_factor, **kwargs)
        if not (moe.training and torch.is_grad_enabled()):
            return out
        from olmo_core.ops import attach_auxiliary_loss

        # Activation checkpointing recomputes this forward during the backward pass: redo ERC
        # with the noise of the original forward, and count it once.
        recomputing = in_backward_pass()
        router = moe.router
        r = _local(router.weight).view(router.num_experts, router.d_model)
        w1, layout = olmo_core_gate_weight(moe.experts.mlp)
        group = getattr(moe.experts.mlp, "ep_pg", None)
        delta = handle._deltas.get(name) if recomputing else None
        res = erc_loss(r, w1, alpha=alpha, noise=noise, generator=generator, group=group, layout=layout,
                       ep_grad=ep_grad, delta=delta)
        tokens = _local(x).numel() // x.shape[-1]
        scale = tokens / loss_div_factor if loss_div_factor is not None else 1.0
        term = res.loss * scale
        if not recomputing:
            handle.last[name] = res
            handle._deltas[name] = res.delta
            with torch.no_grad():
                sums["erc"] = term.detach() if sums["erc"] is None else sums["erc"] + term.detach()
                sums["alpha"] = res.coupling_alpha
        return attach_auxiliary_loss(out, weight * term)

    @torch.no_grad()
    def compute_metrics(reset: bool = True):
        out = bound_metrics(reset=False)
        if sums["erc"] is not None:
            from olmo_core.train.common import ReduceType

            out["ERC loss"] = (weight * sums["erc"], ReduceType.mean)
            out["ERC loss unscaled"] = (sums["erc"].clone(), ReduceType.mean)
            out["ERC alpha*"] = (sums["alpha"].clone(), ReduceType.mean)
        if reset:
            reset_metrics()
        return out

    def reset_metrics():
        bound_reset()
        sums["erc"], sums["alpha"] = None, None

    moe.forward = forward
    moe.compute_metrics = compute_metrics
    moe.reset_metrics = reset_metrics

    def restore():
        for attr, orig in (("forward", original_forward), ("compute_metrics", original_metrics),
                           ("reset_metrics", original_reset)):
            if orig is None:
                moe.__dict__.pop(attr, None)
            else:
                moe.__dict__[attr] = orig

    handle.modules.append(moe)
    handle._restore.append(restore)
