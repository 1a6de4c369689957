import CBLAS
import Foundation
import Tensors

/// Causal scaled dot-product attention with grouped key/value heads, one GEMM pair per
/// (sequence, head), as transformers' eager attention computes it:
/// `P = softmax(Q K^T * scale + causal mask)` (Float32), `O = P V`.
///
/// Layout: queries, keys and values sit in one row-major buffer `qkv` [T, qkvStride] (queries at
/// column 0, keys at `keyOffset`, values at `valueOffset`), T = batch * length tokens; the
/// output O is [T, heads * headDim]. Probabilities are kept, [batch, heads, length, length],
/// for the backward pass.
struct CausalAttention {
    let batch: Int, length: Int, heads: Int, keyValueHeads: Int, headDim: Int
    let qkvStride: Int, keyOffset: Int, valueOffset: Int
    var scale: Float { 1 / Float(headDim).squareRoot() }
    var group: Int { heads / keyValueHeads }

    /// Forward pass: writes `probabilities` and `output`.
    func forward(qkv: UnsafePointer<Float>, probabilities: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>) {
        let q = SharedPointer(UnsafeMutablePointer(mutating: qkv)), pr = SharedPointer(probabilities), out = SharedPointer(output)
        let L = length, S = qkvStride, hd = headDim, H = heads, outStride = heads * headDim
        let sc = scale
        // one BLAS thread per (sequence, head) job: the jobs themselves fill the cores
        let saved = openblas_get_num_threads()
        if saved != 1 { openblas_set_num_threads(1) }
        defer { if saved != 1 { openblas_set_num_threads(saved) } }
        Parallel.forEach(batch * heads) { job in
            let b = job / H, h = job % H, g = h / group
            let base = q.p + b * L * S
            let qh = base + h * hd, kh = base + keyOffset + g * hd, vh = base + valueOffset + g * hd
            let p = pr.p + job * L * L
            // S = Q K^T; only the lower triangle is used
            BLAS.gemm(transB: true, m: L, n: L, k: hd, alpha: 1, a: qh, lda: S, b: kh, ldb: S, c: p, ldc: L)
            for i in 0..<L {
                let row = p + i * L
                var mx = -Float.infinity
                for j in 0...i { row[j] *= sc; mx = max(mx, row[j]) }
                var sum: Float = 0
                for j in 0...i { let e = exp(row[j] - mx); row[j] = e; sum += e }
                let inv = 1 / sum
                for j in 0...i { row[j] *= inv }
                if i + 1 < L { (row + i + 1).update(repeating: 0, count: L - i - 1) }
            }
            BLAS.gemm(m: L, n: hd, k: L, a: p, lda: L, b: vh, ldb: S, c: out.p + b * L * outStride + h * hd, ldc: outStride)
        }
    }

    /// Backward pass. `dOutput` [T, heads * headDim]; writes the query, key and value
    /// gradients into `dqkv` (same layout as `qkv`, overwritten). Consumes `probabilities`
    /// (overwritten by dS). `scratch` holds `batch * keyValueHeads * length^2` floats.
    func backward(qkv: UnsafePointer<Float>, probabilities: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                  dqkv: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let q = SharedPointer(UnsafeMutablePointer(mutating: qkv)), pr = SharedPointer(probabilities)
        let dO = SharedPointer(UnsafeMutablePointer(mutating: dOutput)), dq = SharedPointer(dqkv), scr = SharedPointer(scratch)
        let L = length, S = qkvStride, hd = headDim, H = heads, outStride = heads * headDim, G = group
        let sc = scale
        let saved = openblas_get_num_threads()
        if saved != 1 { openblas_set_num_threads(1) }
        defer { if saved != 1 { openblas_set_num_threads(saved) } }
        Parallel.forEach(batch * keyValueHeads) { job in
            let b = job / keyValueHeads, g = job % keyValueHeads
            let base = q.p + b * L * S, dbase = dq.p + b * L * S
            let kh = base + keyOffset + g * hd, vh = base + valueOffset + g * hd
            let dk = dbase + keyOffset + g * hd, dv = dbase + valueOffset + g * hd
            let dp = scr.p + job * L * L
            for r in 0..<G {
                let h = g * G + r
                let p = pr.p + (b * H + h) * L * L
                let dOh = dO.p + b * L * outStride + h * hd
                let beta: Float = r == 0 ? 0 : 1
                // dV += P^T dO
                BLAS.gemm(transA: true, m: L, n: hd, k: L, a: p, lda: L, b: dOh, ldb: outStride, beta: beta, c: dv, ldc: S)
                // dP = dO V^T
                BLAS.gemm(transB: true, m: L, n: L, k: hd, a: dOh, lda: outStride, b: vh, ldb: S, c: dp, ldc: L)
                // dS = P * (dP - rowsum(P * dP)) * scale, into P
                for i in 0..<L {
                    let prow = p + i * L, drow = dp + i * L
                    var dot: Float = 0
                    for j in 0...i { dot += prow[j] * drow[j] }
                    for j in 0...i { prow[j] = prow[j] * (drow[j] - dot) * sc }
                }
                // dQ = dS K ; dK += dS^T Q
                BLAS.gemm(m: L, n: hd, k: L, a: p, lda: L, b: kh, ldb: S, c: dbase + h * hd, ldc: S)
                BLAS.gemm(transA: true, m: L, n: hd, k: L, a: p, lda: L, b: base + h * hd, ldb: S, beta: beta, c: dk, ldc: S)
            }
        }
    }
}
