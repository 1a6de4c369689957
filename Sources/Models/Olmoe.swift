import Checkpoints
import Foundation

/// OLMoE (`model_type: olmoe`, transformers' `OlmoeForCausalLM`): grouped-query attention with
/// an RMSNorm over the whole query and key projections and optional `clip_qkv`; every layer a
/// sparse MoE with a softmax router (top-k of the probabilities, renormalised only with
/// `norm_topk_prob`).
///
/// The one decoder of OLMoE's `config.json` keys (v4 and v5 spellings, transformers' defaults),
/// for the forward pass and for the trainer (`Training.OlmoeConfig`), which applies its own
/// checks on top.
package struct OlmoeConfiguration: FamilyConfig, Sendable {
    package var modelType: String?
    package var vocabularySize: Int
    package var hiddenSize: Int
    package var intermediateSize: Int
    package var layerCount: Int
    package var heads: Int
    package var keyValueHeads: Int
    /// `num_experts` (v5) or `num_local_experts` (v4); nil when the config has neither
    /// (transformers then takes 64, see `experts`).
    package var declaredExperts: Int?
    package var topK: Int
    package var normalizeTopK: Bool
    package var rmsNormEpsilon: Double
    package var rope: RopeParameters
    package var clip: Double?
    package var attentionBias: Bool
    package var tieWordEmbeddings: Bool
    package var hiddenAct: String
    package var dtype: String?
    /// `head_dim`, when the config states it (OLMoE's norms assume `hidden_size / heads`).
    package var headDim: Int?
    /// `router_aux_loss_coef`: the load-balancing loss weight of training.
    package var routerAuxLossCoefficient: Double
    /// `initializer_range`: the standard deviation of the normal initialisation.
    package var initializerRange: Double
    /// `pad_token_id`: 1 when the key is absent (transformers' default), nil when null.
    package var padTokenId: Int?

    /// Routed experts per layer (transformers' default 64 when the config names none).
    package var experts: Int { declaredExperts ?? 64 }

    package init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: ConfigKey.self)
        modelType = try c.first(String.self, "model_type")
        vocabularySize = try c.required("vocab_size")
        hiddenSize = try c.required("hidden_size")
        intermediateSize = try c.required("intermediate_size")
        layerCount = try c.required("num_hidden_layers")
        heads = try c.required("num_attention_heads")
        keyValueHeads = try c.value("num_key_value_heads", default: heads)
        declaredExperts = try c.first(Int.self, "num_experts", "num_local_experts")
        topK = try c.value("num_experts_per_tok", default: 8)
        normalizeTopK = try c.value("norm_topk_prob", default: false)
        rmsNormEpsilon = try c.value("rms_norm_eps", default: 1e-5)
        rope = try RopeParameters(c, defaultTheta: 10_000, defaultMaxPositions: 4096)
        clip = try c.first(Double.self, "clip_qkv")
        attentionBias = try c.value("attention_bias", default: false)
        tieWordEmbeddings = try c.value("tie_word_embeddings", default: false)
        hiddenAct = try c.value("hidden_act", default: "silu")
        dtype = try c.first(String.self, "dtype", "torch_dtype")
        headDim = try c.first(Int.self, "head_dim")
        routerAuxLossCoefficient = try c.value("router_aux_loss_coef", default: 0.01)
        initializerRange = try c.value("initializer_range", default: 0.02)
        padTokenId = c.has("pad_token_id") ? try c.first(Int.self, "pad_token_id") : 1
    }

    func architecture(source: String) throws(ModelsError) -> Architecture {
        guard heads > 0, hiddenSize % heads == 0 else {
            throw .config(file: source, reason: "hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(heads)")
        }
        try requireSiLU(hiddenAct, source: source)
        let headDim = hiddenSize / heads
        let ropeSpec = try rope.spec(dim: headDim, interleaved: false, source: source)
        let attention = StandardAttentionSpec(
            heads: heads, keyValueHeads: keyValueHeads, headDim: headDim, qkvBias: attentionBias,
            outputBias: attentionBias, qkNorm: .wholeProjection, clip: clip.map(Float.init))
        let moe = MoESpec(experts: experts, intermediate: intermediateSize, router: .softmaxTopK(topK, normalized: normalizeTopK))
        return Architecture(
            family: "olmoe", vocabularySize: vocabularySize, hiddenSize: hiddenSize, layerCount: layerCount,
            rmsNormEpsilon: rmsNormEpsilon, attention: .standard(attention), rope: ropeSpec, moe: moe,
            tieWordEmbeddings: tieWordEmbeddings, declaredDType: dtype)
    }
}

/// Only SwiGLU experts are implemented.
func requireSiLU(_ act: String, source: String) throws(ModelsError) {
    guard act == "silu" || act == "swish" else { throw .unsupported(file: source, reason: "hidden_act '\(act)' is not supported (only silu)") }
}
