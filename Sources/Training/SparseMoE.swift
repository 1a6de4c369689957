import Foundation
import Tensors

/// The sparse Mixture-of-Experts block of OLMoE (transformers' `OlmoeSparseMoeBlock`):
/// router logits `h R^T`, Float32 softmax over the n experts, the k largest probabilities as
/// weights (renormalised to sum 1 only with `norm_topk_prob`), and SwiGLU experts
/// `W_down (SiLU(W_gate h) * W_up h)` combined with those weights.
///
/// Tokens are gathered per expert so that each expert runs one GEMM for gate and up together
/// ([m_e, d] x [d, 2D]) and one for down ([m_e, D] x [D, d]).
struct SparseMoE {
    let tokens: Int, hidden: Int, intermediate: Int, experts: Int, topK: Int, normalizeTopK: Bool

    init(_ c: OlmoeConfig, tokens: Int) {
        self.tokens = tokens
        hidden = c.hiddenSize
        intermediate = c.intermediateSize
        experts = c.expertCount
        topK = c.topK
        normalizeTopK = c.normalizeTopKProbabilities
    }

    /// Router: logits, probabilities, log-sum-exp, top-k and the dispatch of rows to experts.
    func route(input h: UnsafePointer<Float>, router: UnsafePointer<Float>, _ a: LayerActivations) {
        let T = tokens, n = experts, k = topK, norm = normalizeTopK
        ParallelGEMM.gemm(transB: true, m: T, n: n, k: hidden, a: h, lda: hidden, b: router, ldb: hidden, c: a.routerLogits.pointer, ldc: n)
        let lg = UnsafeShared(a.routerLogits.pointer), pr = UnsafeShared(a.routerProbabilities.pointer)
        let lse = UnsafeShared(a.logSumExp.pointer), te = UnsafeShared(a.topExpert.pointer), tw = UnsafeShared(a.topWeight.pointer)
        Parallel.forRows(T, rowCost: n * (k + 2)) { _, range in
            for t in range {
                let l = lg.value + t * n, p = pr.value + t * n
                var mx = -Float.infinity
                for e in 0..<n { mx = max(mx, l[e]) }
                var sum: Float = 0
                for e in 0..<n { let v = exp(l[e] - mx); p[e] = v; sum += v }
                let inv = 1 / sum
                for e in 0..<n { p[e] *= inv }
                lse.value[t] = mx + log(sum)
                // top-k by repeated maximum: largest first, lower index first on ties
                var chosenSum: Float = 0
                for s in 0..<k {
                    var best = -1
                    var bestValue = -Float.infinity
                    for e in 0..<n where p[e] > bestValue {
                        var taken = false
                        for r in 0..<s where te.value[t * k + r] == Int32(e) { taken = true; break }
                        if !taken { best = e; bestValue = p[e] }
                    }
                    if best < 0 {  // all remaining probabilities underflowed to -inf ordering; take the first free
                        for e in 0..<n {
                            var taken = false; for r in 0..<s where te.value[t * k + r] == Int32(e) { taken = true }; if !taken { best = e; break }
                        }
                    }
                    te.value[t * k + s] = Int32(best)
                    tw.value[t * k + s] = p[best]
                    chosenSum += p[best]
                }
                if norm { for s in 0..<k { tw.value[t * k + s] /= chosenSum } }
            }
        }
        // dispatch rows: expert-major, tokens ascending
        let start = a.expertStart.pointer, rowToken = a.rowToken.pointer, rowOf = a.rowOfSlot.pointer
        start.update(repeating: 0, count: n + 1)
        for i in 0..<(T * k) { start[Int(te.value[i]) + 1] += 1 }
        for e in 0..<n { start[e + 1] += start[e] }
        var cursor = [Int32](repeating: 0, count: n)
        for e in 0..<n { cursor[e] = start[e] }
        for t in 0..<T {
            for s in 0..<k {
                let e = Int(te.value[t * k + s])
                let r = cursor[e]
                cursor[e] += 1
                rowToken[Int(r)] = Int32(t)
                rowOf[t * k + s] = r
            }
        }
    }

    /// (expert, first row, rows) of every expert that received rows.
    func expertRows(_ a: LayerActivations) -> [(Int, Int, Int)] {
        let start = a.expertStart.pointer
        return (0..<experts).compactMap { e in
            let r0 = Int(start[e]), m = Int(start[e + 1]) - r0
            return m > 0 ? (e, r0, m) : nil
        }
    }

    /// Expert forward: writes `output` [T, d] = sum over chosen experts of weight * expert(h).
    /// `gateUp` [n, 2D, d] (gate rows first per expert), `down` [n, d, D]. With `bf16` the
    /// products take BF16 copies of their operands.
    func forwardExperts(
        input h: UnsafePointer<Float>, gateUp w1: UnsafePointer<Float>, down w2: UnsafePointer<Float>,
        _ a: LayerActivations, output: UnsafeMutablePointer<Float>, bf16: BF16Shadows? = nil
    ) {
        let d = hidden, D = intermediate, k = topK, rows = tokens * topK
        let hs = UnsafeShared(UnsafeMutablePointer(mutating: h)), xg = UnsafeShared(a.expertInput.pointer)
        let rt = UnsafeShared(a.rowToken.pointer)
        Parallel.forRows(rows, rowCost: d) { _, range in
            for r in range { (xg.value + r * d).update(from: hs.value + Int(rt.value[r]) * d, count: d) }
        }
        let start = a.expertStart.pointer
        bf16?.round(a.expertInput)
        // every expert's blocks in one concurrent pass (experts touch disjoint rows)
        ParallelGEMM.batch(
            expertRows(a).map { (e, r0, m) in
                ParallelGEMM.Call(
                    transB: true, m: m, n: 2 * D, k: d, a: a.expertInput.pointer + r0 * d, lda: d,
                    b: w1 + e * 2 * D * d, ldb: d, c: a.gateUp.pointer + r0 * 2 * D, ldc: 2 * D)
            }, bf16: bf16)
        let gu = UnsafeShared(a.gateUp.pointer), act = UnsafeShared(a.swiglu.pointer)
        Parallel.forRows(rows, rowCost: 2 * D) { _, range in
            for r in range {
                let g = gu.value + r * 2 * D, u = g + D, o = act.value + r * D
                SwiGLU.forward(gate: g, up: u, out: o, count: D)
            }
        }
        bf16?.round(a.swiglu)
        ParallelGEMM.batch(
            expertRows(a).map { (e, r0, m) in
                ParallelGEMM.Call(
                    transB: true, m: m, n: d, k: D, a: a.swiglu.pointer + r0 * D, lda: D,
                    b: w2 + e * d * D, ldb: D, c: a.expertOutput.pointer + r0 * d, ldc: d)
            }, bf16: bf16)
        _ = start
        // combine per token, experts in ascending order as transformers' index_add_ does
        let y = UnsafeShared(a.expertOutput.pointer), out = UnsafeShared(output)
        let te = UnsafeShared(a.topExpert.pointer), tw = UnsafeShared(a.topWeight.pointer), ro = UnsafeShared(a.rowOfSlot.pointer)
        Parallel.forRows(tokens, rowCost: d * k) { _, range in
            var order = [Int](repeating: 0, count: k)
            for t in range {
                for s in 0..<k { order[s] = s }
                order.sort { te.value[t * k + $0] < te.value[t * k + $1] }
                let o = out.value + t * d
                o.update(repeating: 0, count: d)
                for s in order {
                    let w = tw.value[t * k + s], yr = y.value + Int(ro.value[t * k + s]) * d
                    for j in 0..<d { o[j] += yr[j] * w }
                }
            }
        }
    }

    /// Expert backward. `dOutput` [T, d] is the gradient of the block's output. Writes
    /// `dInput` [T, d] (overwritten) and `dTopWeight` [T, k]; adds weight gradients to `dGateUp`,
    /// `dDown` when given. Overwrites the layer's expert activations. `bf16` as in the forward pass.
    func backwardExperts(
        dOutput: UnsafePointer<Float>, gateUp w1: UnsafePointer<Float>, down w2: UnsafePointer<Float>,
        _ a: LayerActivations, dTopWeight: UnsafeMutablePointer<Float>, dInput: UnsafeMutablePointer<Float>,
        dGateUp: UnsafeMutablePointer<Float>?, dDown: UnsafeMutablePointer<Float>?, bf16: BF16Shadows? = nil
    ) {
        let d = hidden, D = intermediate, k = topK, rows = tokens * topK
        let dO = UnsafeShared(UnsafeMutablePointer(mutating: dOutput)), y = UnsafeShared(a.expertOutput.pointer)
        let tw = UnsafeShared(a.topWeight.pointer), ro = UnsafeShared(a.rowOfSlot.pointer), dtw = UnsafeShared(dTopWeight)
        // dw = <dOut[t], Y[row]>, then Y <- dY = w * dOut[t]
        Parallel.forRows(tokens, rowCost: d * k) { _, range in
            for t in range {
                let g = dO.value + t * d
                for s in 0..<k {
                    let yr = y.value + Int(ro.value[t * k + s]) * d
                    let dot = VectorMath.dot(g, yr, d)
                    dtw.value[t * k + s] = dot
                    let w = tw.value[t * k + s]
                    for j in 0..<d { yr[j] = g[j] * w }
                }
            }
        }
        let dY = a.expertOutput.pointer
        let rowsOf = expertRows(a)
        bf16?.round(a.expertOutput)
        // all weight gradients (reading the activations) before dAct overwrites them
        if let dDown {
            ParallelGEMM.batch(
                rowsOf.map { (e, r0, m) in
                    ParallelGEMM.Call(
                        transA: true, m: d, n: D, k: m, a: dY + r0 * d, lda: d, b: a.swiglu.pointer + r0 * D, ldb: D,
                        beta: 1, c: dDown + e * d * D, ldc: D)
                }, bf16: bf16)
        }
        // dAct = dY W_down, into the SwiGLU buffer
        ParallelGEMM.batch(
            rowsOf.map { (e, r0, m) in
                ParallelGEMM.Call(m: m, n: D, k: d, a: dY + r0 * d, lda: d, b: w2 + e * d * D, ldb: D, c: a.swiglu.pointer + r0 * D, ldc: D)
            }, bf16: bf16)
        let gu = UnsafeShared(a.gateUp.pointer), dact = UnsafeShared(a.swiglu.pointer)
        Parallel.forRows(rows, rowCost: 2 * D) { _, range in
            for r in range {
                let g = gu.value + r * 2 * D, u = g + D, da = dact.value + r * D
                SwiGLU.backward(gate: g, up: u, dOut: da, count: D)
            }
        }
        let dGU = a.gateUp.pointer
        bf16?.round(a.gateUp)
        if let dGateUp {
            ParallelGEMM.batch(
                rowsOf.map { (e, r0, m) in
                    ParallelGEMM.Call(
                        transA: true, m: 2 * D, n: d, k: m, a: dGU + r0 * 2 * D, lda: 2 * D, b: a.expertInput.pointer + r0 * d, ldb: d,
                        beta: 1, c: dGateUp + e * 2 * D * d, ldc: d)
                }, bf16: bf16)
        }
        // dX = dGU W_gateUp, into the gathered-input buffer
        ParallelGEMM.batch(
            rowsOf.map { (e, r0, m) in
                ParallelGEMM.Call(
                    m: m, n: d, k: 2 * D, a: dGU + r0 * 2 * D, lda: 2 * D, b: w1 + e * 2 * D * d, ldb: d,
                    c: a.expertInput.pointer + r0 * d, ldc: d)
            }, bf16: bf16)
        let dx = UnsafeShared(a.expertInput.pointer), din = UnsafeShared(dInput)
        Parallel.forRows(tokens, rowCost: d * k) { _, range in
            for t in range {
                let o = din.value + t * d
                (o).update(from: dx.value + Int(ro.value[t * k]) * d, count: d)
                for s in 1..<max(1, k) {
                    let xr = dx.value + Int(ro.value[t * k + s]) * d
                    for j in 0..<d { o[j] += xr[j] }
                }
            }
        }
    }

    /// Router backward: gradient of the router logits [T, n] from the expert weights' gradient
    /// `dTopWeight`, the load-balancing term `lbPerExpert[e]` (added to dL/dp[t, e] for every
    /// token) and the z-loss term `zScale * 2 * lse_t * p[t, e]` (added to dL/dlogit).
    func backwardRouter(
        _ a: LayerActivations, dTopWeight: UnsafePointer<Float>, lbPerExpert: [Float], zScale: Float,
        dLogits: UnsafeMutablePointer<Float>
    ) {
        let n = experts, k = topK, norm = normalizeTopK
        let pr = UnsafeShared(a.routerProbabilities.pointer), te = UnsafeShared(a.topExpert.pointer)
        let tw = UnsafeShared(a.topWeight.pointer), dtw = UnsafeShared(UnsafeMutablePointer(mutating: dTopWeight))
        let dl = UnsafeShared(dLogits), lse = UnsafeShared(a.logSumExp.pointer)
        lbPerExpert.withUnsafeBufferPointer { lbb in
            let lb = UnsafeShared(UnsafeMutablePointer(mutating: lbb.baseAddress!))
            Parallel.forRows(tokens, rowCost: n * 4) { _, range in
                for t in range {
                    let p = pr.value + t * n, dp = dl.value + t * n
                    for e in 0..<n { dp[e] = lb.value[e] }
                    if norm {
                        // w_s = p_s / S: dp_s += (dw_s - sum_j dw_j w_j) / S, S = sum of chosen p
                        var chosen: Float = 0, dotW: Float = 0
                        for s in 0..<k { chosen += p[Int(te.value[t * k + s])]; dotW += dtw.value[t * k + s] * tw.value[t * k + s] }
                        for s in 0..<k { dp[Int(te.value[t * k + s])] += (dtw.value[t * k + s] - dotW) / chosen }
                    } else {
                        for s in 0..<k { dp[Int(te.value[t * k + s])] += dtw.value[t * k + s] }
                    }
                    var dot: Float = 0
                    for e in 0..<n { dot += p[e] * dp[e] }
                    let z = zScale * 2 * lse.value[t]
                    for e in 0..<n { dp[e] = p[e] * (dp[e] - dot) + z * p[e] }
                }
            }
        }
    }
}
