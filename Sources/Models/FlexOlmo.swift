import Checkpoints
import Foundation

/// FlexOlmo (`model_type: flex_olmo`, transformers' `FlexOlmoForCausalLM`), the Hugging Face form
/// of OLMo-core's MoE models (`moe_reordered_norm` blocks): OLMo-2's attention (an RMSNorm over
/// the whole query and key projections, no `clip_qkv`, `attention_bias` on all four projections)
/// and OLMoE's MoE (softmax router, top-k of the probabilities, renormalised only with
/// `norm_topk_prob`), with the norms after the sublayers:
/// `x += RMSNorm_post_attention(Attention(x))`, `x += RMSNorm_post_feedforward(MoE(x))`.
struct FlexOlmoConfiguration: FamilyConfig {
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
        experts = try c.value("num_experts", "num_local_experts", default: 7)
        topK = try c.value("num_experts_per_tok", default: 5)
        normalizeTopK = try c.value("norm_topk_prob", default: false)
        rmsNormEpsilon = try c.value("rms_norm_eps", default: 1e-6)
        rope = try RopeParameters(c, defaultTheta: 500_000, defaultMaxPositions: 4096)
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
            outputBias: attentionBias, qkNorm: .wholeProjection, clip: nil)
        let moe = MoESpec(experts: experts, intermediate: intermediateSize, router: .softmaxTopK(topK, normalized: normalizeTopK))
        return Architecture(
            family: "flex_olmo", vocabularySize: vocabularySize, hiddenSize: hiddenSize, layerCount: layerCount,
            rmsNormEpsilon: rmsNormEpsilon, attention: .standard(attention), rope: ropeSpec, moe: moe,
            tieWordEmbeddings: tieWordEmbeddings, declaredDType: dtype, normPlacement: .afterSublayer)
    }
}
