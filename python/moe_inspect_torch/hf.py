"""ERC for transformers' MoE models (OLMoE, Mixtral, Qwen2-MoE, Qwen3-MoE and the like).

:func:`attach_erc` adds ``weight * sum over MoE layers of ERC`` to the loss the model returns when
it is called with labels in training mode. Each layer's ERC is computed right after that MoE
block's forward (inside its decoder layer, where FSDP has the layer's parameters gathered) and
the sum is added to ``outputs.loss`` by a hook on the model you pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from .erc import ERCResult, erc_loss, in_backward_pass

__all__ = ["MoELayerRef", "find_moe_layers", "attach_erc", "ERCHandle"]


@dataclass
class MoELayerRef:
    """One MoE block found in a model: where its router and expert weights are."""

    #: Qualified module name, e.g. ``model.layers.3.mlp``.
    name: str
    #: The sparse MoE block (has ``gate`` and ``experts``).
    module: nn.Module
    #: The router weight R [n, d].
    router: torch.Tensor
    #: Returns ``(W_g [n, D, d], W_p [n, D, d] or None, W_o [n, d, D] or None)`` as views (or stacks)
    #: of the current parameters, so that gradients reach them.
    projections: Callable[[], Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]]


def _fused_projections(experts: nn.Module):
    w = experts.gate_up_proj
    transposed = bool(getattr(experts, "is_transposed", False))
    concatenated = bool(getattr(experts, "is_concatenated", True))
    down = getattr(experts, "down_proj", None)

    def get():
        g = w.transpose(1, 2) if transposed else w  # [n, 2D, d]
        if concatenated:
            D = g.shape[1] // 2
            gate, up = g[:, :D, :], g[:, D:, :]
        else:  # interleaved rows gate0, up0, gate1, up1, ...
            gate, up = g[:, 0::2, :], g[:, 1::2, :]
        o = None
        if isinstance(down, torch.Tensor) and down.dim() == 3:
            o = down.transpose(1, 2) if transposed else down  # [n, d, D]
        return gate, up, o

    return get


def _per_expert_projections(experts: nn.ModuleList):
    def linear(e: nn.Module, names) -> Optional[torch.Tensor]:
        for nm in names:
            sub = getattr(e, nm, None)
            if sub is not None and isinstance(getattr(sub, "weight", None), torch.Tensor):
                return sub.weight
        return None

    def get():
        gates = [linear(e, ("gate_proj", "w1")) for e in experts]
        ups = [linear(e, ("up_proj", "w3")) for e in experts]
        downs = [linear(e, ("down_proj", "w2")) for e in experts]
        up = torch.stack(ups) if all(u is not None for u in ups) else None
        down = torch.stack(downs) if all(o is not None for o in downs) else None
        return torch.stack(gates), up, down

    return get


def _router_weight(block: nn.Module) -> Optional[torch.Tensor]:
    gate = getattr(block, "gate", None)
    w = getattr(gate, "weight", None) if gate is not None else None
    return w if isinstance(w, torch.Tensor) and w.dim() == 2 else None


def find_moe_layers(model: nn.Module) -> List[MoELayerRef]:
    """Every sparse MoE block of a transformers model: a module with a router ``gate`` (2-D
    ``weight`` [n, d]) and ``experts`` that are either fused (``gate_up_proj`` [n, 2D, d], the
    in-memory layout of transformers 5, honouring ``is_transposed`` / ``is_concatenated``) or a
    ``ModuleList`` of experts with ``gate_proj``/``w1`` (transformers 4). Shared experts are not
    routed and are left out, as in the paper."""
    found: List[MoELayerRef] = []
    for name, module in model.named_modules():
        router = _router_weight(module)
        experts = getattr(module, "experts", None)
        if router is None or experts is None:
            continue
        if isinstance(getattr(experts, "gate_up_proj", None), torch.Tensor) and experts.gate_up_proj.dim() == 3:
            get = _fused_projections(experts)
        elif isinstance(experts, nn.ModuleList) and len(experts) > 0 and \
                all(getattr(e, "gate_proj", None) is not None or getattr(e, "w1", None) is not None for e in experts):
            get = _per_expert_projections(experts)
        else:
            continue
        gate, _, _ = get()
        if gate.shape[0] != router.shape[0] or gate.shape[2] != router.shape[1]:
            continue
        found.append(MoELayerRef(name=name, module=module, router=router, projections=get))
    return found


@dataclass
class ERCHandle:
    """What :func:`attach_erc` returns: call :meth:`remove` to detach ERC from the model."""

    weight: float
    alpha: float
    layers: List[MoELayerRef]
    #: Per layer name, the :class:`ERCResult` of the last forward pass that added ERC (detached).
    last: Dict[str, ERCResult] = field(default_factory=dict)
    #: The last ERC sum over layers (before the weight), detached; None until a training forward.
    last_loss: Optional[torch.Tensor] = None
    _hooks: list = field(default_factory=list)
    _active: bool = False
    _pending: Dict[str, ERCResult] = field(default_factory=dict)
    _deferred: list = field(default_factory=list)
    _modes: Dict[str, str] = field(default_factory=dict)
    _recompute: Dict[str, str] = field(default_factory=dict)
    _recompute_delta: Dict[str, Optional[torch.Tensor]] = field(default_factory=dict)

    def remove(self) -> None:
        """Removes every hook: the model computes its plain loss again."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        self._active = False
        self._pending = {}


def attach_erc(model: nn.Module, weight: float = 1.0, alpha: float = 1.0, *, noise: bool = True,
               feature: str = "gate", generator: Optional[torch.Generator] = None,
               training_only: bool = True, layers: Optional[List[str]] = None) -> ERCHandle:
    """Adds ``weight * sum over MoE layers of ERC`` to the loss ``model`` returns.

    The term is added when the model is called with ``labels=...`` (so that it returns a loss),
    gradients are enabled and, with ``training_only`` (default), the model is in training mode.
    ``outputs.loss`` then includes it (value and gradient); the per-layer results are in
    ``handle.last`` and their sum in ``handle.last_loss``.

    Args:
        model: a transformers model whose forward returns the loss (``...ForCausalLM``).
        weight: the ERC loss weight (the paper uses 1, summing the per-layer losses).
        alpha: the ERC alpha.
        noise: the paper's multiplicative noise on the proxies (fresh each forward pass).
        feature: the probe feature (``"gate"``, the paper's, or ``"up"``, ``"silu-gate"``,
            ``"swiglu"``, ``"output"``).
        generator: torch.Generator for the noise (default: torch's global generator).
        training_only: add ERC only when ``model.training``.
        layers: restrict to these module names (as in :func:`find_moe_layers`).

    Returns:
        An :class:`ERCHandle`; ``handle.remove()`` detaches ERC.

    With gradient accumulation the term is added once per micro-batch, as transformers adds its
    router auxiliary loss. Gradient checkpointing works both ways: with ``use_reentrant=False``
    (transformers 5's default) ERC is computed inside each layer and recomputed with the same
    noise; with ``use_reentrant=True`` (whose forward runs without grad) it is computed after the
    model's forward, outside the checkpointed layers. The recomputation uses the noise of the
    latest forward pass: run each forward's backward before the next forward (the usual loop).
    """
    found = find_moe_layers(model)
    if layers is not None:
        wanted = set(layers)
        found = [l for l in found if l.name in wanted]
    if not found:
        raise ValueError("no MoE block (a module with a router `gate` and `experts`) found in the model")
    handle = ERCHandle(weight=weight, alpha=alpha, layers=found)

    def compute(ref: MoELayerRef, delta: Optional[torch.Tensor] = None) -> ERCResult:
        gate, up, down = ref.projections()
        return erc_loss(ref.router, gate, alpha=alpha, noise=noise, generator=generator, feature=feature,
                        delta=delta, up_weight=up if feature in ("up", "swiglu", "output") else None,
                        down_weight=down if feature == "output" else None)

    def pre_hook(module, args, kwargs):
        if in_backward_pass():
            return None
        labels = kwargs.get("labels")
        handle._active = labels is not None and torch.is_grad_enabled() and (module.training or not training_only)
        handle._pending, handle._deferred, handle._modes = {}, [], {}

    def block_hook_for(ref: MoELayerRef):
        def hook(module, args, output):
            if in_backward_pass():
                # A non-reentrant checkpoint recomputing this layer: redo the same operations with
                # the same noise, or the recomputed saved tensors would not match.
                if torch.is_grad_enabled() and handle._recompute.get(ref.name) == "inline":
                    compute(ref, handle._recompute_delta.get(ref.name))
                return None
            if not handle._active:
                return None
            if torch.is_grad_enabled():
                handle._pending[ref.name] = compute(ref)
                handle._modes[ref.name] = "inline"
            else:
                # Inside a reentrant checkpoint (its forward runs without grad): compute ERC after
                # the model's forward, outside the checkpointed layer, so that it has a gradient.
                handle._deferred.append(ref)
                handle._modes[ref.name] = "deferred"
            return None
        return hook

    def post_hook(module, args, kwargs, output):
        if in_backward_pass() or not handle._active:
            return None
        handle._active = False
        for ref in handle._deferred:
            handle._pending[ref.name] = compute(ref)
        results, handle._pending, handle._deferred = handle._pending, {}, []
        handle._recompute = handle._modes
        handle._recompute_delta = {k: r.delta for k, r in results.items()}
        if not results:
            return None
        total = torch.stack([r.loss for r in results.values()]).sum()
        handle.last = {k: r.detached() for k, r in results.items()}
        handle.last_loss = total.detach()
        if isinstance(output, tuple):
            if len(output) > 0 and isinstance(output[0], torch.Tensor) and output[0].dim() == 0:
                return (output[0] + weight * total.to(output[0].dtype),) + tuple(output[1:])
            return None
        loss = getattr(output, "loss", None)
        if loss is None:
            return None
        output.loss = loss + weight * total.to(loss.dtype)
        return output

    handle._hooks.append(model.register_forward_pre_hook(pre_hook, with_kwargs=True))
    for ref in found:
        handle._hooks.append(ref.module.register_forward_hook(block_hook_for(ref)))
    handle._hooks.append(model.register_forward_hook(post_hook, with_kwargs=True))
    return handle
