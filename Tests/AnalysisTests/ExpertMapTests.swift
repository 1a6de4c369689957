import Checkpoints
import Embedding
import Foundation
import MoELayout
import Tensors
import TestSupport
import Testing

@testable import Analysis

/// t-SNE maps of a checkpoint whose experts are coupled by construction, and of one whose are not.
@Suite struct ExpertMapTests {
    /// An OLMoE-layout checkpoint with n experts whose W_g rows lie near their router row
    /// (`coupled`) or are independent noise.
    static func checkpoint(coupled: Bool) throws -> MoECheckpoint {
        let n = 6, d = 24, D = 20
        var g = SeededGenerator(seed: coupled ? 1 : 2)
        func normal(_ c: Int) -> [Float] { (0..<c).map { _ in Float(g.nextNormal()) } }
        let router = normal(n * d)
        var gates: [[Float]] = []
        for e in 0..<n {
            var w: [Float] = []
            for _ in 0..<D {
                let noise = normal(d)
                w += coupled ? (0..<d).map { router[e * d + $0] + 0.25 * noise[$0] } : noise
            }
            gates.append(w)
        }
        var tensors: [(TensorSpec, Tensor)] = [
            (TensorSpec(name: "model.layers.0.mlp.gate.weight", dtype: .f32, shape: [n, d]), Tensor(shape: [n, d], storage: router))
        ]
        for e in 0..<n {
            tensors.append(
                (TensorSpec(name: "model.layers.0.mlp.experts.\(e).gate_proj.weight", dtype: .f32, shape: [D, d]), Tensor(shape: [D, d], storage: gates[e])))
        }
        let dir = NSTemporaryDirectory() + "moe-map-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try SafetensorsWriter.write(tensors, to: dir + "/model.safetensors")
        return try MoECheckpoint(
            try Checkpoint.open(dir),
            layout: LayoutSpec(
                family: "test", router: "model.layers.{layer}.mlp.gate.weight",
                expertGate: "model.layers.{layer}.mlp.experts.{expert}.gate_proj.weight", topK: 2))
    }

    @Test func couplingShowsAsClustersAroundRouterRows() throws {
        var tsne = TSNE(perplexity: 10, method: .exact, iterations: 750, seed: 0)
        tsne.threads = 1
        let coupled = try Self.checkpoint(coupled: true), plain = try Self.checkpoint(coupled: false)
        let a = try ExpertMap.make(try ExpertPoints.neurons(coupled, layer: coupled.moeLayers[0], perExpert: nil, seed: 0), tsne: tsne, labelBy: .expert)
        let b = try ExpertMap.make(try ExpertPoints.neurons(plain, layer: plain.moeLayers[0], perExpert: nil, seed: 0), tsne: tsne, labelBy: .expert)
        #expect(a.points.data.rows == 6 * 20 + 6)
        #expect(a.points.kinds.filter { $0 == .router }.count == 6)
        // Coupled experts: tight clusters in weight space and in the map; independent noise: none.
        #expect(try #require(a.silhouetteOriginal) > 0.5)
        #expect(try #require(a.silhouette2D) > 0.6)
        #expect(try #require(b.silhouette2D) < 0.1)
        // Each router row lands inside its own expert's cluster: its nearest map neighbour is one of its rows.
        for r in a.points.kinds.indices where a.points.kinds[r] == .router {
            var best = -1, bestD = Float.infinity
            for i in a.points.kinds.indices where a.points.kinds[i] != .router {
                let dx = a.embedding[i, 0] - a.embedding[r, 0], dy = a.embedding[i, 1] - a.embedding[r, 1]
                if dx * dx + dy * dy < bestD { bestD = dx * dx + dy * dy; best = i }
            }
            #expect(a.points.experts[best] == a.points.experts[r])
        }
    }

    @Test func expertSketchPreservesDistances() throws {
        let model = try Self.checkpoint(coupled: true)
        let pts = try ExpertPoints.experts(model, layers: model.moeLayers, allProjections: false, seed: 3)
        let gate = try model.expertWeights(model.moeLayers[0], .gate)
        #expect(pts.data.shape == [6, ExpertPoints.sketchDimensions])
        // With fewer coordinates than buckets the sketch is nearly an isometry.
        let per = gate.count / 6
        for (a, b) in [(0, 1), (2, 5)] {
            var exact = 0.0, sketched = 0.0
            for k in 0..<per { let t = Double(gate.storage[a * per + k] - gate.storage[b * per + k]); exact += t * t }
            for k in 0..<pts.data.columns { let t = Double(pts.data[a, k] - pts.data[b, k]); sketched += t * t }
            #expect(abs(sketched.squareRoot() / exact.squareRoot() - 1) < 0.15)
        }
    }
}
