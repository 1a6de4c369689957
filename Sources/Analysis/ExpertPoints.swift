import Checkpoints
import Dispatch
import Embedding
import Foundation
import MoELayout
import Tensors

/// Points to embed with t-SNE, with what each point is.
public struct ExpertPoints: Sendable {
    /// What a point stands for.
    public enum Kind: String, Sendable { case expert, neuron, router }

    /// One point per row, [N, dims].
    public var data: Tensor
    /// Decoder layer of each point.
    public var layers: [Int]
    /// Expert of each point (for a router row: the expert it routes to).
    public var experts: [Int]
    /// What each point is.
    public var kinds: [Kind]
    /// How the vectors were formed, for captions.
    public var note: String

    /// Dimensions above which expert vectors are count-sketched (see `experts`).
    public static let sketchDimensions = 4096

    /// One point per routed expert of each selected layer: its flattened W_g (or W_g, W_p and W_o
    /// together with `allProjections`).
    ///
    /// Flattened experts have D*d (OLMoE: 2M) coordinates, too many to hold for all layers, so
    /// each vector is count-sketched to 4096 coordinates: coordinate k goes to bucket h(k) with
    /// sign s(k) (both fixed by `seed`), which preserves inner products and distances in
    /// expectation (Charikar et al., 2002). One layer's weights are read at a time.
    public static func experts(_ model: MoECheckpoint, layers: [MoELayer], allProjections: Bool, seed: UInt64) throws -> ExpertPoints {
        let total = layers.reduce(0) { $0 + $1.expertCount }
        let dims = sketchDimensions
        var data = Tensor(shape: [total, dims])
        var ls: [Int] = [], es: [Int] = []
        var row = 0
        let projections: [Projection] = allProjections ? [.gate, .up, .down] : [.gate]
        for layer in layers {
            for (pi, p) in projections.enumerated() {
                let w = try model.expertWeights(layer, p)
                let per = w.count / layer.expertCount
                let base = row
                w.storage.withUnsafeBufferPointer { src in
                    data.storage.withUnsafeMutableBufferPointer { dst in
                        let s = UnsafeShared(src), d = UnsafeShared(dst)
                        DispatchQueue.concurrentPerform(iterations: layer.expertCount) { e in
                            let out = d.value.baseAddress! + (base + e) * dims
                            let v = s.value.baseAddress! + e * per
                            let salt = seed &+ UInt64(pi) &* 0x9E37_79B9_7F4A_7C15
                            for k in 0..<per {
                                let h = hash(UInt64(k) ^ salt)
                                let bucket = Int(h % UInt64(dims))
                                out[bucket] += (h >> 63) == 0 ? v[k] : -v[k]
                            }
                        }
                    }
                }
            }
            ls += Array(repeating: layer.index, count: layer.expertCount)
            es += Array(0..<layer.expertCount)
            row += layer.expertCount
        }
        let what = allProjections ? "W_g, W_p and W_o" : "W_g"
        return ExpertPoints(
            data: data, layers: ls, experts: es, kinds: Array(repeating: .expert, count: total),
            note: "one point per expert: its flattened \(what), count-sketched to \(dims) coordinates")
    }

    /// Rows of every expert's W_g in one layer (`perExpert` sampled rows each, all if nil) and the
    /// router rows R[i], every vector scaled to unit length so that both kinds are comparable:
    /// the view where coupling shows as each expert's rows gathering around its router row.
    public static func neurons(_ model: MoECheckpoint, layer: MoELayer, perExpert: Int?, seed: UInt64) throws -> ExpertPoints {
        let gate = try model.expertWeights(layer, .gate)
        let router = try model.routerWeight(layer)
        let n = layer.expertCount, D = layer.intermediateSize, d = layer.hiddenSize
        let k = min(D, perExpert ?? D)
        var rows: [Float] = []
        rows.reserveCapacity((n * k + n) * d)
        var ls: [Int] = [], es: [Int] = [], kinds: [Kind] = []
        let root = SeededGenerator(seed: seed)
        for e in 0..<n {
            var g = root.split(UInt64(e))
            var idx = Array(0..<D)
            if k < D { for i in 0..<k { idx.swapAt(i, i + Int(g.next() % UInt64(D - i))) } }
            for r in idx.prefix(k).sorted() {
                let start = (e * D + r) * d
                rows += unit(gate.storage[start..<(start + d)])
                ls.append(layer.index); es.append(e); kinds.append(.neuron)
            }
        }
        for e in 0..<n {
            rows += unit(router.storage[(e * d)..<((e + 1) * d)])
            ls.append(layer.index); es.append(e); kinds.append(.router)
        }
        return ExpertPoints(
            data: Tensor(shape: [kinds.count, d], storage: rows), layers: ls, experts: es, kinds: kinds,
            note: "rows of each expert's W_g (\(k) per expert) and the router rows R[i], each scaled to unit length")
    }

    static func unit(_ v: ArraySlice<Float>) -> [Float] {
        let norm = v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        return norm > 0 ? v.map { Float(Double($0) / norm) } : Array(v)
    }

    @inline(__always) static func hash(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A t-SNE map of expert points with its cluster quality.
public struct ExpertMap: Sendable {
    public var points: ExpertPoints
    /// 2-D coordinates [N, 2].
    public var embedding: Tensor
    /// KL divergence of the final map (unexaggerated P).
    public var klDivergence: Double
    /// Silhouette by the colouring label in the 2-D map and in the original space (nil when
    /// every label has a single point).
    public var silhouette2D: Double?
    public var silhouetteOriginal: Double?
    /// The label used for colours and silhouettes.
    public var labelKind: MapLabel

    /// Embeds `points` with `tsne` and scores the clusters by `labelBy`.
    public static func make(
        _ points: ExpertPoints, tsne: TSNE, labelBy: MapLabel,
        progress: ((TSNEProgress) -> Void)? = nil
    ) throws -> ExpertMap {
        let result = try tsne.fit(points.data, progress: progress)
        let labels = labelBy == .layer ? points.layers : points.experts
        var s2: Double?, sOrig: Double?
        let counts = Dictionary(grouping: labels, by: { $0 }).mapValues(\.count)
        if counts.count >= 2 && counts.values.contains(where: { $0 > 1 }) && counts.count < labels.count {
            s2 = try? Silhouette.score(result.embedding, labels: labels)
            sOrig = try? Silhouette.score(points.data, labels: labels)
        }
        return ExpertMap(
            points: points, embedding: result.embedding, klDivergence: result.klDivergence,
            silhouette2D: s2, silhouetteOriginal: sOrig, labelKind: labelBy)
    }
}

/// What the points of a t-SNE map are.
public enum MapPoints: String, Sendable, CaseIterable {
    /// One point per expert (its flattened, sketched W_g).
    case experts
    /// Rows of every expert's W_g in one layer, with the router rows.
    case neurons
}

/// The label that colours a map's points and groups them for the silhouette score.
public enum MapLabel: String, Sendable, CaseIterable {
    /// The expert a point belongs to.
    case expert
    /// The decoder layer a point belongs to.
    case layer
}
