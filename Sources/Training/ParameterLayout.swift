import Foundation
import Tensors

/// Which part of the model a parameter belongs to, for `--train GROUP,...`.
public enum ParameterGroup: String, Sendable, CaseIterable, Codable {
    /// `model.embed_tokens.weight`.
    case embedding = "embed"
    /// q, k, v and o projections.
    case attention
    /// Every RMSNorm weight (input, post-attention, q-norm, k-norm, final).
    case norm
    /// `mlp.gate.weight`, the router R.
    case router
    /// Experts' gate projections W_g (feeding SiLU).
    case gateProjection = "gate_proj"
    /// Experts' up projections.
    case upProjection = "up_proj"
    /// Experts' down projections.
    case downProjection = "down_proj"
    /// `lm_head.weight` (absent when tied to the embedding).
    case lmHead = "lm_head"

    /// Parses a `--train` list: group names, plus `experts` (= gate_proj, up_proj, down_proj)
    /// and `all`.
    public static func parseList(_ text: String) throws(TrainingError) -> Set<ParameterGroup> {
        var out = Set<ParameterGroup>()
        for raw in text.split(separator: ",") {
            let w = raw.trimmingCharacters(in: .whitespaces).lowercased()
            if w == "all" { out.formUnion(allCases); continue }
            if w == "experts" { out.formUnion([.gateProjection, .upProjection, .downProjection]); continue }
            if w == "embed_tokens" || w == "embedding" { out.insert(.embedding); continue }
            guard let g = ParameterGroup(rawValue: w) else {
                throw .invalidOption("\(Setting.trainGroups): unknown parameter group '\(w)'; choose from \(allCases.map(\.rawValue).joined(separator: ", ")), experts, all")
            }
            out.insert(g)
        }
        guard !out.isEmpty else { throw .invalidOption("\(Setting.trainGroups): the list of parameter groups is empty") }
        return out
    }
}

/// One named tensor of the model inside the flat parameter buffer.
public struct ParameterTensor: Sendable, Equatable {
    /// Hugging Face checkpoint name, e.g. `model.layers.0.mlp.experts.3.gate_proj.weight`.
    public var name: String
    /// Shape as stored in the checkpoint.
    public var shape: [Int]
    /// First element in the flat buffer.
    public var offset: Int
    /// The group it trains with.
    public var group: ParameterGroup
    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
}

/// Offsets of one decoder layer's parameters in the flat buffer.
///
/// q, k and v projections are adjacent so that one GEMM computes all three ([d + 2 kv, d]);
/// each expert's gate and up projections are adjacent ([n, 2D, d], gate rows first, as
/// transformers fuses them) and the down projections follow as [n, d, D].
public struct LayerOffsets: Sendable, Equatable {
    public var inputNorm: Int, qkv: Int, qNorm: Int, kNorm: Int, output: Int, postNorm: Int
    public var router: Int, gateUp: Int, down: Int
}

/// Where every parameter of an OLMoE model lives in one flat Float32 buffer, and its name.
public struct ParameterLayout: Sendable {
    /// Every tensor, in checkpoint order.
    public private(set) var tensors: [ParameterTensor] = []
    /// Per-layer offsets.
    public private(set) var layers: [LayerOffsets] = []
    /// `model.embed_tokens.weight` [V, d].
    public private(set) var embedding = 0
    /// `model.norm.weight` [d].
    public private(set) var finalNorm = 0
    /// `lm_head.weight` [V, d] (the embedding's offset when tied).
    public private(set) var lmHead = 0
    /// Total elements.
    public private(set) var count = 0

    /// The layout for `config`.
    public init(_ config: OlmoeConfig) {
        let d = config.hiddenSize, kv = config.keyValueDim, V = config.vocabularySize
        let n = config.expertCount, D = config.intermediateSize
        func add(_ name: String, _ shape: [Int], _ group: ParameterGroup) -> Int {
            let o = count
            tensors.append(ParameterTensor(name: name, shape: shape, offset: o, group: group))
            count += shape.reduce(1, *)
            return o
        }
        embedding = add("model.embed_tokens.weight", [V, d], .embedding)
        for l in 0..<config.layerCount {
            let p = "model.layers.\(l)."
            let inputNorm = add(p + "input_layernorm.weight", [d], .norm)
            let qkv = add(p + "self_attn.q_proj.weight", [d, d], .attention)
            _ = add(p + "self_attn.k_proj.weight", [kv, d], .attention)
            _ = add(p + "self_attn.v_proj.weight", [kv, d], .attention)
            let qn = add(p + "self_attn.q_norm.weight", [d], .norm)
            let kn = add(p + "self_attn.k_norm.weight", [kv], .norm)
            let o = add(p + "self_attn.o_proj.weight", [d, d], .attention)
            let post = add(p + "post_attention_layernorm.weight", [d], .norm)
            let router = add(p + "mlp.gate.weight", [n, d], .router)
            let gateUp = count
            for e in 0..<n {
                _ = add(p + "mlp.experts.\(e).gate_proj.weight", [D, d], .gateProjection)
                _ = add(p + "mlp.experts.\(e).up_proj.weight", [D, d], .upProjection)
            }
            let down = count
            for e in 0..<n { _ = add(p + "mlp.experts.\(e).down_proj.weight", [d, D], .downProjection) }
            layers.append(
                LayerOffsets(
                    inputNorm: inputNorm, qkv: qkv, qNorm: qn, kNorm: kn, output: o, postNorm: post,
                    router: router, gateUp: gateUp, down: down))
        }
        finalNorm = add("model.norm.weight", [d], .norm)
        lmHead = config.tieWordEmbeddings ? embedding : add("lm_head.weight", [V, d], .lmHead)
    }

    /// The tensor named `name`, if any.
    public func tensor(named name: String) -> ParameterTensor? { tensors.first { $0.name == name } }
}
