import Checkpoints
import Tensors

/// OLMo-core's own tensor names (in its training checkpoints and `unshard_checkpoint` exports):
/// `blocks.{L}.feed_forward_moe.router.weight` flattened to [n*d], and every expert's projection
/// stacked in `blocks.{L}.feed_forward_moe.experts.mlp.w1|w2|w3`. How w1 and w3 stack depends on
/// the MoE type, which is read from the run's `config.json`, never guessed from shapes.
public enum OLMoCoreLayout {
    /// The layout spec shown for OLMo-core checkpoints (router pattern and layer prefix).
    public static let spec = LayoutSpec(
        family: "olmo_core", layerPrefix: "blocks.{layer}.",
        router: "blocks.{layer}.feed_forward_moe.router.weight", scoring: .softmax)

    static let experts = "blocks.{layer}.feed_forward_moe.experts.mlp."

    /// True when `names` hold OLMo-core MoE routers.
    public static func matches(_ names: [String]) -> Bool {
        names.contains { spec.router.match($0) != nil }
    }

    /// What `MoECheckpoint` keeps of an OLMo-core checkpoint.
    struct Description {
        var layers: [LayerKind]
        var problems: [String]
        var config: OLMoCoreModelConfig
    }

    /// Describes every decoder layer of an OLMo-core checkpoint.
    /// - Throws: `LayoutError` when no run config says the MoE type.
    static func describe(_ checkpoint: Checkpoint, names: [String]) throws(LayoutError) -> Description {
        guard let config = try OLMoCoreModelConfig.find(for: checkpoint) else {
            throw .inconsistent(
                file: checkpoint.path,
                reason:
                    "OLMo-core tensor names, but no run config.json (beside the checkpoint, or in a folder above) says the MoE type; w1/w3 are stored [n*D, d] (dropless) or [n*d, D] (default), so copy the run's config.json beside the checkpoint"
            )
        }
        var routers: [Int: String] = [:]
        var all = Set<Int>()
        for n in names {
            if let l = spec.router.match(n)?.layer { routers[l] = n }
            if let l = spec.layerPrefix.matchPrefix(n) { all.insert(l) }
        }
        all.formUnion(routers.keys)
        var layers: [LayerKind] = []
        var problems: [String] = []
        for l in all.sorted() {
            guard let r = routers[l] else { layers.append(.dense(index: l)); continue }
            switch layer(l, router: r, config: config, checkpoint: checkpoint) {
            case let .success(m): layers.append(.moe(m))
            case let .failure(p): problems.append("layer \(l): \(p.message)"); layers.append(.dense(index: l))
            }
        }
        return Description(layers: layers, problems: problems, config: config)
    }

    private static func layer(
        _ l: Int, router: String, config c: OLMoCoreModelConfig,
        checkpoint: Checkpoint
    ) -> Result<MoELayer, LayerProblem> {
        let n = c.expertCount, d = c.hiddenSize, D = c.intermediateSize
        guard let r = checkpoint.info(router) else { return .failure(LayerProblem("router missing")) }
        guard r.shape == [n * d] || r.shape == [n, d] else {
            return .failure(LayerProblem("router '\(router)' has shape \(r.shape), but \(c.source) says \(n) experts of width \(d): expected [\(n * d)]"))
        }
        let p = NamePattern(experts)
        let w1 = p.name(layer: l) + "w1", w2 = p.name(layer: l) + "w2", w3 = p.name(layer: l) + "w3"
        let gateUp = c.moeType == .dropless ? [n * D, d] : [n * d, D]
        let other = c.moeType == .dropless ? [n * d, D] : [n * D, d]
        guard let g = checkpoint.info(w1) else { return .failure(LayerProblem("router present but '\(w1)' is missing")) }
        for (name, want) in [(w1, gateUp), (w3, gateUp), (w2, [n * D, d])] {
            guard let t = checkpoint.info(name) else {
                if name == w1 { return .failure(LayerProblem("'\(w1)' is missing")) }
                continue
            }
            guard t.shape == want else {
                var m = "'\(name)' has shape \(t.shape), but a \(c.moeType.rawValue) MoE with n \(n), d \(d), D \(D) (\(c.source)) stores \(want)"
                if name != w2, t.shape == other, other != want { m += "; that is the other MoE type's layout: is this the run's config.json?" }
                return .failure(LayerProblem(m))
            }
        }
        let storage = ExpertStorage.stacked(
            w1: w1, w3: checkpoint.contains(w3) ? w3 : nil, w2: checkpoint.contains(w2) ? w2 : nil,
            transposed: c.moeType == .default)
        return .success(
            MoELayer(
                index: l, router: router, experts: storage, shared: nil, sharedExpertGate: nil,
                scoreCorrectionBias: nil, expertCount: n, hiddenSize: d, intermediateSize: D, dtype: g.dtype))
    }

    /// Decodes projection `p` of every expert of a stacked layer into `destination` as [n, D, d]
    /// (gate, up) or [n, d, D] (down), in Hugging Face orientation.
    static func readStacked(
        _ checkpoint: Checkpoint, _ layer: MoELayer, w1: String, w3: String?, w2: String?,
        transposed: Bool, _ p: Projection, into destination: UnsafeMutableBufferPointer<Float>
    ) throws(CheckpointError) {
        let n = layer.expertCount, d = layer.hiddenSize, D = layer.intermediateSize
        guard let base = destination.baseAddress, destination.count == n * D * d else {
            throw .malformed(file: checkpoint.path, reason: "layer \(layer.index): buffer size mismatch")
        }
        let name: String
        switch p {
        case .gate: name = w1
        case .up:
            guard let w3 else { throw .missingTensor(file: checkpoint.path, name: "layer \(layer.index) w3 (up projections)") }
            name = w3
        case .down:
            guard let w2 else { throw .missingTensor(file: checkpoint.path, name: "layer \(layer.index) w2 (down projections)") }
            name = w2
        }
        if p != .down && !transposed {
            // Dropless w1/w3 [n*D, d] are already [n, D, d].
            try checkpoint.read(name, into: destination)
            return
        }
        // Default-type w1/w3 [n*d, D] (expert e: rows e*d..<(e+1)*d, transposed to [D, d]), or
        // w2 [n*D, d] of either type (expert e: rows e*D..<(e+1)*D, transposed to [d, D]).
        let rows = p == .down ? D : d, cols = p == .down ? d : D
        var stored = [Float](repeating: 0, count: n * rows * cols)
        try stored.withUnsafeMutableBufferPointer { b throws(CheckpointError) in try checkpoint.read(name, into: b) }
        stored.withUnsafeBufferPointer { s in
            guard let src = s.baseAddress else { return }
            for e in 0..<n {
                let from = src + e * rows * cols, to = base + e * rows * cols
                for i in 0..<rows { for j in 0..<cols { to[j * rows + i] = from[i * cols + j] } }
            }
        }
    }
}
