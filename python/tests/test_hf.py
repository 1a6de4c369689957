"""attach_erc on transformers MoE models."""
import os

import pytest
import torch

from helpers import FIXTURES, load_parity
from moe_inspect_torch import attach_erc, erc_loss, find_moe_layers

transformers = pytest.importorskip("transformers")


def tiny_olmoe(seed=0):
    from transformers import OlmoeConfig, OlmoeForCausalLM

    torch.manual_seed(seed)
    cfg = OlmoeConfig(vocab_size=64, hidden_size=32, intermediate_size=16, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, num_experts=8, num_experts_per_tok=2)
    return OlmoeForCausalLM(cfg)


def batch(seed=1, vocab=64, shape=(2, 16)):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, shape, generator=g)


def test_finds_the_fused_experts_of_transformers_5():
    model = tiny_olmoe()
    layers = find_moe_layers(model)
    assert [l.name for l in layers] == ["model.layers.0.mlp", "model.layers.1.mlp"]
    gate, up, down = layers[0].projections()
    fused = model.model.layers[0].mlp.experts.gate_up_proj
    assert gate.shape == (8, 16, 32) and up.shape == (8, 16, 32) and down.shape == (8, 32, 16)
    assert gate.data_ptr() == fused.data_ptr()  # a view, no copy
    assert layers[0].router is model.model.layers[0].mlp.gate.weight


def test_the_loss_includes_the_term_and_remove_restores_it():
    model = tiny_olmoe()
    model.train()
    x = batch()
    plain = model(input_ids=x, labels=x).loss.detach()
    handle = attach_erc(model, weight=3.0, alpha=1.0, noise=False)
    out = model(input_ids=x, labels=x)
    assert set(handle.last) == {"model.layers.0.mlp", "model.layers.1.mlp"}
    # The same per-layer values computed directly from the parameters.
    direct = 0.0
    for layer in model.model.layers:
        w = layer.mlp.experts.gate_up_proj
        direct += erc_loss(layer.mlp.gate.weight, w, alpha=1.0, noise=False, layout="fused_gate_up").loss.item()
    assert handle.last_loss.item() == pytest.approx(direct, rel=1e-6)
    assert out.loss.item() == pytest.approx(plain.item() + 3.0 * direct, rel=1e-6)
    # Without labels, under no_grad, or in eval mode nothing is added.
    before = handle.last_loss
    model(input_ids=x)
    with torch.no_grad():
        model(input_ids=x, labels=x)
    model.eval()
    assert model(input_ids=x, labels=x).loss.item() == pytest.approx(plain.item(), rel=1e-6)
    assert handle.last_loss is before
    model.train()
    handle.remove()
    assert model(input_ids=x, labels=x).loss.item() == pytest.approx(plain.item(), rel=1e-6)


def test_training_with_erc_lowers_the_erc_loss():
    model = tiny_olmoe()
    model.train()
    handle = attach_erc(model, weight=1.0, alpha=1.0, generator=torch.Generator().manual_seed(0))

    def erc_now():
        return sum(erc_loss(l.mlp.gate.weight, l.mlp.experts.gate_up_proj, alpha=1.0, noise=False,
                            layout="fused_gate_up").loss.item() for l in model.model.layers)

    start = erc_now()
    assert start > 0
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(5):
        x = batch(seed=step)
        out = model(input_ids=x, labels=x)
        opt.zero_grad()
        out.loss.backward()
        # ERC's gradient reaches the router and the fused gate rows (not the up rows alone).
        if step == 0:
            g = model.model.layers[0].mlp.experts.gate_up_proj.grad
            assert model.model.layers[0].mlp.gate.weight.grad.abs().sum() > 0 and g.abs().sum() > 0
        opt.step()
    end = erc_now()
    assert end < 0.5 * start, f"ERC {start:.4g} -> {end:.4g}"
    handle.remove()

    # Without ERC the same training leaves the ERC loss far higher.
    model2 = tiny_olmoe()
    model2.train()
    opt = torch.optim.Adam(model2.parameters(), lr=3e-3)
    for step in range(5):
        x = batch(seed=step)
        loss = model2(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    vanilla = sum(erc_loss(l.mlp.gate.weight, l.mlp.experts.gate_up_proj, alpha=1.0, noise=False,
                           layout="fused_gate_up").loss.item() for l in model2.model.layers)
    assert end < vanilla


@pytest.mark.parametrize("name", ["olmoe-tiny", "mixtral-tiny"])
def test_checkpoints_loaded_by_transformers_match_the_swift_engine(name):
    """from_pretrained fuses the experts in memory; ERC of the fused parameters equals the Swift
    engine's, which read the per-expert tensors from the file."""
    from transformers import AutoModelForCausalLM

    meta, _ = load_parity()
    model = AutoModelForCausalLM.from_pretrained(os.path.join(FIXTURES, name), dtype=torch.float32)
    model.train()
    handle = attach_erc(model, weight=1.0, alpha=0.5, noise=False)
    x = batch(vocab=model.config.vocab_size)
    model(input_ids=x, labels=x)
    layers = meta["models"][name]["layers"]
    assert len(handle.last) == len(layers)
    for ref_name, res in handle.last.items():
        index = ref_name.split(".")[2]
        want = layers[index]["loss"]["clean"]["0.5"]
        assert res.loss.item() == pytest.approx(want["loss"], rel=1e-5)
        assert res.specialization.item() == pytest.approx(want["specialization"], rel=1e-5)
        assert res.coupling_alpha.item() == pytest.approx(layers[index]["coupling_alpha"], rel=1e-5)


def test_qwen_moe_models_sparse_layers_only():
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM

    torch.manual_seed(0)
    q2 = Qwen2MoeForCausalLM(Qwen2MoeConfig(
        vocab_size=64, hidden_size=32, intermediate_size=48, moe_intermediate_size=16,
        shared_expert_intermediate_size=24, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, num_experts=4, num_experts_per_tok=2, mlp_only_layers=[1]))
    q3 = Qwen3MoeForCausalLM(Qwen3MoeConfig(
        vocab_size=64, hidden_size=32, intermediate_size=48, moe_intermediate_size=16, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, num_experts=4, num_experts_per_tok=2))
    assert [l.name for l in find_moe_layers(q2)] == ["model.layers.0.mlp", "model.layers.2.mlp"]
    assert [l.name for l in find_moe_layers(q3)] == ["model.layers.0.mlp", "model.layers.1.mlp"]
    for model in (q2, q3):
        model.train()
        handle = attach_erc(model, weight=1.0, alpha=1.0)
        x = batch()
        out = model(input_ids=x, labels=x)
        out.loss.backward()
        assert handle.last_loss.item() > 0
        for ref in handle.layers:
            assert ref.router.grad is not None and ref.router.grad.abs().sum() > 0
        handle.remove()


def test_transformers_4_style_expert_lists():
    """A block whose experts are a ModuleList of gate_proj/up_proj/down_proj (transformers 4)."""
    import torch.nn as nn

    class Expert(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate_proj, self.up_proj, self.down_proj = nn.Linear(8, 5, bias=False), nn.Linear(8, 5, bias=False), nn.Linear(5, 8, bias=False)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate = nn.Linear(8, 3, bias=False)
            self.experts = nn.ModuleList([Expert() for _ in range(3)])

    torch.manual_seed(0)
    block = Block()
    (ref,) = find_moe_layers(block)
    gate, up, down = ref.projections()
    assert gate.shape == (3, 5, 8) and up.shape == (3, 5, 8) and down.shape == (3, 8, 5)
    res = erc_loss(ref.router, gate, alpha=1.0, noise=False)
    res.loss.backward()
    assert block.experts[1].gate_proj.weight.grad is not None


@pytest.mark.parametrize("reentrant", [False, True])
def test_gradient_checkpointing_gives_the_same_gradients(reentrant):
    """Non-reentrant checkpointing recomputes ERC inside the layer with the same noise;
    reentrant checkpointing (forward without grad) gets ERC computed after the forward."""
    x = batch()
    grads, losses = [], []
    for checkpointing in (False, True):
        model = tiny_olmoe()
        model.train()
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
        handle = attach_erc(model, weight=5.0, alpha=0.5, generator=torch.Generator().manual_seed(3))
        out = model(input_ids=x, labels=x)
        out.loss.backward()
        losses.append(out.loss.item())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        assert handle.last_loss.item() > 0
    assert losses[1] == pytest.approx(losses[0], rel=1e-6)
    assert set(grads[1]) == set(grads[0])
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-5, atol=1e-7, msg=name)
