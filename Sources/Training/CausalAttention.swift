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

    /// Query rows per block: scores are computed block by block against the keys up to the
    /// block's end only, which skips most of the masked upper triangle (62.5% of the full
    /// products at length 256).
    var blockRows: Int { min(length, 64) }

    /// Forward pass: writes `probabilities` (the causal lower triangle; entries right of each
    /// row's block are left unwritten) and `output`.
    func forward(qkv: UnsafePointer<Float>, probabilities: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>) {
        let q = UnsafeShared(UnsafeMutablePointer(mutating: qkv)), pr = UnsafeShared(probabilities), out = UnsafeShared(output)
        let L = length, S = qkvStride, hd = headDim, H = heads, outStride = heads * headDim
        let sc = scale, bs = blockRows
        // one BLAS thread per (sequence, head) job: the jobs themselves fill the cores
        let saved = openblas_get_num_threads()
        if saved != 1 { openblas_set_num_threads(1) }
        defer { if saved != 1 { openblas_set_num_threads(saved) } }
        Parallel.forEach(batch * heads) { job in
            let b = job / H, h = job % H, g = h / group
            let base = q.value + b * L * S
            let qh = base + h * hd, kh = base + keyOffset + g * hd, vh = base + valueOffset + g * hd
            let p = pr.value + job * L * L
            let o = out.value + b * L * outStride + h * hd
            var r0 = 0
            while r0 < L {
                let m = min(bs, L - r0), n = r0 + m
                // S = Q K^T for this block's rows against keys 0..<n
                BLAS.gemm(transB: true, m: m, n: n, k: hd, alpha: 1, a: qh + r0 * S, lda: S, b: kh, ldb: S, c: p + r0 * L, ldc: L)
                for i in r0..<n {
                    let row = p + i * L
                    VectorMath.softmaxInPlace(row, i + 1, scale: sc)
                    if i + 1 < n { (row + i + 1).update(repeating: 0, count: n - i - 1) }
                }
                BLAS.gemm(m: m, n: hd, k: n, a: p + r0 * L, lda: L, b: vh, ldb: S, c: o + r0 * outStride, ldc: outStride)
                r0 += m
            }
        }
    }

    /// Backward pass. `dOutput` [T, heads * headDim]; writes the query, key and value
    /// gradients into `dqkv` (same layout as `qkv`, overwritten). Consumes `probabilities`
    /// (overwritten by dS). `scratch` holds `batch * keyValueHeads * length^2` floats.
    func backward(qkv: UnsafePointer<Float>, probabilities: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                  dqkv: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let q = UnsafeShared(UnsafeMutablePointer(mutating: qkv)), pr = UnsafeShared(probabilities)
        let dO = UnsafeShared(UnsafeMutablePointer(mutating: dOutput)), dq = UnsafeShared(dqkv), scr = UnsafeShared(scratch)
        let L = length, S = qkvStride, hd = headDim, H = heads, outStride = heads * headDim, G = group
        let sc = scale, bs = blockRows
        let saved = openblas_get_num_threads()
        if saved != 1 { openblas_set_num_threads(1) }
        defer { if saved != 1 { openblas_set_num_threads(saved) } }
        Parallel.forEach(batch * keyValueHeads) { job in
            let b = job / keyValueHeads, g = job % keyValueHeads
            let base = q.value + b * L * S, dbase = dq.value + b * L * S
            let kh = base + keyOffset + g * hd, vh = base + valueOffset + g * hd
            let dk = dbase + keyOffset + g * hd, dv = dbase + valueOffset + g * hd
            let dp = scr.value + job * L * L
            for r in 0..<G {
                let h = g * G + r
                let p = pr.value + (b * H + h) * L * L
                let dOh = dO.value + b * L * outStride + h * hd
                // last block first: it spans every key row, so it initialises dK and dV
                var r0 = ((L - 1) / bs) * bs
                while r0 >= 0 {
                    let m = min(bs, L - r0), n = r0 + m
                    let beta: Float = (r == 0 && n == L) ? 0 : 1
                    let pb = p + r0 * L, db = dp + r0 * L, dOb = dOh + r0 * outStride
                    // dV[0..<n] += P^T dO
                    BLAS.gemm(transA: true, m: n, n: hd, k: m, a: pb, lda: L, b: dOb, ldb: outStride, beta: beta, c: dv, ldc: S)
                    // dP = dO V^T
                    BLAS.gemm(transB: true, m: m, n: n, k: hd, a: dOb, lda: outStride, b: vh, ldb: S, c: db, ldc: L)
                    // dS = P * (dP - rowsum(P * dP)) * scale, into P (zeros right of the diagonal stay zero)
                    for i in r0..<n {
                        let prow = p + i * L, drow = dp + i * L
                        let dot = VectorMath.dot(prow, drow, i + 1)
                        for j in 0...i { prow[j] = prow[j] * (drow[j] - dot) * sc }
                    }
                    // dQ = dS K ; dK[0..<n] += dS^T Q
                    BLAS.gemm(m: m, n: hd, k: n, a: pb, lda: L, b: kh, ldb: S, c: dbase + r0 * S + h * hd, ldc: S)
                    BLAS.gemm(transA: true, m: n, n: hd, k: m, a: pb, lda: L, b: base + r0 * S + h * hd, ldb: S, beta: beta, c: dk, ldc: S)
                    r0 -= bs
                }
            }
        }
    }
}
