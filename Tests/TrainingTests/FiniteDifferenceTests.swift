import Checkpoints
import Foundation
import Tensors
import Testing

@testable import Training

/// Each hand-written backward pass against central finite differences of its forward pass
/// (Float32 forward, differences taken in Double with a step of 1e-2 on O(1) inputs, so the
/// truncation and rounding errors stay near 1e-4 relative; tolerance 3e-3 norm-wise).
@Suite struct FiniteDifferenceTests {
    static func random(_ n: Int, _ g: inout SeededGenerator, scale: Float = 1) -> FloatBuffer {
        let b = FloatBuffer(count: n)
        g.fillNormal(b.buffer, std: scale)
        return b
    }

    /// Central differences of `f` with respect to every element of `x` (or `limit` of them).
    static func numericGradient(_ x: FloatBuffer, h: Float = 1e-2, limit: Int = 400, _ f: () -> Double) -> [(Int, Double)] {
        let stride = max(1, x.count / limit)
        var out: [(Int, Double)] = []
        for i in Swift.stride(from: 0, to: x.count, by: stride) {
            let keep = x.pointer[i]
            x.pointer[i] = keep + h
            let up = f()
            x.pointer[i] = keep - h
            let down = f()
            x.pointer[i] = keep
            out.append((i, (up - down) / Double(2 * h)))
        }
        return out
    }

    static func check(_ name: String, analytic: UnsafePointer<Float>, numeric: [(Int, Double)], tolerance: Double = 3e-3) {
        var num = 0.0, den = 0.0
        for (i, v) in numeric {
            let d = Double(analytic[i]) - v
            num += d * d
            den += v * v
        }
        let rel = num.squareRoot() / max(den.squareRoot(), 1e-8)
        #expect(rel < tolerance, "\(name): relative error \(rel) over \(numeric.count) coordinates")
    }

    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Double {
        var s = 0.0
        for i in 0..<n { s += Double(a[i]) * Double(b[i]) }
        return s
    }

    static func config(_ extra: [(String, JSONValue)] = []) throws -> OlmoeConfig {
        var pairs: [(String, JSONValue)] = [
            ("model_type", .string("olmoe")), ("vocab_size", .int(16)), ("hidden_size", .int(8)), ("intermediate_size", .int(6)),
            ("num_hidden_layers", .int(1)), ("num_attention_heads", .int(2)), ("num_key_value_heads", .int(1)),
            ("num_experts", .int(4)), ("num_experts_per_tok", .int(2)), ("rope_theta", .number(100)),
        ]
        pairs += extra
        return try OlmoeConfig(json: .object(pairs), source: "test")
    }

    @Test func rmsNorm() {
        var g = SeededGenerator(seed: 1)
        let rows = 5, dim = 7
        let x = Self.random(rows * dim, &g), w = Self.random(dim, &g), r = Self.random(rows * dim, &g)
        let y = FloatBuffer(count: rows * dim), rstd = FloatBuffer(count: rows)
        func f() -> Double {
            RMSNorm.forward(x: x.pointer, xStride: dim, rows: rows, dim: dim, weight: w.pointer, eps: 1e-5, y: y.pointer, yStride: dim, rstd: rstd.pointer)
            return Self.dot(y.pointer, r.pointer, rows * dim)
        }
        _ = f()
        let dx = FloatBuffer(count: rows * dim), dw = FloatBuffer(count: dim), part = FloatBuffer(count: 64 * dim)
        RMSNorm.backward(
            dy: r.pointer, dyStride: dim, x: x.pointer, xStride: dim, rstd: rstd.pointer, weight: w.pointer, rows: rows, dim: dim,
            dx: dx.pointer, dxStride: dim, accumulate: false, dWeight: dw.pointer, partials: part.pointer)
        Self.check("RMSNorm dx", analytic: dx.pointer, numeric: Self.numericGradient(x, f))
        Self.check("RMSNorm dw", analytic: dw.pointer, numeric: Self.numericGradient(w, f))
    }

    @Test func rotaryBackwardIsTheTranspose() {
        var g = SeededGenerator(seed: 2)
        let table = RotaryTable(theta: 10_000, headDim: 8, length: 6)
        let rows = 12, heads = 3, S = heads * 8
        let x = Self.random(rows * S, &g), y = Self.random(rows * S, &g)
        let rx = FloatBuffer(count: rows * S), ry = FloatBuffer(count: rows * S)
        rx.copy(from: x); ry.copy(from: y)
        table.apply(rx.pointer, rows: rows, rowStride: S, heads: heads, sequenceLength: 6, inverse: false)
        table.apply(ry.pointer, rows: rows, rowStride: S, heads: heads, sequenceLength: 6, inverse: true)
        // <R x, y> = <x, R^T y>
        let a = Self.dot(rx.pointer, y.pointer, rows * S), b = Self.dot(x.pointer, ry.pointer, rows * S)
        #expect(abs(a - b) < 1e-4 * max(1, abs(a)))
        // position 0 is the identity
        #expect((0..<S).allSatisfy { abs(rx.pointer[$0] - x.pointer[$0]) < 1e-7 })
    }

    /// Length 70 covers two query blocks of 64, the second partial.
    @Test(arguments: [5, 70]) func causalAttention(L: Int) {
        var g = SeededGenerator(seed: 3)
        let batch = 2, H = 4, KV = 2, hd = 4
        let S = H * hd + 2 * KV * hd
        let att = CausalAttention(
            batch: batch, length: L, heads: H, keyValueHeads: KV, headDim: hd, qkvStride: S,
            keyOffset: H * hd, valueOffset: H * hd + KV * hd)
        let qkv = Self.random(batch * L * S, &g), r = Self.random(batch * L * H * hd, &g)
        let probs = FloatBuffer(count: batch * H * L * L), out = FloatBuffer(count: batch * L * H * hd)
        func f() -> Double {
            att.forward(qkv: qkv.pointer, probabilities: probs.pointer, output: out.pointer)
            return Self.dot(out.pointer, r.pointer, out.count)
        }
        _ = f()
        let d = FloatBuffer(count: qkv.count), scratch = FloatBuffer(count: batch * KV * L * L)
        att.backward(qkv: qkv.pointer, probabilities: probs.pointer, dOutput: r.pointer, dqkv: d.pointer, scratch: scratch.pointer)
        Self.check("attention dqkv (L \(L))", analytic: d.pointer, numeric: Self.numericGradient(qkv, limit: 300, f))
        // causality: the output of position 0 depends on nothing after it
        _ = f()
        let before = out.pointer[0]
        qkv.pointer[(L - 1) * S + H * hd] += 1
        _ = f()
        #expect(out.pointer[0] == before)
    }

    @Test(arguments: [false, true]) func sparseMoEBlock(normalize: Bool) throws {
        let c = try Self.config([("norm_topk_prob", .bool(normalize))])
        var g = SeededGenerator(seed: 4)
        let T = 9, d = c.hiddenSize, n = c.expertCount, D = c.intermediateSize, k = c.topK
        let moe = SparseMoE(c, tokens: T)
        let a = LayerActivations(c, batch: 1, length: T)
        let h = Self.random(T * d, &g), router = Self.random(n * d, &g, scale: 0.7)
        let w1 = Self.random(n * 2 * D * d, &g, scale: 0.5), w2 = Self.random(n * d * D, &g, scale: 0.5)
        let r = Self.random(T * d, &g), out = FloatBuffer(count: T * d)
        let lb: [Float] = [0.3, -0.2, 0.5, 0.1], zScale: Float = 0.05
        func f() -> Double {
            moe.route(input: h.pointer, router: router.pointer, a)
            moe.forwardExperts(input: h.pointer, gateUp: w1.pointer, down: w2.pointer, a, output: out.pointer)
            var s = Self.dot(out.pointer, r.pointer, T * d)
            for t in 0..<T {
                for e in 0..<n { s += Double(lb[e] * a.routerProbabilities.pointer[t * n + e]) }
                let l = Double(a.logSumExp.pointer[t])
                s += Double(zScale) * l * l
            }
            return s
        }
        _ = f()
        let chosen = Array(UnsafeBufferPointer(start: a.topExpert.pointer, count: T * k))
        let dIn = FloatBuffer(count: T * d), dTop = FloatBuffer(count: T * k), dLogits = FloatBuffer(count: T * n)
        let dW1 = FloatBuffer(count: w1.count), dW2 = FloatBuffer(count: w2.count), dR = FloatBuffer(count: router.count)
        moe.backwardExperts(
            dOutput: r.pointer, gateUp: w1.pointer, down: w2.pointer, a, dTopWeight: dTop.pointer, dInput: dIn.pointer,
            dGateUp: dW1.pointer, dDown: dW2.pointer)
        moe.backwardRouter(a, dTopWeight: dTop.pointer, lbPerExpert: lb, zScale: zScale, dLogits: dLogits.pointer)
        BLAS.gemm(transA: true, m: n, n: d, k: T, a: dLogits.pointer, lda: n, b: h.pointer, ldb: d, c: dR.pointer, ldc: d)
        BLAS.gemm(m: T, n: d, k: n, a: dLogits.pointer, lda: n, b: router.pointer, ldb: d, beta: 1, c: dIn.pointer, ldc: d)
        let h1: Float = 2e-3  // small enough that no token changes its experts
        Self.check("MoE d input", analytic: dIn.pointer, numeric: Self.numericGradient(h, h: h1, f))
        Self.check("MoE d router", analytic: dR.pointer, numeric: Self.numericGradient(router, h: h1, f))
        Self.check("MoE d gate|up", analytic: dW1.pointer, numeric: Self.numericGradient(w1, h: h1, f))
        Self.check("MoE d down", analytic: dW2.pointer, numeric: Self.numericGradient(w2, h: h1, f))
        _ = f()
        #expect(Array(UnsafeBufferPointer(start: a.topExpert.pointer, count: T * k)) == chosen, "routing changed under the perturbations")
    }

    @Test func crossEntropy() {
        var g = SeededGenerator(seed: 5)
        let rows = 6, V = 11
        let logits = Self.random(rows * V, &g, scale: 2)
        let targets: [Int32] = [3, -1, 0, 10, 5, -1]
        let work = FloatBuffer(count: rows * V)
        func f() -> Double {
            work.copy(from: logits)
            return targets.withUnsafeBufferPointer {
                CrossEntropy.lossAndGradient(logits: work.pointer, targets: $0.baseAddress!, rows: rows, vocabulary: V, scale: 1, computeGradient: false).loss
            }
        }
        work.copy(from: logits)
        let r = targets.withUnsafeBufferPointer {
            CrossEntropy.lossAndGradient(logits: work.pointer, targets: $0.baseAddress!, rows: rows, vocabulary: V, scale: 1, computeGradient: true)
        }
        #expect(r.count == 4)
        let analytic = FloatBuffer(count: rows * V)
        analytic.copy(from: work)
        Self.check("cross-entropy dlogits", analytic: analytic.pointer, numeric: Self.numericGradient(logits, h: 1e-2, f))
    }

    /// The whole model's gradient against differences of its total loss, on the clip fixture
    /// (a few coordinates per tensor, steps small enough that routing and clipping do not flip).
    @Test func wholeModelSpotCheck() throws {
        let (model, _) = try NetworkCheckpoint.load(Fixtures.path("olmoe-grad"))
        let B = 2, L = 6
        let ws = ModelWorkspace(model.config, batch: B, length: L)
        var g = SeededGenerator(seed: 6)
        var targets = [Int32](repeating: -1, count: B * L)
        for i in 0..<(B * L) { ws.tokens.pointer[i] = Int32(g.next() % 64); targets[i] = Int32(g.next() % 64) }
        let grads = FloatBuffer(count: model.parameters.count)
        func loss() -> Double {
            targets.withUnsafeBufferPointer {
                model.forwardBackward(ws, targets: $0.baseAddress!, lbWeight: 0.01, zWeight: 0.001, scale: 1, gradients: nil, trainable: [])
            }
            .total(lbWeight: 0.01, zWeight: 0.001)
        }
        _ = targets.withUnsafeBufferPointer {
            model.forwardBackward(
                ws, targets: $0.baseAddress!, lbWeight: 0.01, zWeight: 0.001, scale: 1, gradients: grads, trainable: Set(ParameterGroup.allCases))
        }
        var num = 0.0, den = 0.0
        for t in model.layout.tensors where !t.name.contains("experts.") || t.name.contains("experts.0.") {
            for j in Swift.stride(from: 0, to: t.count, by: max(1, t.count / 3)) {
                let i = t.offset + j, keep = model.parameters.pointer[i], h: Float = 1e-3
                model.parameters.pointer[i] = keep + h
                let up = loss()
                model.parameters.pointer[i] = keep - h
                let down = loss()
                model.parameters.pointer[i] = keep
                let fd = (up - down) / Double(2 * h)
                num += (fd - Double(grads.pointer[i])) * (fd - Double(grads.pointer[i]))
                den += fd * fd
            }
        }
        #expect(num.squareRoot() / den.squareRoot() < 1e-2)
    }
}
