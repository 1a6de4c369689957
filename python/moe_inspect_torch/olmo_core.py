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

import types
from dataclasses import dataclass
from typing import Dict, Optional

import torch
import torch.nn as nn

from .erc import ERCResult, erc_loss, in_backward_pass

__all__ = ["attach_erc_olmo_core", "erc_for_every_moe", "olmo_core_gate_weight", "OlmoCoreERCHandle"]


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


@dataclass(frozen=True)
class _Settings:
    weight: float
    alpha: float
    noise: bool
    ep_grad: str
    generator: Optional[torch.Generator]

    def __deepcopy__(self, memo):  # shared by copies of the module (torch.Generator is not copyable)
        return self


class OlmoCoreERCHandle:
    """What :func:`attach_erc_olmo_core` returns; :meth:`remove` restores the modules."""

    def __init__(self):
        #: The wrapped MoE modules, by name (``blocks.3.feed_forward_moe``).
        self.modules: Dict[str, nn.Module] = {}

    @property
    def last(self) -> Dict[str, ERCResult]:
        """Per MoE module name, the :class:`ERCResult` of its last training forward pass (detached)."""
        return {name: m._erc_state["last"] for name, m in self.modules.items()
                if getattr(m, "_erc_state", None) and m._erc_state["last"] is not None}

    def remove(self) -> None:
        """Puts back the original ``forward``, ``compute_metrics`` and ``reset_metrics``."""
        for m in self.modules.values():
            _uninstall(m)
        self.modules.clear()


def attach_erc_olmo_core(model: nn.Module, weight: float = 1.0, alpha: float = 1.0, *, noise: bool = True,
                         feature: str = "gate", ep_grad: str = "sum",
                         generator: Optional[torch.Generator] = None) -> OlmoCoreERCHandle:
    """Adds ``weight * ERC`` of every MoE layer of an OLMo-core model to its auxiliary losses.

    Call it on the model (or on each of ``train_module.model_parts`` with pipeline parallelism)
    before training; before or after parallelising it (EP/FSDP) both work, and the wrapping
    survives ``copy.deepcopy`` (OLMo-core's pipeline split copies the model). Each layer's ERC
    uses the router ``router.weight`` viewed as [n, d] and the experts' ``w1`` (its local shard
    and ``experts.mlp.ep_pg`` as the group under expert parallelism); only the ``gate`` feature
    is available.

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
    settings = _Settings(weight, alpha, noise, ep_grad, generator)
    handle = OlmoCoreERCHandle()
    for name, moe in [(n, m) for n, m in model.named_modules() if _is_moe(m)]:
        _install(moe, settings)
        handle.modules[name] = moe
    if not handle.modules:
        raise ValueError("no OLMo-core MoE module (with `router` and `experts.mlp.w1`) found")
    return handle


def erc_for_every_moe(weight: float = 1.0, alpha: float = 1.0, *, noise: bool = True, ep_grad: str = "sum",
                      generator: Optional[torch.Generator] = None):
    """Makes every OLMo-core ``MoEBase`` built from now on carry ERC (as :func:`attach_erc_olmo_core`).

    For scripts that build the model inside OLMo-core (``olmo_core.internal.experiment.main``,
    e.g. ``src/scripts/train/OLMoE-1B-7B.py``): call it once at the top of the script. Returns a
    function that undoes the patch (modules already built keep ERC)."""
    from olmo_core.nn.moe.moe import MoEBase

    settings = _Settings(weight, alpha, noise, ep_grad, generator)
    original = MoEBase.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        _install(self, settings)

    MoEBase.__init__ = __init__

    def undo():
        MoEBase.__init__ = original

    return undo


def _install(moe: nn.Module, settings: _Settings) -> None:
    if "_erc_settings" not in moe.__dict__:
        moe._erc_saved = {k: moe.__dict__[k] for k in ("forward", "compute_metrics", "reset_metrics") if k in moe.__dict__}
    moe._erc_settings = settings
    moe._erc_state = {"erc": None, "alpha": None, "delta": None, "last": None}
    # Bound methods, not closures: copy.deepcopy rebinds them to the copy.
    moe.forward = types.MethodType(_forward, moe)
    moe.compute_metrics = types.MethodType(_compute_metrics, moe)
    moe.reset_metrics = types.MethodType(_reset_metrics, moe)


def _uninstall(moe: nn.Module) -> None:
    if "_erc_settings" not in moe.__dict__:
        return
    for k in ("forward", "compute_metrics", "reset_metrics"):
        moe.__dict__.pop(k, None)
    moe.__dict__.update(moe.__dict__.pop("_erc_saved", {}))
    for k in ("_erc_settings", "_erc_state"):
        moe.__dict__.pop(k, None)


def _forward(self: nn.Module, x: torch.Tensor, *args, loss_div_factor=None, **kwargs):
    out = type(self).forward(self, x, *args, loss_div_factor=loss_div_factor, **kwargs)
    if not (self.training and torch.is_grad_enabled()):
        return out
    from olmo_core.ops import attach_auxiliary_loss

    s, state = self._erc_settings, self._erc_state
    # Activation checkpointing recomputes a forward during the backward pass: redo ERC with the
    # noise of the original forward, and count it once.
    recomputing = in_backward_pass()
    router = self.router
    r = _local(router.weight).view(router.num_experts, router.d_model)
    w1, layout = olmo_core_gate_weight(self.experts.mlp)
    group = getattr(self.experts.mlp, "ep_pg", None)
    res = erc_loss(r, w1, alpha=s.alpha, noise=s.noise, generator=s.generator, group=group, layout=layout,
                   ep_grad=s.ep_grad, delta=state["delta"] if recomputing else None)
    tokens = _local(x).numel() // x.shape[-1]
    scale = tokens / loss_div_factor if loss_div_factor is not None else 1.0
    term = res.loss * scale
    if not recomputing:
        state["last"], state["delta"] = res.detached(), res.delta
        with torch.no_grad():
            state["erc"] = term.detach() if state["erc"] is None else state["erc"] + term.detach()
            state["alpha"] = res.coupling_alpha
    return attach_auxiliary_loss(out, s.weight * term)


@torch.no_grad()
def _compute_metrics(self: nn.Module, reset: bool = True):
    out = type(self).compute_metrics(self, reset=False)
    state = self._erc_state
    if state["erc"] is not None:
        from olmo_core.train.common import ReduceType

        out["ERC loss"] = (self._erc_settings.weight * state["erc"], ReduceType.mean)
        out["ERC loss unscaled"] = (state["erc"].clone(), ReduceType.mean)
        out["ERC alpha*"] = (state["alpha"].clone(), ReduceType.mean)
    if reset:
        self.reset_metrics()
    return out


def _reset_metrics(self: nn.Module) -> None:
    type(self).reset_metrics(self)
    self._erc_state["erc"], self._erc_state["alpha"] = None, None
