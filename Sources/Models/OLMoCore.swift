import Checkpoints
import Foundation
import MoELayout
import Tensors

/// OLMo-core run checkpoints (`stepN/model_and_optim`, or an unsharded export with OLMo-core's
/// names) run as the FlexOlmo model that OLMo-core's Hugging Face export makes of them: the
/// experiment config is translated by `OLMoCoreExport.huggingFaceConfig` (so both read the run
/// the same way) and the executor's Hugging Face tensor names are mapped onto OLMo-core's.
///
/// What the export cannot express is refused here too, plus the router and RoPE options it
/// passes over silently: a score bias (`bias_gamma`), uniform or random expert assignment,
/// expert-weight normalisation other than L1 (`normalize_expert_weights: 1` is
/// `norm_topk_prob`), RoPE scaling, norms with a bias, and norm epsilons that differ.
enum OLMoCoreModel {
    /// The architecture of the run `c` describes.
    static func architecture(_ c: OLMoCoreModelConfig, dtype: DType) throws(ModelsError) -> Architecture {
        let source = c.source
        func no(_ r: String) -> ModelsError { .unsupported(file: source, reason: "OLMo-core \(r) has no forward pass here") }
        let block = c.model["block"]
        let router = block?["feed_forward_moe"]?["router"]
        var normalize = false
        if let r = router {
            if let g = r["bias_gamma"], g != .null { throw no("router bias_gamma (a score bias on the expert choice)") }
            for flag in ["uniform_expert_assignment", "random_expert_assignment"] where r[flag]?.boolValue == true { throw no("router \(flag)") }
            if let p = r["normalize_expert_weights"], p != .null {
                guard p.doubleValue == 1 else { throw no("normalize_expert_weights \(p.serialized()) (only 1, the L1 norm, is norm_topk_prob)") }
                normalize = true
            }
            if let n = r["name"]?.stringValue, n != "default" { throw no("router type '\(n)'") }
        }
        let attention = block?["sequence_mixer"] ?? block?["attention"]
        if let s = attention?["rope"]?["scaling"], s != .null { throw no("RoPE scaling (rope.scaling)") }
        var eps: [Double] = []
        for (what, norm) in [
            ("block.layer_norm", block?["layer_norm"]), ("attention qk_norm", attention?["qk_norm"]),
            ("lm_head.layer_norm", c.model["lm_head"]?["layer_norm"]),
        ] {
            guard let norm, norm != .null else { continue }
            if norm["bias"]?.boolValue == true { throw no("\(what) with a bias") }
            if let n = norm["name"]?.stringValue, n != "rms" { throw no("\(what) '\(n)'") }
            if let e = norm["eps"]?.doubleValue { eps.append(e) }
        }
        if Set(eps).count > 1 { throw no("norms with different epsilons \(eps)") }
        if c.model["lm_head"]?["bias"]?.boolValue == true { throw no("LM head with a bias") }
        var hf: JSONValue
        do { hf = try OLMoCoreExport.huggingFaceConfig(c, dtype: dtype) } catch { throw .unsupported(file: source, reason: error.description) }
        if normalize, case var .object(pairs) = hf {
            pairs = pairs.map { $0.0 == "norm_topk_prob" ? ($0.0, .bool(true)) : $0 }
            hf = .object(pairs)
        }
        let config = try decodeConfig(FlexOlmoConfiguration.self, from: ModelConfig(json: hf), source: source)
        var arch = try config.architecture(source: source)
        arch.family = "olmo_core"
        return arch
    }

    /// OLMo-core's name for a Hugging Face (FlexOlmo) tensor name; other names unchanged.
    static func storedName(_ name: String) -> String {
        switch name {
        case "model.embed_tokens.weight": return "embeddings.weight"
        case "model.norm.weight": return "lm_head.norm.weight"
        case "lm_head.weight": return "lm_head.w_out.weight"
        default: break
        }
        guard name.hasPrefix("model.layers.") else { return name }
        let rest = name.dropFirst("model.layers.".count)
        guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]) else { return name }
        let tail = String(rest[rest.index(after: dot)...])
        let map = [
            "self_attn.q_proj.weight": "attention.w_q.weight", "self_attn.k_proj.weight": "attention.w_k.weight",
            "self_attn.v_proj.weight": "attention.w_v.weight", "self_attn.o_proj.weight": "attention.w_out.weight",
            "self_attn.q_proj.bias": "attention.w_q.bias", "self_attn.k_proj.bias": "attention.w_k.bias",
            "self_attn.v_proj.bias": "attention.w_v.bias", "self_attn.o_proj.bias": "attention.w_out.bias",
            "self_attn.q_norm.weight": "attention.q_norm.weight", "self_attn.k_norm.weight": "attention.k_norm.weight",
            "post_attention_layernorm.weight": "attention_norm.weight", "post_feedforward_layernorm.weight": "feed_forward_norm.weight",
        ]
        return map[tail].map { "blocks.\(layer).\($0)" } ?? name
    }
}
