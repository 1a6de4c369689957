import Checkpoints
import Foundation
import Tensors
import Testing

@testable import Training

@Suite struct LayoutAndAccumulationTests {
    /// The blocks of a split product do not depend on the cores: run concurrently or in order
    /// they give the same bits, and they agree with one OpenBLAS call to rounding.
    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func parallelGEMMDoesNotDependOnCores(trans: (Bool, Bool)) {
        var g = SeededGenerator(seed: 9)
        for (m, n, k) in [(300, 70, 129), (40, 513, 256), (257, 257, 33)] {
            let a = FloatBuffer(count: m * k), b = FloatBuffer(count: k * n), c0 = FloatBuffer(count: m * n)
            g.fillNormal(a.buffer, std: 1); g.fillNormal(b.buffer, std: 1); g.fillNormal(c0.buffer, std: 1)
            let c1 = FloatBuffer(c0.array), c2 = FloatBuffer(c0.array)
            let lda = trans.0 ? m : k, ldb = trans.1 ? k : n
            BLAS.gemm(
                transA: trans.0, transB: trans.1, m: m, n: n, k: k, alpha: 0.5, a: a.pointer, lda: lda, b: b.pointer, ldb: ldb, beta: 1, c: c0.pointer, ldc: n)
            ParallelGEMM.gemm(
                transA: trans.0, transB: trans.1, m: m, n: n, k: k, alpha: 0.5, a: a.pointer, lda: lda, b: b.pointer, ldb: ldb, beta: 1, c: c1.pointer, ldc: n)
            ParallelGEMM.gemm(
                transA: trans.0, transB: trans.1, m: m, n: n, k: k, alpha: 0.5, a: a.pointer, lda: lda, b: b.pointer, ldb: ldb, beta: 1, c: c2.pointer, ldc: n,
                concurrent: false)
            #expect(c1.array == c2.array, "\(m)x\(n)x\(k) trans \(trans): concurrent and ordered blocks differ")
            #expect(Fixtures.relativeError(c1.array, c0.array) < 1e-6, "\(m)x\(n)x\(k) trans \(trans)")
        }
    }

    /// Two micro-batches of 2 rows accumulate the gradient of one batch of 4 rows (LM loss,
    /// equal target counts per micro-batch).
    @Test func accumulationAveragesMicroBatches() throws {
        let (model, _) = try NetworkCheckpoint.load(Fixtures.path("olmoe-grad"))
        let L = 6
        var g = SeededGenerator(seed: 10)
        let tokens = (0..<(4 * L)).map { _ in Int32(g.next() % 64) }
        let targets = (0..<(4 * L)).map { _ in Int32(g.next() % 64) }
        let all = Set(ParameterGroup.allCases)
        let full = FloatBuffer(count: model.parameters.count), acc = FloatBuffer(count: model.parameters.count)
        let ws4 = ModelWorkspace(model.config, batch: 4, length: L)
        for i in 0..<(4 * L) { ws4.tokens.pointer[i] = tokens[i] }
        _ = targets.withUnsafeBufferPointer {
            model.forwardBackward(ws4, targets: $0.baseAddress!, lbWeight: 0, zWeight: 0, scale: 1, gradients: full, trainable: all)
        }
        let ws2 = ModelWorkspace(model.config, batch: 2, length: L)
        for half in 0..<2 {
            for i in 0..<(2 * L) { ws2.tokens.pointer[i] = tokens[half * 2 * L + i] }
            let t = Array(targets[(half * 2 * L)..<((half + 1) * 2 * L)])
            _ = t.withUnsafeBufferPointer {
                model.forwardBackward(ws2, targets: $0.baseAddress!, lbWeight: 0, zWeight: 0, scale: 0.5, gradients: acc, trainable: all)
            }
        }
        #expect(Fixtures.relativeError(acc.array, full.array) < 1e-5)
    }

    /// A checkpoint with transformers' fused expert tensors loads into the same parameters and
    /// is saved back under the fused names.
    @Test func fusedExpertCheckpointsRoundTrip() throws {
        let dir = temporaryFolder("fused")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (model, format) = try NetworkCheckpoint.load(Fixtures.path("olmoe-grad"))
        var fused = format
        fused.fusedExperts = true
        try NetworkCheckpoint.save(model, format: fused, dtype: nil, to: dir)
        let written = try Checkpoint.open(dir)
        #expect(written.info("model.layers.0.mlp.experts.gate_up_proj")?.shape == [8, 32, 32])
        #expect(written.info("model.layers.1.mlp.experts.down_proj")?.shape == [8, 32, 16])
        #expect(!written.contains("model.layers.0.mlp.experts.0.gate_proj.weight"))
        // gate rows first, then up rows, per expert
        let gu = try written.tensor("model.layers.0.mlp.experts.gate_up_proj")
        let original = try Checkpoint.open(Fixtures.path("olmoe-grad"))
        let up3 = try original.tensor("model.layers.0.mlp.experts.3.up_proj.weight")
        #expect(Array(gu.storage[(3 * 32 * 32 + 16 * 32)..<(4 * 32 * 32)]) == up3.storage)
        let (back, backFormat) = try NetworkCheckpoint.load(dir)
        #expect(backFormat.fusedExperts)
        #expect(back.parameters.array == model.parameters.array)
    }
}
