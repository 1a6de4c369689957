"""erc_loss equals the Swift engine on the repository's fixtures (values and gradients, 1e-5).

The expected numbers were written by the Swift engine itself
(Tests/AnalysisTests/PyTorchParityExport.swift with MOE_WRITE_PARITY=1) into
fixtures/erc/swift-parity.{json,safetensors}; the noise delta is the committed
fixtures/erc/<model>.safetensors `layer<L>.delta`.
"""
import pytest
import torch

from helpers import load_layer, load_parity
from moe_inspect_torch import coupling_threshold, erc_from_activation, erc_loss, noise_bound

RTOL = 1e-5

META, _ = load_parity()
CASES = [(model, layer) for model, m in META["models"].items() for layer in m["layers"]]
ALPHAS = META["alphas"]


def close(got, want, rtol=RTOL):
    got = float(got.detach()) if isinstance(got, torch.Tensor) else float(got)
    assert abs(got - want) <= rtol * abs(want), f"{got} vs {want} (relative {abs(got - want) / abs(want):.2e})"


def close_tensor(got, want, rtol=RTOL):
    """Elementwise within rtol of the largest magnitude of the expected tensor."""
    got, want = got.detach().float(), want.float()
    assert got.shape == want.shape
    scale = want.abs().max().item()
    err = (got - want).abs().max().item()
    assert err <= rtol * scale, f"max error {err:.3e} > {rtol} * {scale:.3e}"


def key(a):
    return str(float(a))


@pytest.mark.parametrize("model,layer", CASES)
def test_noise_bound_and_coupling_threshold(parity, model, layer):
    meta, tensors = parity
    entry = meta["models"][model]["layers"][layer]
    r, gate, _, _, _ = load_layer(meta["models"][model], entry)
    eps = noise_bound(r)
    for g, w in zip(eps.tolist(), entry["eps"]):
        close(g, w)
    res = erc_loss(r, gate, alpha=1.0, noise=False)
    close(res.coupling_alpha, entry["coupling_alpha"])
    close_tensor(res.activation, tensors[f"{model}.layer{layer}.clean.M"])


@pytest.mark.parametrize("model,layer", CASES)
@pytest.mark.parametrize("kind", ["clean", "noisy"])
@pytest.mark.parametrize("alpha", ALPHAS)
def test_loss_and_gradients(parity, model, layer, kind, alpha):
    meta, tensors = parity
    entry = meta["models"][model]["layers"][layer]
    r, gate, _, _, delta = load_layer(meta["models"][model], entry)
    r.requires_grad_(True)
    gate.requires_grad_(True)
    res = erc_loss(r, gate, alpha=alpha, noise=False, delta=delta if kind == "noisy" else None)
    want = entry["loss"][kind][key(alpha)]
    close(res.loss, want["loss"])
    close(res.specialization, want["specialization"])
    close(res.precision, want["precision"])
    res.loss.backward()
    prefix = f"{model}.layer{layer}.{kind}.alpha{key(alpha)}"
    close_tensor(r.grad, tensors[f"{prefix}.grad_router"])
    close_tensor(gate.grad, tensors[f"{prefix}.grad_gate"])
    if alpha == ALPHAS[0]:
        close_tensor(res.activation, tensors[f"{model}.layer{layer}.{kind}.M"])
    # alpha* is always the noise-free one.
    close(res.coupling_alpha, entry["coupling_alpha"])


@pytest.mark.parametrize("model,layer", CASES)
@pytest.mark.parametrize("feature", META["features"])
def test_probe_features(parity, model, layer, feature):
    meta, tensors = parity
    entry = meta["models"][model]["layers"][layer]
    r, gate, up, down, delta = load_layer(meta["models"][model], entry)
    for kind in ("clean", "noisy"):
        res = erc_loss(r, gate, alpha=1.0, noise=False, delta=delta if kind == "noisy" else None,
                       feature=feature, up_weight=up, down_weight=down)
        want = entry["features"][feature][kind]
        close_tensor(res.activation, tensors[f"{model}.layer{layer}.feature.{feature}.{kind}.M"])
        close(coupling_threshold(res.activation), want["coupling_alpha"])
        for a in ALPHAS:
            s, p = erc_from_activation(res.activation, a)
            close(s, want[key(a)]["specialization"])
            close(p, want[key(a)]["precision"])
            close(s + p, want[key(a)]["loss"])


@pytest.mark.parametrize("layout", ["fused_gate_up", "fused_gate_up_transposed", "olmo_core_dropless", "olmo_core"])
def test_layouts_give_the_same_loss_and_gradients(parity, layout):
    meta, tensors = parity
    model, layer = CASES[0]
    entry = meta["models"][model]["layers"][layer]
    r, gate, up, _, delta = load_layer(meta["models"][model], entry)
    n, D, d = gate.shape
    if layout == "fused_gate_up":
        w = torch.cat([gate, up], dim=1)                      # [n, 2D, d]
    elif layout == "fused_gate_up_transposed":
        w = torch.cat([gate, up], dim=1).transpose(1, 2).contiguous()  # [n, d, 2D]
    elif layout == "olmo_core_dropless":
        w = gate.reshape(n * D, d)                            # [n*D, d]
    else:
        w = gate.transpose(1, 2).reshape(n * d, D)            # [n*d, D]
    w.requires_grad_(True)
    r.requires_grad_(True)
    res = erc_loss(r, w, alpha=0.5, noise=False, delta=delta, layout=layout)
    close(res.loss, entry["loss"]["noisy"]["0.5"]["loss"])
    res.loss.backward()
    prefix = f"{model}.layer{layer}.noisy.alpha0.5"
    close_tensor(r.grad, tensors[f"{prefix}.grad_router"])
    g = w.grad
    if layout == "fused_gate_up":
        assert torch.all(g[:, D:, :] == 0)
        g = g[:, :D, :]
    elif layout == "fused_gate_up_transposed":
        assert torch.all(g[:, :, D:] == 0)
        g = g[:, :, :D].transpose(1, 2)
    elif layout == "olmo_core_dropless":
        g = g.view(n, D, d)
    else:
        g = g.view(n, d, D).transpose(1, 2)
    close_tensor(g, tensors[f"{prefix}.grad_gate"])
    if layout.startswith("fused"):
        res = erc_loss(r, w, alpha=1.0, noise=False, layout=layout, feature="swiglu")
        close(res.loss, entry["features"]["swiglu"]["clean"]["1.0"]["loss"])
