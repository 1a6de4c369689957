"""The Expert-Router Coupling (ERC) loss of Lv et al. (ICLR 2026) in PyTorch.

Per MoE layer, with n experts, hidden size d and expert intermediate size D:

1. noise bound ``eps_i = min_{j != i} ||R[i] - R[j]|| / (2 ||R[i]||)`` (detached);
2. proxy tokens ``R~[i] = delta_i * R[i]`` with ``delta_i ~ U(1 - eps_i, 1 + eps_i)^d``
   (delta detached; the gradient flows through ``R~ = delta * R`` into R);
3. activation matrix ``M[i, j] = || R~[i] W_g^j^T ||_2`` (the probe feature; default the gate
   projection's pre-activation);
4. ``L = (1/n^2) sum_i sum_{j != i} [max(M[i,j] - alpha M[i,i], 0)      (specialization)
                                    + max(M[j,i] - alpha M[i,i], 0)]``  (precision)

The numbers equal those of the Swift engine (``Sources/Analysis/ERCLoss.swift``,
``NoiseBound.swift``, ``ActivationMatrix.swift``); ``python/tests/test_parity.py`` checks it on the
repository's fixtures.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

__all__ = [
    "ERCResult",
    "FEATURES",
    "LAYOUTS",
    "erc_loss",
    "noise_bound",
    "sample_noise",
    "expert_projections",
    "activation_matrix",
    "erc_from_activation",
    "coupling_threshold",
]

#: Probe features (the paper's ablation; Swift's ``ProbeFeature``). ``gate`` is the paper's choice.
FEATURES = ("gate", "up", "silu-gate", "swiglu", "output")

#: Accepted layouts of ``gate_weight`` (n_local experts on this process).
LAYOUTS = (
    "experts",                   # [n_local, D, d]: stacked gate_proj / w1 weights
    "fused_gate_up",             # [n_local, 2D, d]: transformers 5 `gate_up_proj`, gate rows first
    "fused_gate_up_transposed",  # [n_local, d, 2D]: the same stored transposed (gate columns first)
    "olmo_core_dropless",        # [n_local * D, d]: OLMo-core dropless `w1`
    "olmo_core",                 # [n_local * d, D]: OLMo-core default-MoE `w1`
)


@dataclass(frozen=True)
class ERCResult:
    """The ERC loss of one layer, its parts and metrics.

    ``loss``, ``specialization`` and ``precision`` are differentiable scalars (float32) with
    ``loss = specialization + precision``; everything else is detached.
    """

    #: The ERC loss L (specialization + precision).
    loss: torch.Tensor
    #: Row hinge sum / n^2: proxy i must excite expert i most.
    specialization: torch.Tensor
    #: Column hinge sum / n^2: expert i must respond most to its own proxy.
    precision: torch.Tensor
    #: alpha*: the smallest alpha at which the noise-free loss is zero,
    #: ``max_{i, j != i} max(M[i,j], M[j,i]) / M[i,i]`` on the noise-free M (nan if metrics=False).
    coupling_alpha: torch.Tensor
    #: eps [n], the noise bound of every router row.
    noise_bound: torch.Tensor
    #: M [n, n] the loss was computed from (with the noise when noise was on).
    activation: torch.Tensor
    #: The noise delta [n, d] used, or None without noise.
    delta: Optional[torch.Tensor]

    def detached(self) -> "ERCResult":
        """The same result with the differentiable scalars detached (for logging)."""
        return ERCResult(loss=self.loss.detach(), specialization=self.specialization.detach(),
                         precision=self.precision.detach(), coupling_alpha=self.coupling_alpha,
                         noise_bound=self.noise_bound, activation=self.activation, delta=self.delta)


# ---------------------------------------------------------------------------------------------
# Building blocks


@torch.no_grad()
def noise_bound(router_weight: torch.Tensor) -> torch.Tensor:
    """eps_i = min_{j != i} ||R[i] - R[j]||_2 / (2 ||R[i]||_2) for the router R [n, d].

    Computed in float64 from exact differences (as the Swift engine), returned as float32 on R's
    device, detached. A router row of zero norm gets eps 0 (no noise) instead of an error, so
    that training never synchronises with the host to check; the Swift analysis reports it.
    """
    if router_weight.dim() != 2 or router_weight.shape[0] < 2:
        raise ValueError(f"the router must be [n, d] with n >= 2 experts, got shape {tuple(router_weight.shape)}")
    r = router_weight.detach().to(torch.float64)
    dist = torch.cdist(r, r, compute_mode="donot_use_mm_for_euclid_dist")
    dist.fill_diagonal_(float("inf"))
    norms = r.norm(dim=1)
    eps = torch.where(norms > 0, dist.min(dim=1).values / (2 * norms.clamp_min(torch.finfo(torch.float64).tiny)),
                      torch.zeros_like(norms))
    return eps.to(torch.float32)


@torch.no_grad()
def sample_noise(eps: torch.Tensor, d: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """delta [n, d] with delta[i, k] ~ Uniform(1 - eps_i, 1 + eps_i), float32, detached."""
    u = torch.rand(eps.shape[0], d, generator=generator, device=eps.device, dtype=torch.float32)
    e = eps.to(torch.float32)[:, None]
    return (1 - e) + (2 * e) * u


def expert_projections(gate_weight: torch.Tensor, layout: str, num_local_experts: int, d: int,
                       up_weight: Optional[torch.Tensor] = None):
    """Views of the gate (and up) projections as [n_local, D, d], without copying.

    ``gate_weight`` in one of :data:`LAYOUTS`; ``up_weight`` (same layout, optional) for the
    features that need W_p; with a fused layout the up projection comes from the same tensor.
    Returns ``(W_g, W_p or None)``. Gradients flow back to the original tensors.
    """
    n, w = num_local_experts, gate_weight

    def plain(t: torch.Tensor, name: str) -> torch.Tensor:
        if layout == "experts":
            if t.dim() != 3 or t.shape[0] != n or t.shape[2] != d:
                raise ValueError(f"{name} in layout 'experts' must be [{n}, D, {d}], got {tuple(t.shape)}")
            return t
        if layout == "olmo_core_dropless":
            if t.dim() != 2 or t.shape[1] != d or t.shape[0] % n != 0:
                raise ValueError(f"{name} in layout 'olmo_core_dropless' must be [{n} * D, {d}], got {tuple(t.shape)}")
            return t.view(n, t.shape[0] // n, d)
        if layout == "olmo_core":
            if t.dim() != 2 or t.shape[0] != n * d:
                raise ValueError(f"{name} in layout 'olmo_core' must be [{n} * {d}, D], got {tuple(t.shape)}")
            return t.view(n, d, t.shape[1]).transpose(1, 2)
        raise ValueError(f"unknown layout '{layout}'; expected one of {', '.join(LAYOUTS)}")

    if layout == "fused_gate_up":
        if w.dim() != 3 or w.shape[0] != n or w.shape[2] != d or w.shape[1] % 2 != 0:
            raise ValueError(f"gate_up_proj must be [{n}, 2D, {d}], got {tuple(w.shape)}")
        D = w.shape[1] // 2
        return w[:, :D, :], w[:, D:, :]
    if layout == "fused_gate_up_transposed":
        if w.dim() != 3 or w.shape[0] != n or w.shape[1] != d or w.shape[2] % 2 != 0:
            raise ValueError(f"transposed gate_up_proj must be [{n}, {d}, 2D], got {tuple(w.shape)}")
        D = w.shape[2] // 2
        return w[:, :, :D].transpose(1, 2), w[:, :, D:].transpose(1, 2)
    gate = plain(w, "gate_weight")
    up = plain(up_weight, "up_weight") if up_weight is not None else None
    if up is not None and up.shape != gate.shape:
        raise ValueError(f"up projections {tuple(up.shape)} differ from the gate projections {tuple(gate.shape)}")
    return gate, up


def activation_matrix(proxies: torch.Tensor, gate: Optional[torch.Tensor], feature: str = "gate",
                      up: Optional[torch.Tensor] = None, down: Optional[torch.Tensor] = None) -> torch.Tensor:
    """M [m, n_local] with ``M[i, j] = || f_j(proxies[i]) ||_2`` (differentiable).

    ``gate`` and ``up`` are [n_local, D, d] (any strides), ``down`` [n_local, d, D]. The matrix
    products run in the weights' dtype (no float32 copy of bf16 expert weights is kept for the
    backward pass); norms are taken in float32.
    """
    if feature not in FEATURES:
        raise ValueError(f"unknown probe feature '{feature}'; expected one of {', '.join(FEATURES)}")
    needs_gate = feature != "up"
    needs_up = feature in ("up", "swiglu", "output")
    if needs_gate and gate is None:
        raise ValueError(f"feature '{feature}' needs the gate projections")
    if needs_up and up is None:
        raise ValueError(f"feature '{feature}' needs the up projections (pass up_weight or a fused layout)")
    if feature == "output" and down is None:
        raise ValueError("feature 'output' needs the down projections (pass down_weight)")
    ref = gate if gate is not None else up
    x = proxies.to(ref.dtype)
    # [m, d] @ [n_local, d, D] -> [n_local, m, D]: one batched GEMM, no copy of strided weights.
    pg = torch.matmul(x, gate.transpose(-1, -2)) if needs_gate else None
    pu = torch.matmul(x, up.transpose(-1, -2)) if needs_up else None
    if feature == "gate":
        h = pg
    elif feature == "up":
        h = pu
    elif feature == "silu-gate":
        h = F.silu(pg)
    else:
        h = F.silu(pg) * pu
        if feature == "output":
            h = torch.matmul(h, down.to(h.dtype).transpose(-1, -2))  # [n_local, m, d]
    return torch.linalg.vector_norm(h.to(torch.float32), dim=-1).transpose(0, 1)


def erc_from_activation(m: torch.Tensor, alpha: float):
    """``(specialization, precision)`` of M [n, n] for one alpha (differentiable scalars)."""
    n = m.shape[0]
    diag = m.diagonal()
    off = ~torch.eye(n, dtype=torch.bool, device=m.device)
    spec = torch.relu(m - alpha * diag[:, None])[off].sum() / (n * n)  # M[i,j] against alpha M[i,i]
    prec = torch.relu(m - alpha * diag[None, :])[off].sum() / (n * n)  # M[j,i] against alpha M[i,i]
    return spec, prec


@torch.no_grad()
def coupling_threshold(m: torch.Tensor) -> torch.Tensor:
    """alpha* = ``max_{i, j != i} max(M[i,j], M[j,i]) / M[i,i]`` (inf when a diagonal entry is 0
    and an off-diagonal one of its row or column is not), as Swift's ``couplingThreshold``."""
    m = m.detach().to(torch.float64)
    n = m.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=m.device)
    both = torch.maximum(m, m.T).masked_fill(eye, 0)
    top = both.max(dim=1).values
    diag = m.diagonal()
    ratio = torch.where(diag > 0, top / diag.clamp_min(torch.finfo(torch.float64).tiny),
                        torch.where(top > 0, torch.full_like(top, float("inf")), torch.zeros_like(top)))
    return ratio.max().clamp_min(0).to(torch.float32)


def in_backward_pass() -> bool:
    """True while autograd runs a backward pass, i.e. when a checkpointed forward is being
    recomputed (torch.utils.checkpoint): ERC must then redo the same operations with the same
    noise, and must not be recorded a second time."""
    return torch._C._current_graph_task_id() != -1


# ---------------------------------------------------------------------------------------------
# The loss


def erc_loss(router_weight: torch.Tensor, gate_weight: torch.Tensor, alpha: float = 1.0, noise: bool = True,
             generator: Optional[torch.Generator] = None, feature: str = "gate", group=None,
             delta: Optional[torch.Tensor] = None, *, layout: str = "experts",
             up_weight: Optional[torch.Tensor] = None, down_weight: Optional[torch.Tensor] = None,
             ep_grad: str = "sum", metrics: bool = True) -> ERCResult:
    """The ERC loss of one MoE layer, differentiable with respect to the router and the experts.

    Args:
        router_weight: R [n, d], the full router (every expert's row), on every process.
        gate_weight: the gate projections W_g of the experts held here, in ``layout``:
            ``"experts"`` [n_local, D, d]; ``"fused_gate_up"`` [n_local, 2D, d] (transformers 5
            `gate_up_proj`, gate rows first); ``"fused_gate_up_transposed"`` [n_local, d, 2D];
            ``"olmo_core_dropless"`` [n_local*D, d]; ``"olmo_core"`` [n_local*d, D] (OLMo-core's
            `w1` of a dropless or a default MoE). Without a group n_local = n.
        alpha: the ERC alpha (the paper: 1 at n = 64, 0.5 at n = 256).
        noise: multiply the proxies by delta ~ U(1 - eps, 1 + eps) (the paper's training setting).
        generator: the torch.Generator for delta (on R's device); with a group only rank 0's is used.
        feature: the probe feature: ``"gate"`` (paper), ``"up"``, ``"silu-gate"``, ``"swiglu"`` or
            ``"output"`` (the last four need ``up_weight`` or a fused layout; ``"output"`` also
            ``down_weight`` [n_local, d, D]).
        group: an expert-parallel process group. Rank r of the group holds experts
            [r*n_local, (r+1)*n_local) (contiguous slices, n = n_local * group size) and the full
            router. Each rank computes its n x n_local columns of M; one all-gather assembles M;
            delta is drawn on the group's rank 0 and broadcast. Every rank returns the same loss.
            Every rank of the group must call this (and run the backward pass) in the same order.
        delta: the noise [n, d] to use instead of drawing one (tests, replays). Taken as is: with a
            group, pass the same delta on every rank.
        ep_grad: the gradient convention with a group (see docs/pytorch.md):
            ``"sum"`` (default): the autograd semantics of an all-gather (its backward is a
            reduce-scatter sum): each rank's loss counts as that rank's own loss term, exactly like
            its cross-entropy or load-balancing loss, so the gradients are those of the sum of the
            ranks' losses: local W_g receives ``world * dL/dW_g`` and the router on rank r the
            part of ``world * dL/dR`` that flows through rank r's experts (the ranks' router
            gradients sum to ``world * dL/dR``). Right for trainers that divide by the number of
            data-parallel ranks after summing expert gradients over expert-data-parallel ranks
            (Megatron-Core) and consistent with how OLMo-core reduces its own losses.
            ``"exact"``: the gradients of one L: local W_g receives ``dL/dW_g`` and every rank's
            router the full ``dL/dR`` (an all-reduce in the backward pass): what one process
            holding all experts computes.
        metrics: also compute alpha* on the noise-free M (one more n x n_local block per rank,
            gathered in the same all-gather; no gradient).

    Returns:
        :class:`ERCResult`.
    """
    if router_weight.dim() != 2:
        raise ValueError(f"router_weight must be [n, d] (view a flat OLMo-core router as (n, d)), got {tuple(router_weight.shape)}")
    if ep_grad not in ("sum", "exact"):
        raise ValueError(f"ep_grad must be 'sum' or 'exact', got '{ep_grad}'")
    n, d = router_weight.shape
    world, rank = 1, 0
    if group is not None:
        import torch.distributed as dist
        world, rank = dist.get_world_size(group), dist.get_rank(group)
    if n % world != 0:
        raise ValueError(f"{n} experts cannot be split evenly over {world} expert-parallel ranks")
    n_local = n // world
    gate, up = expert_projections(gate_weight, layout, n_local, d, up_weight)
    down = down_weight
    if feature == "output":
        if down is None or down.dim() != 3 or down.shape[0] != n_local or down.shape[1] != d:
            raise ValueError(f"feature 'output' needs down_weight [{n_local}, {d}, D]")

    eps = noise_bound(router_weight)
    if delta is not None:
        if tuple(delta.shape) != (n, d):
            raise ValueError(f"delta must be [{n}, {d}] like the router, got {tuple(delta.shape)}")
        delta = delta.detach().to(device=router_weight.device, dtype=torch.float32)
    elif noise:
        if group is None:
            delta = sample_noise(eps, d, generator)
        else:
            from .distributed import broadcast_from_group_rank0
            delta = sample_noise(eps, d, generator) if rank == 0 else \
                torch.empty(n, d, dtype=torch.float32, device=router_weight.device)
            broadcast_from_group_rank0(delta, group)

    r32 = router_weight.to(torch.float32) if router_weight.dtype in (torch.float16, torch.bfloat16) else router_weight
    x = r32 * delta if delta is not None else r32
    if group is not None and ep_grad == "exact":
        from .distributed import all_reduce_grad
        x = all_reduce_grad(x, group)
    m_local = activation_matrix(x, gate, feature, up, down)  # [n, n_local]
    clean_local = None
    if metrics:
        if delta is None:
            clean_local = m_local.detach()
        else:
            with torch.no_grad():
                clean_local = activation_matrix(router_weight.detach(), gate.detach(), feature,
                                                None if up is None else up.detach(),
                                                None if down is None else down.detach())
    if group is None:
        m, clean = m_local, clean_local
    else:
        from .distributed import gather_columns
        stacked = m_local if clean_local is None else torch.stack([m_local, clean_local])
        full = gather_columns(stacked, group, ep_grad)
        m, clean = (full, None) if clean_local is None else (full[0], full[1].detach())
    spec, prec = erc_from_activation(m, alpha)
    alpha_star = coupling_threshold(clean) if clean is not None else torch.tensor(float("nan"), device=m.device)
    return ERCResult(loss=spec + prec, specialization=spec, precision=prec, coupling_alpha=alpha_star,
                     noise_bound=eps, activation=m.detach(), delta=delta)
