import Checkpoints
import Foundation

/// DeepSeek-V2 and V3 (`model_type: deepseek_v2`, `deepseek_v3`): multi-head latent attention
/// (MLA) with decoupled RoPE on `qk_rope_head_dim` dimensions (pairs rotated together: always in
/// V2, with `rope_interleave` in V3); the first `first_k_dense_replace` layers dense
/// (`intermediate_size`), the others sparse MoE with `n_shared_experts` shared experts
/// (`moe_intermediate_size * n_shared_experts` wide) and a router that is
///
/// - V2: softmax, top-k (`topk_method: greedy`) or group-limited top-k
///   (`group_limited_greedy`: groups scored by their largest probability), weights times
///   `routed_scaling_factor`, never renormalised;
/// - V3: sigmoid scores, choice on scores + `e_score_correction_bias`, group-limited top-k with
///   groups scored by the sum of their two best corrected scores (`n_group`, `topk_group`),
///   weights the uncorrected scores, renormalised with `norm_topk_prob` (+1e-20), times
///   `routed_scaling_factor`.
struct DeepseekConfiguration: FamilyConfig {
    var version: Int
    var vocabularySize: Int
    var hiddenSize: Int
    var intermediateSize: Int
    var moeIntermediateSize: Int
    var layerCount: Int
    var heads: Int
    var experts: Int
    var sharedExperts: Int
    var topK: Int
    var groups: Int?
    var topGroups: Int?
    var topKMethod: String
    var normalizeTopK: Bool
    var scalingFactor: Double
    var firstDenseLayers: Int
    var queryRank: Int?
    var keyValueRank: Int
    var ropeDim: Int
    var noPositionDim: Int
    var valueDim: Int
    var ropeInterleave: Bool
    var attentionBias: Bool
    var rmsNormEpsilon: Double
    var rope: RopeParameters
    var tieWordEmbeddings: Bool
    var hiddenAct: String
    var dtype: String?

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: ConfigKey.self)
        let type: String = try c.value("model_type", default: "deepseek_v3")
        version = type == "deepseek_v2" ? 2 : 3
        vocabularySize = try c.required("vocab_size")
        hiddenSize = try c.required("hidden_size")
        intermediateSize = try c.required("intermediate_size")
        moeIntermediateSize = try c.required("moe_intermediate_size")
        layerCount = try c.required("num_hidden_layers")
        heads = try c.required("num_attention_heads")
        experts = try c.required("n_routed_experts", "num_experts", "num_local_experts")
        sharedExperts = try c.value("n_shared_experts", default: version == 2 ? 2 : 1)
        topK = try c.required("num_experts_per_tok")
        groups = try c.first(Int.self, "n_group")
        topGroups = try c.first(Int.self, "topk_group")
        topKMethod = try c.value("topk_method", default: "greedy")
        normalizeTopK = try c.value("norm_topk_prob", default: version == 3)
        scalingFactor = try c.value("routed_scaling_factor", default: version == 2 ? 1.0 : 2.5)
        firstDenseLayers = try c.value("first_k_dense_replace", default: version == 2 ? 0 : 3)
        queryRank = try c.first(Int.self, "q_lora_rank")
        keyValueRank = try c.required("kv_lora_rank")
        ropeDim = try c.required("qk_rope_head_dim")
        noPositionDim = try c.required("qk_nope_head_dim")
        valueDim = try c.required("v_head_dim")
        ropeInterleave = try c.value("rope_interleave", default: true)
        attentionBias = try c.value("attention_bias", default: false)
        rmsNormEpsilon = try c.value("rms_norm_eps", default: 1e-6)
        rope = try RopeParameters(c, defaultTheta: 10_000, defaultMaxPositions: (version == 2 ? 2048 : 4096))
        tieWordEmbeddings = try c.value("tie_word_embeddings", default: false)
        hiddenAct = try c.value("hidden_act", default: "silu")
        dtype = try c.first(String.self, "dtype", "torch_dtype")
    }

    func architecture(source: String) throws(ModelsError) -> Architecture {
        try requireSiLU(hiddenAct, source: source)
        let ropeSpec = try rope.spec(dim: ropeDim, interleaved: version == 2 || ropeInterleave, source: source)
        guard sharedExperts >= 0 else { throw .config(file: source, reason: "n_shared_experts must not be negative") }
        let attention = LatentAttentionSpec(
            heads: heads, queryRank: queryRank, keyValueRank: keyValueRank, noPositionDim: noPositionDim,
            ropeDim: ropeDim, valueDim: valueDim, bias: attentionBias, softmaxMScale: rope.latentSoftmaxMScale)
        let selection: RouterSpec.Selection
        let router: RouterSpec
        if version == 2 {
            switch topKMethod {
            case "greedy": selection = .plain
            case "group_limited_greedy":
                guard let g = groups, let tg = topGroups else {
                    throw .config(file: source, reason: "topk_method group_limited_greedy needs n_group and topk_group")
                }
                selection = .groupLimited(groups: g, topGroups: tg, sumOfTopTwo: false)
            default: throw .unsupported(file: source, reason: "topk_method '\(topKMethod)' is not supported (greedy, group_limited_greedy)")
            }
            router = RouterSpec(
                scoring: .softmax, topK: topK, selection: selection, correctionBias: false,
                normalizeTopK: false, normalizationEpsilon: 0, scalingFactor: Float(scalingFactor))
        } else {
            let g = groups ?? 1, tg = topGroups ?? g
            selection = g <= 1 ? .plain : .groupLimited(groups: g, topGroups: tg, sumOfTopTwo: true)
            router = RouterSpec(
                scoring: .sigmoid, topK: topK, selection: selection, correctionBias: true,
                normalizeTopK: normalizeTopK, normalizationEpsilon: 1e-20, scalingFactor: Float(scalingFactor))
        }
        let moe = MoESpec(
            experts: experts, intermediate: moeIntermediateSize, router: router,
            sharedIntermediate: sharedExperts > 0 ? moeIntermediateSize * sharedExperts : nil)
        let ffn = FeedForwardSpec.layers(layerCount, moe: moe, denseIntermediate: intermediateSize) { $0 >= firstDenseLayers }
        return Architecture(
            family: version == 2 ? "deepseek_v2" : "deepseek_v3", vocabularySize: vocabularySize, hiddenSize: hiddenSize,
            layerCount: layerCount, rmsNormEpsilon: rmsNormEpsilon, attention: .latent(attention), rope: ropeSpec, moe: moe,
            feedForward: ffn, tieWordEmbeddings: tieWordEmbeddings, declaredDType: dtype)
    }
}
