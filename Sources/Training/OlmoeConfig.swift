import Checkpoints
import Foundation
import Models

/// The hyper-parameters of an OLMoE model, read from a Hugging Face `config.json`
/// (transformers v4 keys such as top-level `rope_theta`, and v5 keys such as
/// `rope_parameters.rope_theta`, are both accepted).
///
/// Shapes follow transformers' `OlmoeForCausalLM`: head size `hidden / heads`, the q-norm over
/// the whole query projection [hidden] and the k-norm over the whole key projection
/// [(hidden / heads) * kvHeads].
public struct OlmoeConfig: Sendable, Equatable {
    /// Vocabulary size V.
    public var vocabularySize: Int
    /// Hidden size d.
    public var hiddenSize: Int
    /// Expert intermediate size D.
    public var intermediateSize: Int
    /// Decoder layers.
    public var layerCount: Int
    /// Query heads H.
    public var headCount: Int
    /// Key/value heads (grouped-query attention when fewer than `headCount`).
    public var keyValueHeadCount: Int
    /// Routed experts n per layer.
    public var expertCount: Int
    /// Experts chosen per token k.
    public var topK: Int
    /// Renormalise the k chosen probabilities to sum 1 (false for OLMoE).
    public var normalizeTopKProbabilities: Bool
    /// RMSNorm epsilon.
    public var rmsNormEpsilon: Float
    /// Rotary base theta.
    public var ropeTheta: Double
    /// Clamp of q, k, v to [-clip, clip] after the QK-norm, when set.
    public var clipQKV: Float?
    /// The LM head shares the embedding matrix.
    public var tieWordEmbeddings: Bool
    /// `router_aux_loss_coef`: the default load-balancing loss weight.
    public var routerAuxLossCoefficient: Double
    /// Embedding row that gets no gradient (`nn.Embedding(padding_idx=)`), if any.
    public var padTokenId: Int?
    /// Standard deviation of the normal initialisation.
    public var initializerRange: Float
    /// The config object as read, written back beside saved checkpoints.
    public var json: JSONValue

    /// Head size `hidden / heads`.
    public var headDim: Int { hiddenSize / headCount }
    /// Width of the key (and value) projection.
    public var keyValueDim: Int { headDim * keyValueHeadCount }

    /// Reads the config of a checkpoint (`ModelConfig`), naming `source` in errors.
    public init(_ config: ModelConfig, source: String) throws(TrainingError) {
        try self.init(json: config.json, source: source)
    }

    /// Reads `config.json` at `path`.
    public init(contentsOf path: String) throws(TrainingError) {
        let c: ModelConfig
        do { c = try ModelConfig(contentsOf: path) } catch { throw .files(error) }
        try self.init(json: c.json, source: path)
    }

    /// Reads a config object; `source` names the file in errors.
    public init(json: JSONValue, source: String) throws(TrainingError) {
        func fail(_ r: String) -> TrainingError { .config(file: source, reason: r) }
        let keys: OlmoeConfiguration
        do { keys = try ModelConfig(json: json).decode(OlmoeConfiguration.self) } catch let e as ConfigDecodingFailure {
            throw fail(e.description)
        } catch {
            throw fail("\(error)")
        }
        if let t = keys.modelType, t != "olmoe" {
            throw fail("model_type '\(t)' is not trainable here; the trainer implements OLMoE ('olmoe') only")
        }
        // a config that names no expert count is refused (transformers would take 64)
        guard let experts = keys.declaredExperts else { throw fail("missing 'num_experts'") }
        vocabularySize = keys.vocabularySize
        hiddenSize = keys.hiddenSize
        intermediateSize = keys.intermediateSize
        layerCount = keys.layerCount
        headCount = keys.heads
        keyValueHeadCount = keys.keyValueHeads
        expertCount = experts
        topK = keys.topK
        normalizeTopKProbabilities = keys.normalizeTopK
        rmsNormEpsilon = Float(keys.rmsNormEpsilon)
        tieWordEmbeddings = keys.tieWordEmbeddings
        routerAuxLossCoefficient = keys.routerAuxLossCoefficient
        initializerRange = Float(keys.initializerRange)
        padTokenId = keys.padTokenId
        if let c = keys.clip {
            guard c > 0 else { throw fail("'clip_qkv' must be a positive number or null") }
            clipQKV = Float(c)
        } else {
            clipQKV = nil
        }
        ropeTheta = keys.rope.theta
        self.json = json

        for (v, name) in [
            (vocabularySize, "vocab_size"), (hiddenSize, "hidden_size"), (intermediateSize, "intermediate_size"),
            (layerCount, "num_hidden_layers"), (headCount, "num_attention_heads"),
            (keyValueHeadCount, "num_key_value_heads"), (expertCount, "num_experts"), (topK, "num_experts_per_tok"),
        ] where v <= 0 {
            throw fail("'\(name)' must be positive, got \(v)")
        }
        guard hiddenSize % headCount == 0 else { throw fail("hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(headCount)") }
        guard headCount % keyValueHeadCount == 0 else {
            throw fail("num_attention_heads \(headCount) is not a multiple of num_key_value_heads \(keyValueHeadCount)")
        }
        guard headDim % 2 == 0 else { throw fail("head size \(headDim) must be even for rotary embeddings") }
        guard topK <= expertCount else { throw fail("num_experts_per_tok \(topK) exceeds num_experts \(expertCount)") }
        if let hd = keys.headDim, hd != headDim {
            throw fail("head_dim \(hd) differs from hidden_size / num_attention_heads = \(headDim); OLMoE's norms assume they agree")
        }
        if keys.hiddenAct != "silu" { throw fail("hidden_act '\(keys.hiddenAct)' is not supported (OLMoE uses silu)") }
        if keys.attentionBias { throw fail("attention_bias true is not supported (OLMoE has no attention biases)") }
        if keys.rope.type != "default" { throw fail("rope_type '\(keys.rope.type)' is not supported (only the default rotary embedding)") }
        guard ropeTheta > 0, ropeTheta.isFinite else { throw fail("rope_theta must be a positive number") }
        guard rmsNormEpsilon > 0, rmsNormEpsilon.isFinite else { throw fail("rms_norm_eps must be a positive number, got \(rmsNormEpsilon)") }
        guard initializerRange >= 0, initializerRange.isFinite else { throw fail("initializer_range must be a non-negative number") }
        try MemoryPlan(self, options: nil).check(source: source)
        if let p = padTokenId, p < 0 || p >= vocabularySize { padTokenId = nil }
    }

    /// Total parameter count (untied LM head counted when untied).
    public var parameterCount: Int { ParameterLayout(self).count }

    /// The config to write beside a checkpoint saved with element type `dtype` (its `dtype` /
    /// `torch_dtype` set accordingly; `architectures` and `model_type` filled in when missing).
    public func jsonForSaving(dtypeName: String) -> JSONValue {
        var j = json
        if j["model_type"] == nil { j = j.setting("model_type", .string("olmoe")) }
        if j["architectures"] == nil { j = j.setting("architectures", .array([.string("OlmoeForCausalLM")])) }
        if j["torch_dtype"] != nil { j = j.setting("torch_dtype", .string(dtypeName)) }
        j = j.setting("dtype", .string(dtypeName))
        return j
    }
}
