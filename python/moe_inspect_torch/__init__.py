"""moe-inspect's Expert-Router Coupling (ERC) loss for PyTorch trainers.

- :func:`erc_loss`: the loss of one MoE layer (Lv et al., ICLR 2026), exactly as the moe-inspect
  Swift engine computes it, differentiable with respect to the router and the experts' gate
  projections, with expert parallelism (``group=``).
- :func:`attach_erc`: adds ``weight * sum over layers of ERC`` to the loss a transformers OLMoE,
  Mixtral, Qwen2-MoE or Qwen3-MoE model returns.
- :func:`attach_erc_olmo_core`: the same for an OLMo-core ``MoETransformer``, through its MoE
  auxiliary-loss path (``attach_auxiliary_loss``).
- :func:`attach_erc_megatron`: the same for Megatron-Core ``MoELayer`` s, through
  ``MoEAuxLossAutoScaler``.

See docs/pytorch.md in the moe-inspect repository.
"""
from .erc import (
    FEATURES,
    LAYOUTS,
    ERCResult,
    activation_matrix,
    coupling_threshold,
    erc_from_activation,
    erc_loss,
    expert_projections,
    noise_bound,
    sample_noise,
)
from .hf import ERCHandle, attach_erc, find_moe_layers
from .megatron import attach_erc_megatron, erc_for_every_moe_layer
from .olmo_core import attach_erc_olmo_core, erc_for_every_moe

__version__ = "0.1.0"

__all__ = [
    "FEATURES",
    "LAYOUTS",
    "ERCResult",
    "ERCHandle",
    "activation_matrix",
    "attach_erc",
    "attach_erc_megatron",
    "attach_erc_olmo_core",
    "erc_for_every_moe",
    "erc_for_every_moe_layer",
    "coupling_threshold",
    "erc_from_activation",
    "erc_loss",
    "expert_projections",
    "find_moe_layers",
    "noise_bound",
    "sample_noise",
]
