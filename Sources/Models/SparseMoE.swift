import Foundation
import Tensors

/// A router's decision for T tokens: logits, scores, and the k chosen experts with their weights.
final class RouterActivations: @unchecked Sendable {
    let tokens: Int, experts: Int, topK: Int
    /// `h R^T` [T, n].
    let logits: FloatBuffer
    /// Scores [T, n]: softmax probabilities, or sigmoid scores (DeepSeek-V3).
    let scores: FloatBuffer
    /// Chosen experts [T, k], best first (lower index first on ties).
    let topExperts: UnsafeMutablePointer<Int32>
    /// Their weights [T, k] (after renormalisation and scaling).
    let topWeights: FloatBuffer

    init(tokens: Int, experts: Int, topK: Int) {
        self.tokens = tokens; self.experts = experts; self.topK = topK
        logits = FloatBuffer(count: tokens * experts)
        scores = FloatBuffer(count: tokens * experts)
        topExperts = .allocate(capacity: max(1, tokens * topK))
        topExperts.initialize(repeating: 0, count: max(1, tokens * topK))
        topWeights = FloatBuffer(count: tokens * topK)
    }

    deinit { topExperts.deallocate() }
}

/// The router of a sparse MoE block (transformers' `*TopKRouter`): logits, scores, top-k.
enum Router {
    /// Routes `input` [T, d] with `router` [n, d] (and the correction bias [n] when the spec uses one).
    static func route(
        input h: UnsafePointer<Float>, hidden d: Int, router: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        spec: RouterSpec, into a: RouterActivations
    ) {
        let T = a.tokens, n = a.experts, k = a.topK
        ParallelGEMM.gemm(transB: true, m: T, n: n, k: d, a: h, lda: d, b: router, ldb: d, c: a.logits.pointer, ldc: n)
        let lg = UnsafeShared(a.logits.pointer), sc = UnsafeShared(a.scores.pointer)
        let te = UnsafeShared(a.topExperts), tw = UnsafeShared(a.topWeights.pointer)
        let bs = bias.map { UnsafeShared($0) }
        Parallel.forRows(T, rowCost: n * (k + 4)) { _, range in
            var choice = [Float](repeating: 0, count: n)
            var taken = [Bool](repeating: false, count: n)
            var groupScore = [Float](), groupKept = [Bool]()
            for t in range {
                let l = lg.value + t * n, s = sc.value + t * n
                switch spec.scoring {
                case .softmax:
                    var mx = -Float.infinity
                    for e in 0..<n { mx = max(mx, l[e]) }
                    var sum: Float = 0
                    for e in 0..<n { let v = Foundation.exp(l[e] - mx); s[e] = v; sum += v }
                    for e in 0..<n { s[e] /= sum }
                case .sigmoid:
                    for e in 0..<n { s[e] = 1 / (1 + Foundation.exp(-l[e])) }
                }
                for e in 0..<n { choice[e] = s[e] + (bs?.value[e] ?? 0) }
                if case let .groupLimited(groups, topGroups, sumOfTopTwo) = spec.selection {
                    let size = n / groups
                    if groupScore.count != groups { groupScore = .init(repeating: 0, count: groups); groupKept = .init(repeating: false, count: groups) }
                    for g in 0..<groups {
                        var best = -Float.infinity, second = -Float.infinity
                        for e in (g * size)..<((g + 1) * size) {
                            let v = choice[e]
                            if v > best { second = best; best = v } else if v > second { second = v }
                        }
                        groupScore[g] = sumOfTopTwo ? best + second : best
                        groupKept[g] = false
                    }
                    for _ in 0..<topGroups {
                        var best = -1
                        for g in 0..<groups where !groupKept[g] && (best < 0 || groupScore[g] > groupScore[best]) { best = g }
                        if best >= 0 { groupKept[best] = true }
                    }
                    let masked: Float = sumOfTopTwo ? -.infinity : 0
                    for g in 0..<groups where !groupKept[g] {
                        for e in (g * size)..<((g + 1) * size) { choice[e] = masked }
                    }
                }
                var chosenSum: Float = 0
                choice.withUnsafeBufferPointer { c in
                    taken.withUnsafeMutableBufferPointer { tk in
                        guard let cb = c.baseAddress, let tb = tk.baseAddress else { return }
                        TopK.select(cb, count: n, k: k, taken: tb) { slot, best in
                            te.value[t * k + slot] = Int32(best)
                            // the weight: the score (V3: without the correction bias; V2: as masked)
                            let w = spec.correctionBias ? s[best] : cb[best]
                            tw.value[t * k + slot] = w
                            chosenSum += w
                        }
                    }
                }
                if spec.normalizeTopK {
                    let den = chosenSum + spec.normalizationEpsilon
                    for slot in 0..<k { tw.value[t * k + slot] /= den }
                }
                if spec.scalingFactor != 1 { for slot in 0..<k { tw.value[t * k + slot] *= spec.scalingFactor } }
            }
        }
    }
}

/// SwiGLU feed-forward `W_down (SiLU(W_gate x) * W_up x)` over T rows, through scratch sized on demand.
enum FeedForward {
    /// `output` [T, d] (overwritten, or added to with `accumulate`) = MLP(`input` [T, d]).
    static func swiglu(
        input x: UnsafePointer<Float>, rows T: Int, hidden d: Int, intermediate D: Int,
        gate: UnsafePointer<Float>, up: UnsafePointer<Float>, down: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>, accumulate: Bool = false, scratch S: Scratch
    ) {
        let g = S(.feedForwardGate, T * D), u = S(.feedForwardUp, T * D)
        ParallelGEMM.batch([
            .init(transB: true, m: T, n: D, k: d, a: x, lda: d, b: gate, ldb: d, c: g, ldc: D),
            .init(transB: true, m: T, n: D, k: d, a: x, lda: d, b: up, ldb: d, c: u, ldc: D),
        ])
        let gp = UnsafeShared(g), up2 = UnsafeShared(u)
        Parallel.forRows(T, rowCost: D) { _, range in
            for t in range { SwiGLU.forward(gate: gp.value + t * D, up: up2.value + t * D, out: gp.value + t * D, count: D) }
        }
        ParallelGEMM.gemm(
            transB: true, m: T, n: d, k: D, a: g, lda: D, b: down, ldb: D,
            beta: accumulate ? 1 : 0, c: output, ldc: d)
    }
}

/// The routed experts of a sparse MoE block (transformers' `*Experts`): each token's output is
/// the sum over its k experts, in ascending expert order, of weight * expert(x).
///
/// Tokens are gathered per expert; experts are taken in consecutive groups whose gathered rows
/// fit `rowBudget`, every expert of a group running its GEMMs concurrently.
enum RoutedExperts {
    /// Rows of gathered activations held at once (at least one expert's rows).
    static let scratchBytes = 192 << 20

    /// `output` [T, d] = sum of the routed experts' weighted outputs for `input` [T, d], the
    /// tokens' choices in `topExperts` / `topWeights` [T, k].
    static func forward(
        input x: UnsafePointer<Float>, tokens T: Int, hidden d: Int, intermediate D: Int, experts n: Int, topK k: Int,
        topExperts: UnsafePointer<Int32>, topWeights: UnsafePointer<Float>,
        gate: UnsafePointer<Float>, up: UnsafePointer<Float>, down: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>, scratch S: Scratch
    ) {
        // rows of expert e: tokens ascending
        var start = [Int](repeating: 0, count: n + 1)
        for i in 0..<(T * k) { start[Int(topExperts[i]) + 1] += 1 }
        for e in 0..<n { start[e + 1] += start[e] }
        var rowToken = [Int32](repeating: 0, count: T * k), rowSlot = [Int32](repeating: 0, count: T * k)
        var cursor = start
        for t in 0..<T {
            for s in 0..<k {
                let e = Int(topExperts[t * k + s])
                rowToken[cursor[e]] = Int32(t); rowSlot[cursor[e]] = Int32(s)
                cursor[e] += 1
            }
        }
        output.update(repeating: 0, count: T * d)
        let perRow = 4 * (2 * d + 2 * D)
        let budget = max(1, scratchBytes / perRow)
        var e0 = 0
        let out = UnsafeShared(output), xs = UnsafeShared(x), tw = UnsafeShared(topWeights)
        while e0 < n {
            var e1 = e0 + 1
            while e1 < n && start[e1 + 1] - start[e0] <= budget { e1 += 1 }
            let r0 = start[e0], rows = start[e1] - r0
            if rows > 0 {
                let xg = S(.expertInput, rows * d), gu = S(.expertGateUp, rows * 2 * D), y = S(.expertOutput, rows * d)
                let xgp = UnsafeShared(xg)
                rowToken.withUnsafeBufferPointer { rtb in
                    guard let rtBase = rtb.baseAddress else { return }
                    let rt = UnsafeShared(rtBase)
                    Parallel.forRows(rows, rowCost: d) { _, range in
                        for r in range { (xgp.value + r * d).update(from: xs.value + Int(rt.value[r0 + r]) * d, count: d) }
                    }
                }
                var calls: [ParallelGEMM.Call] = []
                for e in e0..<e1 where start[e + 1] > start[e] {
                    let m = start[e + 1] - start[e], off = start[e] - r0
                    calls.append(
                        .init(
                            transB: true, m: m, n: D, k: d, a: xg + off * d, lda: d, b: gate + e * D * d, ldb: d,
                            c: gu + off * 2 * D, ldc: 2 * D))
                    calls.append(
                        .init(
                            transB: true, m: m, n: D, k: d, a: xg + off * d, lda: d, b: up + e * D * d, ldb: d,
                            c: gu + off * 2 * D + D, ldc: 2 * D))
                }
                ParallelGEMM.batch(calls)
                let g = UnsafeShared(gu)
                Parallel.forRows(rows, rowCost: 2 * D) { _, range in
                    for r in range { let p = g.value + r * 2 * D; SwiGLU.forward(gate: p, up: p + D, out: p, count: D) }
                }
                calls = []
                for e in e0..<e1 where start[e + 1] > start[e] {
                    let m = start[e + 1] - start[e], off = start[e] - r0
                    calls.append(
                        .init(
                            transB: true, m: m, n: d, k: D, a: gu + off * 2 * D, lda: 2 * D, b: down + e * d * D, ldb: D,
                            c: y + off * d, ldc: d))
                }
                ParallelGEMM.batch(calls)
                // add weight * y to each token, experts in ascending order (a token meets each expert once)
                let yp = UnsafeShared(y)
                for e in e0..<e1 where start[e + 1] > start[e] {
                    let lo = start[e], hi = start[e + 1]
                    rowToken.withUnsafeBufferPointer { rtb in
                        rowSlot.withUnsafeBufferPointer { rsb in
                            guard let rtBase = rtb.baseAddress, let rsBase = rsb.baseAddress else { return }
                            let rt = UnsafeShared(rtBase), rs = UnsafeShared(rsBase)
                            Parallel.forRows(hi - lo, rowCost: d) { _, range in
                                for i in range {
                                    let r = lo + i, t = Int(rt.value[r])
                                    let w = tw.value[t * k + Int(rs.value[r])]
                                    let o = out.value + t * d, src = yp.value + (r - r0) * d
                                    for j in 0..<d { o[j] += src[j] * w }
                                }
                            }
                        }
                    }
                }
            }
            e0 = e1
        }
    }
}
