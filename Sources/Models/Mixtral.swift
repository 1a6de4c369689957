import Checkpoints
import Foundation

/// Mixtral (`model_type: mixtral`): plain grouped-query attention (optional `head_dim`,
/// optional `sliding_window`); every layer a sparse MoE (`block_sparse_moe`) whose softmax
/// router always renormalises its top-k probabilities to sum 1.
struct MixtralConfiguration: FamilyConfig {
    var vocabularySize: Int
    var hiddenSize: Int
    var intermediateSize: Int
    var layerCount: Int
    var heads: Int
    var keyValueHeads: Int
    var headDim: Int?
    var experts: Int
    var topK: Int
    var rmsNormEpsilon: Double
    var rope: RopeParameters
    var slidingWindow: Int?
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
        headDim = try c.first(Int.self, "head_dim")
        experts = try c.value("num_local_experts", "num_experts", default: 8)
        topK = try c.value("num_experts_per_tok", default: 2)
        rmsNormEpsilon = try c.value("rms_norm_eps", default: 1e-5)
        rope = try RopeParameters(c, defaultTheta: 1e6, defaultMaxPositions: 131_072)
        slidingWindow = try c.first(Int.self, "sliding_window")
        tieWordEmbeddings = try c.value("tie_word_embeddings", default: false)
        hiddenAct = try c.value("hidden_act", default: "silu")
        dtype = try c.first(String.self, "dtype", "torch_dtype")
    }

    func architecture(source: String) throws(ModelsError) -> Architecture {
        guard heads > 0 else { throw .config(file: source, reason: "num_attention_heads must be positive") }
        try requireSiLU(hiddenAct, source: source)
        let hd = headDim ?? hiddenSize / heads
        let ropeSpec = try rope.spec(dim: hd, interleaved: false, source: source)
        let attention = StandardAttentionSpec(
            heads: heads, keyValueHeads: keyValueHeads, headDim: hd, qkvBias: false,
            outputBias: false, qkNorm: .none, clip: nil)
        let moe = MoESpec(experts: experts, intermediate: intermediateSize, router: .softmaxTopK(topK, normalized: true))
        return Architecture(
            family: "mixtral", vocabularySize: vocabularySize, hiddenSize: hiddenSize, layerCount: layerCount,
            rmsNormEpsilon: rmsNormEpsilon, attention: .standard(attention), rope: ropeSpec, moe: moe,
            slidingWindow: Array(repeating: slidingWindow, count: max(0, layerCount)), tieWordEmbeddings: tieWordEmbeddings,
            declaredDType: dtype)
    }
}
