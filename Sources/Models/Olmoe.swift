import Checkpoints
import Foundation

/// OLMoE (`model_type: olmoe`, transformers' `OlmoeForCausalLM`): grouped-query attention with
/// an RMSNorm over the whole query and key projections and optional `clip_qkv`; every layer a
/// sparse MoE with a softmax router (top-k of the probabilities, renormalised only with
/// `norm_topk_prob`).
struct OlmoeConfiguration: FamilyConfig {
    var vocabularySize: Int
    var hiddenSize: Int
    var intermediateSize: Int
    var layerCount: Int
    var heads: Int
    var keyValueHeads: Int
    var experts: Int
    var topK: Int
    var normalizeTopK: Bool
    var rmsNormEpsilon: Double
    var rope: RopeParameters
    var clip: Double?
    var attentionBias: Bool
    var tieWordEmbeddings: Bool
    var hiddenAct: String
    var dtype: String?

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: ConfigKey.self)
        vocabularySize = try c.required("vocab_size")
        hiddenSize = try c.required("hidden_size")
        intermediateSize = try c.required("intermediate_size")
        layerCount = try c.required("num_hidden_layers")
        heads = try c.required("num_attention_heads")
        keyValueHeads = try c.value("num_key_value_heads", default: heads)
        experts = try c.value("num_experts", "num_local_experts", default: 64)
        topK = try c.value("num_experts_per_tok", default: 8)
        normalizeTopK = try c.value("norm_topk_prob", default: false)
        rmsNormEpsilon = try c.value("rms_norm_eps", default: 1e-5)
        rope = try RopeParameters(c, defaultTheta: 10_000, defaultMaxPositions: 4096)
        clip = try c.first(Double.self, "clip_qkv")
        attentionBias = try c.value("attention_bias", default: false)
        tieWordEmbeddings = try c.value("tie_word_embeddings", default: false)
        hiddenAct = try c.value("hidden_act", default: "silu")
        dtype = try c.first(String.self, "dtype", "torch_dtype")
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
        let router = RouterSpec(
            scoring: .softmax, topK: topK, selection: .plain, correctionBias: false,
            normalizeTopK: normalizeTopK, normalizationEpsilon: 0, scalingFactor: 1)
        let moe = MoESpec(experts: experts, intermediate: intermediateSize, router: router, sharedIntermediate: nil, sharedExpertGate: false)
        var arch = Architecture(
            family: "olmoe", vocabularySize: vocabularySize, hiddenSize: hiddenSize, layerCount: layerCount,
            rmsNormEpsilon: Float(rmsNormEpsilon), attention: .standard(attention),
            rope: ropeSpec,
            feedForward: Array(repeating: .moe(moe), count: max(0, layerCount)),
            slidingWindow: Array(repeating: nil, count: max(0, layerCount)), tieWordEmbeddings: tieWordEmbeddings)
        arch.declaredDType = dtype
        return arch
    }
}

/// Only SwiGLU experts are implemented.
func requireSiLU(_ act: String, source: String) throws(ModelsError) {
    guard act == "silu" || act == "swish" else { throw .unsupported(file: source, reason: "hidden_act '\(act)' is not supported (only silu)") }
}
