import Checkpoints
import Foundation

/// Qwen2-MoE (`model_type: qwen2_moe`): grouped-query attention with q/k/v biases (`qkv_bias`,
/// true unless set false); sparse layers where `(layer + 1) % decoder_sparse_step == 0` and the
/// layer is not in `mlp_only_layers` (the others a dense MLP of `intermediate_size`). A sparse
/// layer adds one shared expert (`shared_expert_intermediate_size`) scaled per token by
/// `sigmoid(x . shared_expert_gate)`. Sliding-window layers follow `layer_types` (or, without it,
/// `use_sliding_window` with `max_window_layers`).
struct Qwen2MoeConfiguration: FamilyConfig {
    var vocabularySize: Int
    var hiddenSize: Int
    var intermediateSize: Int
    var moeIntermediateSize: Int
    var sharedIntermediateSize: Int
    var layerCount: Int
    var heads: Int
    var keyValueHeads: Int
    var headDim: Int?
    var experts: Int
    var topK: Int
    var normalizeTopK: Bool
    var decoderSparseStep: Int
    var mlpOnlyLayers: [Int]
    var qkvBias: Bool
    var rmsNormEpsilon: Double
    var rope: RopeParameters
    var useSlidingWindow: Bool
    var slidingWindow: Int?
    var maxWindowLayers: Int
    var layerTypes: [String]?
    var tieWordEmbeddings: Bool
    var hiddenAct: String
    var dtype: String?

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: ConfigKey.self)
        vocabularySize = try c.required("vocab_size")
        hiddenSize = try c.required("hidden_size")
        intermediateSize = try c.required("intermediate_size")
        moeIntermediateSize = try c.required("moe_intermediate_size")
        sharedIntermediateSize = try c.required("shared_expert_intermediate_size")
        layerCount = try c.required("num_hidden_layers")
        heads = try c.required("num_attention_heads")
        keyValueHeads = try c.value("num_key_value_heads", default: heads)
        headDim = try c.first(Int.self, "head_dim")
        experts = try c.value("num_experts", "num_local_experts", default: 60)
        topK = try c.value("num_experts_per_tok", default: 4)
        normalizeTopK = try c.value("norm_topk_prob", default: false)
        decoderSparseStep = try c.value("decoder_sparse_step", default: 1)
        mlpOnlyLayers = try c.value("mlp_only_layers", default: [])
        qkvBias = try c.value("qkv_bias", default: true)
        rmsNormEpsilon = try c.value("rms_norm_eps", default: 1e-6)
        rope = try RopeParameters(c, defaultTheta: 10_000, defaultMaxPositions: 32_768)
        useSlidingWindow = try c.value("use_sliding_window", default: false)
        slidingWindow = try c.first(Int.self, "sliding_window")
        maxWindowLayers = try c.value("max_window_layers", default: 28)
        layerTypes = try c.first([String].self, "layer_types")
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
            heads: heads, keyValueHeads: keyValueHeads, headDim: hd, qkvBias: qkvBias,
            outputBias: false, qkNorm: .none, clip: nil)
        let moe = MoESpec(
            experts: experts, intermediate: moeIntermediateSize, router: .softmaxTopK(topK, normalized: normalizeTopK),
            sharedIntermediate: sharedIntermediateSize, sharedExpertGate: true)
        let L = max(0, layerCount)
        let ffn = FeedForwardSpec.layers(L, moe: moe, denseIntermediate: intermediateSize) { l in
            !mlpOnlyLayers.contains(l) && experts > 0 && (l + 1) % decoderSparseStep == 0
        }
        // transformers: sliding_window applies only with use_sliding_window, on "sliding_attention" layers
        let window = useSlidingWindow ? slidingWindow.flatMap { $0 > 0 ? $0 : nil } : nil
        let types =
            layerTypes
            ?? (0..<L).map { i in
                (i + 1) % 2 == 1 && i < maxWindowLayers && useSlidingWindow ? "sliding_attention" : "full_attention"
            }
        guard types.count == L else { throw .config(file: source, reason: "layer_types has \(types.count) entries for \(L) layers") }
        let windows: [Int?] = types.map { $0 == "sliding_attention" ? window : nil }
        return Architecture(
            family: "qwen2_moe", vocabularySize: vocabularySize, hiddenSize: hiddenSize, layerCount: layerCount,
            rmsNormEpsilon: rmsNormEpsilon, attention: .standard(attention), rope: ropeSpec, moe: moe, feedForward: ffn,
            slidingWindow: windows, tieWordEmbeddings: tieWordEmbeddings, declaredDType: dtype)
    }
}
