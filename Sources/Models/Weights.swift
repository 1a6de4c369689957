import Checkpoints
import Foundation
import MoELayout
import Tensors

/// Reads one decoder layer's tensors as Float32, checking each shape against the architecture.
/// The executor asks for Hugging Face names; `storedName` maps them onto the checkpoint's own
/// (OLMo-core's, for its run checkpoints).
struct WeightReader {
    let checkpoint: Checkpoint
    var storedName: @Sendable (String) -> String = { $0 }

    var path: String { checkpoint.path }

    /// Tensor `name` of exactly `shape`; with `flatAllowed`, also stored flat as one dimension
    /// of the same size (OLMo-core's routers [n * d]).
    func read(_ name: String, _ shape: [Int], flatAllowed: Bool = false) throws(ModelsError) -> Tensor {
        let stored = storedName(name)
        guard let info = checkpoint.info(stored) else { throw .weights(file: path, reason: "missing tensor '\(stored)'") }
        let flat = flatAllowed && shape.count > 1 && info.shape == [shape.reduce(1, *)]
        guard info.shape == shape || flat else {
            throw .weights(file: path, reason: "'\(stored)' has shape \(info.shape), expected \(shape)")
        }
        do {
            let t = try checkpoint.tensor(stored)
            return flat ? t.reshaped(shape) : t
        } catch { throw .weights(file: path, reason: error.description) }
    }

    /// Whether the checkpoint holds tensor `name`.
    func contains(_ name: String) -> Bool { checkpoint.contains(storedName(name)) }

    /// Tensor `name` of `shape` if the checkpoint holds it, else nil (a present tensor of the wrong shape throws).
    func optional(_ name: String, _ shape: [Int]) throws(ModelsError) -> Tensor? {
        contains(name) ? try read(name, shape) : nil
    }
}

/// The weights of a standard attention block.
struct StandardAttentionWeights {
    var query: Tensor, key: Tensor, value: Tensor, output: Tensor
    var queryBias: Tensor?, keyBias: Tensor?, valueBias: Tensor?, outputBias: Tensor?
    var queryNorm: Tensor?, keyNorm: Tensor?

    init(_ r: WeightReader, prefix p: String, spec a: StandardAttentionSpec, hidden d: Int) throws(ModelsError) {
        let qd = a.heads * a.headDim, kd = a.keyValueHeads * a.headDim
        query = try r.read(p + "q_proj.weight", [qd, d])
        key = try r.read(p + "k_proj.weight", [kd, d])
        value = try r.read(p + "v_proj.weight", [kd, d])
        output = try r.read(p + "o_proj.weight", [d, qd])
        if a.qkvBias {
            queryBias = try r.read(p + "q_proj.bias", [qd])
            keyBias = try r.read(p + "k_proj.bias", [kd])
            valueBias = try r.read(p + "v_proj.bias", [kd])
        }
        if a.outputBias { outputBias = try r.read(p + "o_proj.bias", [d]) }
        switch a.qkNorm {
        case .none: break
        case .wholeProjection:
            queryNorm = try r.read(p + "q_norm.weight", [qd])
            keyNorm = try r.read(p + "k_norm.weight", [kd])
        case .perHead:
            queryNorm = try r.read(p + "q_norm.weight", [a.headDim])
            keyNorm = try r.read(p + "k_norm.weight", [a.headDim])
        }
    }
}

/// The weights of a multi-head latent attention block.
struct LatentAttentionWeights {
    /// `q_proj` [H * dqk, d] (full rank), or `q_a_proj` [rq, d] + `q_a_layernorm` [rq] + `q_b_proj` [H * dqk, rq].
    var query: Tensor?
    var queryDown: Tensor?, queryDownBias: Tensor?, queryNorm: Tensor?, queryUp: Tensor?
    /// `kv_a_proj_with_mqa` [r + rope, d], `kv_a_layernorm` [r], `kv_b_proj` [H * (nope + dv), r].
    var keyValueDown: Tensor, keyValueDownBias: Tensor?, keyValueNorm: Tensor, keyValueUp: Tensor
    /// `o_proj` [d, H * dv].
    var output: Tensor, outputBias: Tensor?

    init(_ r: WeightReader, prefix p: String, spec a: LatentAttentionSpec, hidden d: Int) throws(ModelsError) {
        let qd = a.heads * a.queryKeyDim
        if let rq = a.queryRank {
            queryDown = try r.read(p + "q_a_proj.weight", [rq, d])
            if a.bias { queryDownBias = try r.read(p + "q_a_proj.bias", [rq]) }
            queryNorm = try r.read(p + "q_a_layernorm.weight", [rq])
            queryUp = try r.read(p + "q_b_proj.weight", [qd, rq])
        } else {
            query = try r.read(p + "q_proj.weight", [qd, d])
        }
        keyValueDown = try r.read(p + "kv_a_proj_with_mqa.weight", [a.keyValueRank + a.ropeDim, d])
        if a.bias { keyValueDownBias = try r.read(p + "kv_a_proj_with_mqa.bias", [a.keyValueRank + a.ropeDim]) }
        keyValueNorm = try r.read(p + "kv_a_layernorm.weight", [a.keyValueRank])
        keyValueUp = try r.read(p + "kv_b_proj.weight", [a.heads * (a.noPositionDim + a.valueDim), a.keyValueRank])
        output = try r.read(p + "o_proj.weight", [d, a.heads * a.valueDim])
        if a.bias { outputBias = try r.read(p + "o_proj.bias", [d]) }
    }
}

/// A SwiGLU MLP's three projections: gate [D, d], up [D, d], down [d, D].
struct SwiGLUWeights {
    var gate: Tensor, up: Tensor, down: Tensor
    var intermediate: Int { gate.shape[0] }

    init(_ r: WeightReader, gate g: String, up u: String, down w: String, hidden d: Int, intermediate D: Int) throws(ModelsError) {
        gate = try r.read(g, [D, d])
        up = try r.read(u, [D, d])
        down = try r.read(w, [d, D])
    }
}

/// The weights of one sparse MoE block, routed experts stacked.
public struct MoEWeights: Sendable {
    /// Router R [n, d].
    public var router: Tensor
    /// DeepSeek-V3's `e_score_correction_bias` [n], if the router uses it.
    public var correctionBias: Tensor?
    /// Routed experts' gate projections W_g [n, D, d].
    public var gate: Tensor
    /// Routed experts' up projections W_p [n, D, d].
    public var up: Tensor
    /// Routed experts' down projections W_o [n, d, D].
    public var down: Tensor
    var shared: SwiGLUWeights?
    var sharedGate: Tensor?

    /// Reads one MoE layer. The stacked expert weights are decoded into `reuse`'s tensors of the
    /// same shape when it holds them (the previous layer's, no longer referenced elsewhere), so
    /// that no fresh gigabyte is allocated and faulted in per layer.
    init(_ model: MoECheckpoint, layer: MoELayer, spec m: MoESpec, hidden d: Int, reuse: inout [Projection: Tensor]) throws(ModelsError) {
        let r = WeightReader(checkpoint: model.checkpoint)
        let file = model.checkpoint.path
        guard layer.expertCount == m.experts, layer.hiddenSize == d, layer.intermediateSize == m.intermediate else {
            throw .weights(
                file: file,
                reason:
                    "layer \(layer.index): the checkpoint holds \(layer.expertCount) experts of [\(layer.intermediateSize), \(layer.hiddenSize)], the config says \(m.experts) of [\(m.intermediate), \(d)]"
            )
        }
        router = try r.read(layer.router, [m.experts, d], flatAllowed: true)
        if m.router.correctionBias {
            guard let b = layer.scoreCorrectionBias else {
                throw .weights(file: file, reason: "layer \(layer.index): the router's e_score_correction_bias is missing")
            }
            correctionBias = try r.read(b, [m.experts])
        }
        func load(_ p: Projection) throws(CheckpointError) -> Tensor {
            let shape = [layer.expertCount] + model.projectionShape(layer, p)
            var t = reuse.removeValue(forKey: p) ?? Tensor(shape: shape)
            if t.shape != shape { t = Tensor(shape: shape) }
            try t.storage.withUnsafeMutableBufferPointer { b throws(CheckpointError) in try model.readExpertWeights(layer, p, into: b) }
            return t
        }
        do {
            gate = try load(.gate)
            up = try load(.up)
            down = try load(.down)
        } catch { throw .weights(file: file, reason: "layer \(layer.index): \(error.description)") }
        if let D = m.sharedIntermediate {
            guard let s = layer.shared, let u = s.up, let w = s.down else {
                throw .weights(file: file, reason: "layer \(layer.index): the shared expert's weights are missing")
            }
            shared = try SwiGLUWeights(r, gate: s.gate, up: u, down: w, hidden: d, intermediate: D)
        }
        if m.sharedExpertGate {
            guard let g = layer.sharedExpertGate else { throw .weights(file: file, reason: "layer \(layer.index): shared_expert_gate is missing") }
            sharedGate = try r.read(g, [1, d])
        }
    }
}
