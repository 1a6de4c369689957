import Checkpoints
import Foundation
import Tensors

/// What `moe-inspect info` reports about a checkpoint: family, shape, parameter counts, files
/// and problems found. Computing it reads headers and the routers only, unless `scanExperts`.
public struct ModelSummary: Sendable {
    public var path: String
    public var format: String
    public var family: String
    public var modelType: String?
    public var files: [String]
    public var totalBytes: Int
    public var layerCount: Int
    public var moeLayers: [Int]
    public var denseLayers: [Int]
    public var expertCounts: [Int]
    public var topK: Int?
    public var scoring: RouterScoring
    public var hiddenSize: Int?
    public var intermediateSize: Int?
    public var sharedExperts: Bool
    public var dtypes: [String: Int]
    public var totalParameters: Int
    public var activeParameters: Int?
    public var problems: [String]

    /// Summarises `model`.
    /// - Parameter scanExperts: also scan every routed expert's weights for NaN/Inf (reads the whole checkpoint).
    public init(_ model: MoECheckpoint, scanExperts: Bool = false) {
        let ckpt = model.checkpoint
        path = ckpt.path
        format = ckpt.format.rawValue
        family = model.family
        modelType = ckpt.config?.modelType ?? model.olmoCoreConfig.map { "OLMo-core \($0.moeType.rawValue) MoE" }
        files = ckpt.files
        totalBytes = ckpt.totalBytes
        layerCount = model.layers.count
        let moe = model.moeLayers
        moeLayers = moe.map { $0.index }
        denseLayers = model.layers.compactMap {
            if case let .dense(i) = $0 { return i }; return nil
        }
        expertCounts = Array(Set(moe.map { $0.expertCount })).sorted()
        topK = model.topK
        scoring = model.scoring
        hiddenSize = moe.first?.hiddenSize
        intermediateSize = moe.first?.intermediateSize
        sharedExperts = moe.contains { $0.shared != nil }
        var dt: [String: Int] = [:]
        var total = 0
        for t in ckpt.tensors where !t.name.hasSuffix("_scale_inv") {
            dt[t.dtype.rawValue, default: 0] += t.elementCount
            total += t.elementCount
        }
        dtypes = dt
        totalParameters = total
        var problems = model.problems
        if let k = model.topK, k >= 1 {
            var inactive = 0
            for l in moe {
                // Count the projections this layer really stores (a layout may name only W_g).
                let perExpert: Int
                switch l.experts {
                case let .perExpert(e):
                    let first = e.first
                    perExpert = [first?.gate, first?.up, first?.down].compactMap { $0 }.compactMap { ckpt.info($0)?.elementCount }.reduce(0, +)
                case let .fused(gateUp, down):
                    perExpert = ((ckpt.info(gateUp)?.elementCount ?? 0) + (down.flatMap { ckpt.info($0)?.elementCount } ?? 0)) / max(1, l.expertCount)
                case let .stacked(w1, w3, w2, _):
                    perExpert = [w1, w3, w2].compactMap { $0 }.compactMap { ckpt.info($0)?.elementCount }.reduce(0, +) / max(1, l.expertCount)
                }
                inactive += max(0, l.expertCount - k) * perExpert
            }
            activeParameters = total - inactive
        } else {
            if let k = model.topK { problems.append("top-k is \(k) in the config; it must be at least 1") }
            activeParameters = nil
        }
        if let k = model.topK, let n = moe.first?.expertCount, k > n {
            problems.append("config top-k \(k) exceeds the \(n) experts")
        }
        for l in moe {
            do {
                let r = try model.routerWeight(l)
                if r.hasNonFinite { problems.append("layer \(l.index): router '\(l.router)' contains NaN or Inf") }
                for i in 0..<r.rows {
                    var s: Float = 0
                    for j in 0..<r.columns { s += r[i, j] * r[i, j] }
                    if s == 0 { problems.append("layer \(l.index): router row \(i) is all zeros"); break }
                }
            } catch {
                problems.append("layer \(l.index): cannot read router: \(error)")
            }
            if scanExperts {
                for p in Projection.allCases {
                    do {
                        let w = try model.expertWeights(l, p)
                        if w.hasNonFinite {
                            let per = w.count / max(1, l.expertCount)
                            let bad = (0..<l.expertCount).filter { e in w.storage[(e * per)..<((e + 1) * per)].contains { !$0.isFinite } }
                            problems.append(
                                "layer \(l.index): \(p.rawValue) projection of expert(s) \(bad.prefix(10).map(String.init).joined(separator: ", ")) contains NaN or Inf"
                            )
                        }
                    } catch {
                        if case .missingTensor = error { continue }
                        problems.append("layer \(l.index): cannot read \(p.rawValue) projections: \(error)")
                    }
                }
            }
        }
        self.problems = problems
    }

    /// The summary as a JSON object.
    public var json: JSONValue {
        func opt(_ v: Int?) -> JSONValue { v.map { .int($0) } ?? .null }
        return .object([
            ("path", .string(path)),
            ("format", .string(format)),
            ("family", .string(family)),
            ("model_type", modelType.map { .string($0) } ?? .null),
            ("files", .array(files.map { .string($0) })),
            ("total_bytes", .int(totalBytes)),
            ("layers", .int(layerCount)),
            ("moe_layers", .array(moeLayers.map { .int($0) })),
            ("dense_layers", .array(denseLayers.map { .int($0) })),
            ("experts", expertCounts.count == 1 ? .int(expertCounts[0]) : .array(expertCounts.map { .int($0) })),
            ("top_k", opt(topK)),
            ("scoring", .string(scoring.rawValue)),
            ("hidden_size", opt(hiddenSize)),
            ("expert_intermediate_size", opt(intermediateSize)),
            ("shared_experts", .bool(sharedExperts)),
            ("dtypes", .object(dtypes.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
            ("parameters_total", .int(totalParameters)),
            ("parameters_active_per_token", opt(activeParameters)),
            ("problems", .array(problems.map { .string($0) })),
        ])
    }
}
