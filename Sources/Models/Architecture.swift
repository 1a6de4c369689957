import Checkpoints
import Foundation
import MoELayout

/// What one decoder family computes, in the terms the forward pass needs: every family file
/// (`Olmoe.swift`, `Mixtral.swift`, ...) decodes its Hugging Face config and describes itself
/// with these values; the shared kernels do the rest.
///
/// Every family here has the same block, `x += Attention(RMSNorm(x))` then
/// `x += FeedForward(RMSNorm(x))` (the feed-forward a dense SwiGLU MLP or a sparse MoE), or
/// with the norms after the sublayers (`normPlacement`, FlexOlmo).
public struct Architecture: Sendable {
    /// Where a decoder block's two RMSNorms sit.
    public enum NormPlacement: Sendable, Equatable {
        /// Before each sublayer (`input_layernorm`, `post_attention_layernorm`):
        /// `x += f(RMSNorm(x))`.
        case beforeSublayer
        /// After each sublayer, on its output (`post_attention_layernorm`,
        /// `post_feedforward_layernorm`; OLMo-2, FlexOlmo, OLMo-core's `moe_reordered_norm`):
        /// `x += RMSNorm(f(x))`.
        case afterSublayer
    }

    /// `model_type` of the config (`olmoe`, `mixtral`, `qwen2_moe`, `qwen3_moe`, `deepseek_v2`, `deepseek_v3`, `flex_olmo`).
    public var family: String
    /// Vocabulary size V.
    public var vocabularySize: Int
    /// Hidden size d.
    public var hiddenSize: Int
    /// Decoder layers.
    public var layerCount: Int
    /// Epsilon of the layer norms (`rms_norm_eps`).
    public var rmsNormEpsilon: Float
    /// The attention of every layer.
    public var attention: AttentionSpec
    /// Rotary embedding of the query/key dimensions that rotate.
    public var rope: RopeSpec
    /// The feed-forward block of each layer, in order.
    public var feedForward: [FeedForwardSpec]
    /// Sliding attention window per layer (nil: full causal attention).
    public var slidingWindow: [Int?]
    /// The LM head is the embedding matrix.
    public var tieWordEmbeddings: Bool
    /// Where the block norms sit.
    public var normPlacement: NormPlacement = .beforeSublayer
    /// The element type the config declares (`dtype` in transformers v5, `torch_dtype` in v4);
    /// informational: weights are decoded from their stored type to Float32 whatever it says.
    public var declaredDType: String? = nil

    /// Indices of the MoE layers.
    public var moeLayers: [Int] {
        feedForward.indices.filter {
            if case .moe = feedForward[$0] { return true }; return false
        }
    }
}

/// The attention variants.
public enum AttentionSpec: Sendable, Equatable {
    /// Multi-head attention with grouped key/value heads.
    case standard(StandardAttentionSpec)
    /// DeepSeek's multi-head latent attention (MLA).
    case latent(LatentAttentionSpec)
}

/// Multi-head attention with grouped-query key/value heads (OLMoE, Mixtral, Qwen2/3-MoE).
public struct StandardAttentionSpec: Sendable, Equatable {
    /// Where the query/key RMSNorm applies.
    public enum QKNorm: Sendable, Equatable {
        /// None (Mixtral, Qwen2-MoE).
        case none
        /// Over the whole query [H * hd] and key [Hkv * hd] projection (OLMoE).
        case wholeProjection
        /// Over each head's hd values, one weight [hd] shared by the heads (Qwen3-MoE).
        case perHead
    }
    /// Query heads H.
    public var heads: Int
    /// Key/value heads (H a multiple of it).
    public var keyValueHeads: Int
    /// Head size hd.
    public var headDim: Int
    /// q, k, v projections have biases (Qwen2-MoE `qkv_bias`, `attention_bias`).
    public var qkvBias: Bool
    /// The output projection has a bias (`attention_bias` in OLMoE and Qwen3-MoE).
    public var outputBias: Bool
    /// The query/key norm.
    public var qkNorm: QKNorm
    /// `clip_qkv`: q, k, v clamped to [-clip, clip] (OLMoE).
    public var clip: Float?
}

/// DeepSeek-V2/V3 multi-head latent attention: queries through a low-rank `q_a`/`q_b` pair (or
/// one `q_proj`), keys and values from a compressed latent of rank `kv_lora_rank` plus one
/// rotary key of `qk_rope_head_dim` shared by all heads (decoupled RoPE).
public struct LatentAttentionSpec: Sendable, Equatable {
    /// Heads H.
    public var heads: Int
    /// `q_lora_rank`, nil for a full-rank `q_proj`.
    public var queryRank: Int?
    /// `kv_lora_rank`.
    public var keyValueRank: Int
    /// `qk_nope_head_dim`: query/key dimensions without position.
    public var noPositionDim: Int
    /// `qk_rope_head_dim`: query/key dimensions that rotate.
    public var ropeDim: Int
    /// `v_head_dim`.
    public var valueDim: Int
    /// `attention_bias`: biases on `q_a_proj`, `kv_a_proj_with_mqa` and `o_proj`.
    public var bias: Bool
    /// With scaled RoPE, the softmax scale `1 / sqrt(queryKeyDim)` is multiplied by this twice
    /// (DeepSeek's yarn `mscale` of `mscale_all_dim`; 1 otherwise).
    public var softmaxMScale: Double = 1
    /// Query/key dimensions per head: nope + rope.
    public var queryKeyDim: Int { noPositionDim + ropeDim }
    /// The softmax scale of the attention scores, as transformers computes it in Float64.
    var softmaxScale: Float { Float(Foundation.pow(Double(queryKeyDim), -0.5) * softmaxMScale * softmaxMScale) }
}

/// Rotary position embedding.
public struct RopeSpec: Sendable, Equatable {
    /// Base theta.
    public var theta: Double
    /// Number of dimensions rotated per head (even).
    public var dim: Int
    /// Pairs (x0, x1), (x2, x3), ... rotate together (DeepSeek); else the two halves (`rotate_half`).
    public var interleaved: Bool
    /// The frequency scaling (`rope_type`), `.none` for the default rotary embedding.
    public var scaling: RopeScaling = .none
}

/// A decoder layer's feed-forward block.
public enum FeedForwardSpec: Sendable, Equatable {
    /// A dense SwiGLU MLP `mlp.{gate,up,down}_proj` of this intermediate size.
    case dense(intermediate: Int)
    /// A sparse MoE block.
    case moe(MoESpec)
}

/// A sparse MoE block: router, routed SwiGLU experts, optional shared expert.
public struct MoESpec: Sendable, Equatable {
    /// Routed experts n.
    public var experts: Int
    /// Expert intermediate size D.
    public var intermediate: Int
    /// How tokens choose experts.
    public var router: RouterSpec
    /// Intermediate size of the shared expert(s) (Qwen2-MoE, DeepSeek), if any.
    public var sharedIntermediate: Int? = nil
    /// The shared expert's output is scaled by `sigmoid(x . w)` (Qwen2-MoE `shared_expert_gate`).
    public var sharedExpertGate: Bool = false
}

/// How a router turns its logits `h R^T` into k experts and their weights.
public struct RouterSpec: Sendable, Equatable {
    /// Score of each expert from its logit.
    public enum Scoring: String, Sendable, Equatable {
        /// Softmax over the n logits (Float32).
        case softmax
        /// Independent sigmoids (DeepSeek-V3).
        case sigmoid
    }
    /// Which experts may be chosen.
    public enum Selection: Sendable, Equatable {
        /// The k highest scores.
        case plain
        /// DeepSeek's group-limited top-k: experts in `groups` equal groups, only the `topGroups`
        /// best groups kept (V2: group score = its largest score, others set to 0; V3: group score
        /// = sum of its two largest bias-corrected scores, others set to -inf).
        case groupLimited(groups: Int, topGroups: Int, sumOfTopTwo: Bool)
    }
    /// The scoring function.
    public var scoring: Scoring
    /// Experts per token k.
    public var topK: Int
    /// The selection rule.
    public var selection: Selection
    /// Add `e_score_correction_bias` to the scores for choosing (not for weighting) (V3).
    public var correctionBias: Bool
    /// Renormalise the k weights to sum 1 (`norm_topk_prob`; always for Mixtral).
    public var normalizeTopK: Bool
    /// Added to the denominator of the renormalisation (DeepSeek-V3: 1e-20).
    public var normalizationEpsilon: Float
    /// Multiplies the weights after renormalisation (`routed_scaling_factor`).
    public var scalingFactor: Float
}

extension RouterSpec {
    /// The softmax router of OLMoE, Mixtral, Qwen and FlexOlmo: the k most probable experts,
    /// their probabilities renormalised to sum 1 only when `normalized`.
    static func softmaxTopK(_ k: Int, normalized: Bool) -> RouterSpec {
        RouterSpec(
            scoring: .softmax, topK: k, selection: .plain, correctionBias: false, normalizeTopK: normalized, normalizationEpsilon: 0,
            scalingFactor: 1)
    }
}

extension FeedForwardSpec {
    /// `layers` feed-forward blocks: `moe` where `isMoE(layer)`, a dense MLP of
    /// `denseIntermediate` elsewhere (Qwen's `mlp_only_layers` and `decoder_sparse_step`,
    /// DeepSeek's `first_k_dense_replace`).
    static func layers(_ layers: Int, moe: MoESpec, denseIntermediate: Int, isMoE: (Int) -> Bool) -> [FeedForwardSpec] {
        (0..<max(0, layers)).map { isMoE($0) ? .moe(moe) : .dense(intermediate: denseIntermediate) }
    }
}

extension Architecture {
    /// A family's description; `feedForward` nil makes every layer `moe`, `slidingWindow` nil
    /// gives every layer full causal attention.
    init(
        family: String, vocabularySize: Int, hiddenSize: Int, layerCount: Int, rmsNormEpsilon: Double, attention: AttentionSpec,
        rope: RopeSpec, moe: MoESpec, feedForward: [FeedForwardSpec]? = nil, slidingWindow: [Int?]? = nil, tieWordEmbeddings: Bool,
        declaredDType: String?, normPlacement: NormPlacement = .beforeSublayer
    ) {
        let L = max(0, layerCount)
        self.init(
            family: family, vocabularySize: vocabularySize, hiddenSize: hiddenSize, layerCount: layerCount,
            rmsNormEpsilon: Float(rmsNormEpsilon), attention: attention, rope: rope,
            feedForward: feedForward ?? Array(repeating: .moe(moe), count: L), slidingWindow: slidingWindow ?? Array(repeating: nil, count: L),
            tieWordEmbeddings: tieWordEmbeddings, normPlacement: normPlacement, declaredDType: declaredDType)
    }
}

/// A family's config, decoded from `config.json` and describing its model.
protocol FamilyConfig: Decodable {
    /// The architecture, validated against itself; `source` names the config in errors.
    func architecture(source: String) throws(ModelsError) -> Architecture
}

extension Architecture {
    /// Checks the sizes every kernel relies on.
    func validate(source: String) throws(ModelsError) {
        func fail(_ r: String) -> ModelsError { .config(file: source, reason: r) }
        for (v, name) in [(vocabularySize, "vocab_size"), (hiddenSize, "hidden_size"), (layerCount, "num_hidden_layers")] where v <= 0 {
            throw fail("'\(name)' must be positive, got \(v)")
        }
        guard vocabularySize <= 1 << 24, hiddenSize <= 1 << 16, layerCount <= 10_000 else {
            throw fail("sizes beyond what this tool runs (vocab \(vocabularySize), hidden \(hiddenSize), layers \(layerCount))")
        }
        guard feedForward.count == layerCount, slidingWindow.count == layerCount else { throw fail("per-layer settings do not cover \(layerCount) layers") }
        guard rmsNormEpsilon >= 0, rmsNormEpsilon.isFinite else { throw fail("rms_norm_eps must be a non-negative number") }
        guard rope.theta > 0, rope.theta.isFinite else { throw fail("rope_theta must be positive") }
        guard rope.dim > 0, rope.dim % 2 == 0 else { throw fail("rotary dimension \(rope.dim) must be positive and even") }
        switch attention {
        case let .standard(a):
            guard a.heads > 0, a.keyValueHeads > 0, a.headDim > 0, a.heads % a.keyValueHeads == 0 else {
                throw fail("attention heads \(a.heads) must be a positive multiple of key/value heads \(a.keyValueHeads), head size \(a.headDim) positive")
            }
            guard a.heads * a.headDim <= 1 << 20 else { throw fail("attention of \(a.heads) heads of \(a.headDim) is too large") }
            guard rope.dim <= a.headDim else { throw fail("rotary dimension \(rope.dim) exceeds the head size \(a.headDim)") }
            if let c = a.clip, !(c > 0) { throw fail("clip_qkv must be positive") }
        case let .latent(a):
            guard a.heads <= 4096, a.keyValueRank <= 1 << 16, a.noPositionDim <= 1 << 16, a.ropeDim <= 1 << 16, a.valueDim <= 1 << 16,
                (a.queryRank ?? 0) <= 1 << 16
            else {
                throw fail("latent attention sizes beyond what this tool runs (heads \(a.heads), ranks and head sizes up to 65536)")
            }
            guard a.heads > 0, a.keyValueRank > 0, a.noPositionDim >= 0, a.ropeDim > 0, a.valueDim > 0 else {
                throw fail(
                    "latent attention sizes must be positive (heads \(a.heads), kv_lora_rank \(a.keyValueRank), qk_rope_head_dim \(a.ropeDim), v_head_dim \(a.valueDim))"
                )
            }
            if let r = a.queryRank, r <= 0 { throw fail("q_lora_rank must be positive or null") }
            guard rope.dim == a.ropeDim else { throw fail("rotary dimension \(rope.dim) differs from qk_rope_head_dim \(a.ropeDim)") }
            guard a.softmaxMScale > 0, a.softmaxMScale.isFinite else { throw fail("the RoPE scaling gives a softmax mscale of \(a.softmaxMScale)") }
        }
        for w in slidingWindow { if let w, w <= 0 { throw fail("sliding_window must be positive") } }
        for f in feedForward {
            switch f {
            case let .dense(D): guard D > 0, D <= 1 << 24 else { throw fail("intermediate_size must be positive and at most 16777216, got \(D)") }
            case let .moe(m):
                guard m.experts > 0, m.intermediate > 0 else { throw fail("MoE of \(m.experts) experts of size \(m.intermediate)") }
                guard m.experts <= 1 << 16, m.intermediate <= 1 << 20, (m.sharedIntermediate ?? 0) <= 1 << 24 else {
                    throw fail("MoE of \(m.experts) experts of size \(m.intermediate) is beyond what this tool runs")
                }
                guard m.router.topK > 0, m.router.topK <= m.experts else {
                    throw fail("num_experts_per_tok \(m.router.topK) must be between 1 and the \(m.experts) experts")
                }
                if let s = m.sharedIntermediate, s <= 0 { throw fail("shared expert intermediate size must be positive") }
                if case let .groupLimited(g, tg, top2) = m.router.selection {
                    guard g > 0, m.experts % g == 0, tg > 0, tg <= g else {
                        throw fail("n_group \(g) must divide the \(m.experts) experts and topk_group \(tg) lie in 1...\(g)")
                    }
                    guard (m.experts / g) * tg >= m.router.topK else {
                        throw fail("topk_group \(tg) groups of \(m.experts / g) experts hold fewer than num_experts_per_tok \(m.router.topK)")
                    }
                    if top2 { guard m.experts / g >= 2 else { throw fail("group-limited routing needs at least 2 experts per group") } }
                }
            }
        }
    }
}
