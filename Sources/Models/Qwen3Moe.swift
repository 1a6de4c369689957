import Checkpoints
import Foundation

/// Qwen3-MoE (`model_type: qwen3_moe`): grouped-query attention with an RMSNorm over each
/// query and key head (`head_dim`, default hidden / heads), optional `attention_bias`; sparse
/// layers chosen as in Qwen2-MoE (`decoder_sparse_step`, `mlp_only_layers`), no shared expert.
struct Qwen3MoeConfiguration: FamilyConfig {
    var vocabularySize: Int
    var hiddenSize: Int
    var intermediateSize: Int
    var moeIntermediateSize: Int
    var layerCount: Int
    var heads: Int
    var keyValueHeads: Int
    var headDim: Int?
    var experts: Int
    var topK: Int
    var normalizeTopK: Bool
    var decoderSparseStep: Int
    var mlpOnlyLayers: [Int]
    var attentionBias: Bool
    var rmsNormEpsilon: Double
    var rope: RopeParameters
    var useSlidingWindow: Bool
    var slidingWindow: Int?
    var tieWordEmbeddings: Bool
    var hiddenAct: String
    var dtype: String?

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: ConfigKey.self)
        vocabularySize = try c.required("vocab_size")
        hiddenSize = try c.required("hidden_size")
        intermediateSize = try c.required("intermediate_size")
        moeIntermediateSize = try c.required("moe_intermediate_size")
        layerCount = try c.required("num_hidden_layers")
        heads = try c.required("num_attention_heads")
        keyValueHeads = try c.value("num_key_value_heads", default: heads)
        headDim = try c.first(Int.self, "head_dim")
        experts = try c.value("num_experts", "num_local_experts", default: 128)
        topK = try c.value("num_experts_per_tok", default: 8)
        normalizeTopK = try c.value("norm_topk_prob", default: false)
        decoderSparseStep = try c.value("decoder_sparse_step", default: 1)
        mlpOnlyLayers = try c.value("mlp_only_layers", default: [])
        attentionBias = try c.value("attention_bias", default: false)
        rmsNormEpsilon = try c.value("rms_norm_eps", default: 1e-6)
        rope = try RopeParameters(c, defaultTheta: 10_000, defaultMaxPositions: 32_768)
        useSlidingWindow = try c.value("use_sliding_window", default: false)
        slidingWindow = try c.first(Int.self, "sliding_window")
        tieWordEmbeddings = try c.value("tie_word_embeddings", default: false)
        hiddenAct = try c.value("hidden_act", default: "silu")
        dtype = try c.first(String.self, "dtype", "torch_dtype")
    }

    func architecture(source: String) throws(ModelsError) -> Architecture {
        guard heads > 0 else { throw .config(file: source, reason: "num_attention_heads must be positive") }
        guard decoderSparseStep > 0 else { throw .config(file: source, reason: "decoder_sparse_step must be positive") }
        try requireSiLU(hiddenAct, source: source)
        let hd = headDim ?? hiddenSize / heads
        let ropeSpec = try rope.spec(dim: hd, interleaved: false, source: source)
        let attention = StandardAttentionSpec(
            heads: heads, keyValueHeads: keyValueHeads, headDim: hd, qkvBias: attentionBias,
            outputBias: attentionBias, qkNorm: .perHead, clip: nil)
        let moe = MoESpec(experts: experts, intermediate: moeIntermediateSize, router: .softmaxTopK(topK, normalized: normalizeTopK))
        let ffn = FeedForwardSpec.layers(layerCount, moe: moe, denseIntermediate: intermediateSize) { l in
            !mlpOnlyLayers.contains(l) && experts > 0 && (l + 1) % decoderSparseStep == 0
        }
        let window = useSlidingWindow ? slidingWindow : nil
        return Architecture(
            family: "qwen3_moe", vocabularySize: vocabularySize, hiddenSize: hiddenSize, layerCount: layerCount,
            rmsNormEpsilon: rmsNormEpsilon, attention: .standard(attention), rope: ropeSpec, moe: moe, feedForward: ffn,
            slidingWindow: Array(repeating: window, count: max(0, layerCount)), tieWordEmbeddings: tieWordEmbeddings, declaredDType: dtype)
    }
}
