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
///
/// With BF16 operands (`--precision bf16`) the products take BF16 copies of q, k, v, of the
/// output's gradient and of each block of P and dS (rounded by the job that made it), and
/// accumulate into Float32; the softmax and its backward stay Float32.
struct CausalAttention {
    /// BF16 copies of `qkv` (same layout) and of the output's gradient (backward only), and the
    /// products that multiply them.
    struct BF16Operands {
        let qkv: UnsafePointer<UInt16>
        var dOutput: UnsafePointer<UInt16>? = nil
        let products: BF16Products
    }

    let batch: Int, length: Int, heads: Int, keyValueHeads: Int, headDim: Int
    let qkvStride: Int, keyOffset: Int, valueOffset: Int
    var scale: Float { 1 / Float(headDim).squareRoot() }
    var group: Int { heads / keyValueHeads }

    /// Query rows per block: scores are computed block by block against the keys up to the
    /// block's end only, which skips most of the masked upper triangle (62.5% of the full
    /// products at length 256).
    var blockRows: Int { min(length, 64) }

    /// Rounds rows `r0..<r0+m`, columns `0..<n` of `p` (leading dimension `length`) into
    /// `rows` (the same layout from its first row).
    private func roundBlock(_ p: UnsafePointer<Float>, r0: Int, m: Int, n: Int, into rows: UnsafeMutablePointer<UInt16>) {
        for i in 0..<m { Conversion.roundToBF16(p + (r0 + i) * length, count: n, into: rows + i * length) }
    }

    /// Forward pass: writes `probabilities` (the causal lower triangle; entries right of each
    /// row's block are left unwritten) and `output`.
    func forward(
        qkv: UnsafePointer<Float>, probabilities: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>,
        bf16: BF16Operands? = nil
    ) {
        let q = UnsafeShared(UnsafeMutablePointer(mutating: qkv)), pr = UnsafeShared(probabilities), out = UnsafeShared(output)
        let L = length, S = qkvStride, hd = headDim, H = heads, outStride = heads * headDim
        let sc = scale, bs = blockRows
        // one BLAS thread per (sequence, head) job: the jobs themselves fill the cores
        let saved = openblas_get_num_threads()
        if saved != 1 { openblas_set_num_threads(1) }
        defer { if saved != 1 { openblas_set_num_threads(saved) } }
        let half = bf16.map(UnsafeShared.init)
        Parallel.forEach(batch * heads) { job in
            let b = job / H, h = job % H, g = h / group
            let qOffset = b * L * S + h * hd, kOffset = b * L * S + keyOffset + g * hd, vOffset = b * L * S + valueOffset + g * hd
            let qh = q.value + qOffset, kh = q.value + kOffset, vh = q.value + vOffset
            let p = pr.value + job * L * L
            let o = out.value + b * L * outStride + h * hd
            let rows = half.map { _ in UnsafeMutablePointer<UInt16>.allocate(capacity: bs * L) }
            defer { rows?.deallocate() }
            var r0 = 0
            while r0 < L {
                let m = min(bs, L - r0), n = r0 + m
                // S = Q K^T for this block's rows against keys 0..<n
                if let x = half?.value {
                    x.products.multiply(transB: true, m: m, n: n, k: hd, a: x.qkv + qOffset + r0 * S, lda: S, b: x.qkv + kOffset, ldb: S, c: p + r0 * L, ldc: L)
                } else {
                    BLAS.gemm(transB: true, m: m, n: n, k: hd, alpha: 1, a: qh + r0 * S, lda: S, b: kh, ldb: S, c: p + r0 * L, ldc: L)
                }
                for i in r0..<n {
                    let row = p + i * L
                    VectorMath.softmaxInPlace(row, i + 1, scale: sc)
                    if i + 1 < n { (row + i + 1).update(repeating: 0, count: n - i - 1) }
                }
                if let x = half?.value, let rows {
                    roundBlock(p, r0: r0, m: m, n: n, into: rows)
                    x.products.multiply(m: m, n: hd, k: n, a: rows, lda: L, b: x.qkv + vOffset, ldb: S, c: o + r0 * outStride, ldc: outStride)
                } else {
                    BLAS.gemm(m: m, n: hd, k: n, a: p + r0 * L, lda: L, b: vh, ldb: S, c: o + r0 * outStride, ldc: outStride)
                }
                r0 += m
            }
        }
    }

    /// Backward pass. `dOutput` [T, heads * headDim]; writes the query, key and value
    /// gradients into `dqkv` (same layout as `qkv`, overwritten). Consumes `probabilities`
    /// (overwritten by dS). `scratch` holds `batch * keyValueHeads * length^2` floats.
    func backward(
        qkv: UnsafePointer<Float>, probabilities: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
        dqkv: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, bf16: BF16Operands? = nil
    ) {
        let q = UnsafeShared(UnsafeMutablePointer(mutating: qkv)), pr = UnsafeShared(probabilities)
        let dO = UnsafeShared(UnsafeMutablePointer(mutating: dOutput)), dq = UnsafeShared(dqkv), scr = UnsafeShared(scratch)
        let L = length, S = qkvStride, hd = headDim, H = heads, outStride = heads * headDim, G = group
        let sc = scale, bs = blockRows
        let saved = openblas_get_num_threads()
        if saved != 1 { openblas_set_num_threads(1) }
        defer { if saved != 1 { openblas_set_num_threads(saved) } }
        let half = bf16.map(UnsafeShared.init)
        precondition(bf16 == nil || bf16?.dOutput != nil, "a bf16 attention backward needs the output gradient's BF16 copy")
        Parallel.forEach(batch * keyValueHeads) { job in
            let b = job / keyValueHeads, g = job % keyValueHeads
            let kOffset = b * L * S + keyOffset + g * hd, vOffset = b * L * S + valueOffset + g * hd
            let base = q.value + b * L * S, dbase = dq.value + b * L * S
            let kh = q.value + kOffset, vh = q.value + vOffset
            let dk = dbase + keyOffset + g * hd, dv = dbase + valueOffset + g * hd
            let dp = scr.value + job * L * L
            let rows = half.map { _ in UnsafeMutablePointer<UInt16>.allocate(capacity: bs * L) }
            defer { rows?.deallocate() }
            for r in 0..<G {
                let h = g * G + r
                let p = pr.value + (b * H + h) * L * L
                let dOOffset = b * L * outStride + h * hd
                let dOh = dO.value + dOOffset
                // last block first: it spans every key row, so it initialises dK and dV
                var r0 = ((L - 1) / bs) * bs
                while r0 >= 0 {
                    let m = min(bs, L - r0), n = r0 + m
                    let beta: Float = (r == 0 && n == L) ? 0 : 1
                    let pb = p + r0 * L, db = dp + r0 * L, dOb = dOh + r0 * outStride
                    if let x = half?.value, let dO16 = x.dOutput, let rows {
                        let dOb16 = dO16 + dOOffset + r0 * outStride
                        roundBlock(p, r0: r0, m: m, n: n, into: rows)
                        x.products.multiply(transA: true, m: n, n: hd, k: m, a: rows, lda: L, b: dOb16, ldb: outStride, beta: beta, c: dv, ldc: S)
                        x.products.multiply(transB: true, m: m, n: n, k: hd, a: dOb16, lda: outStride, b: x.qkv + vOffset, ldb: S, c: db, ldc: L)
                    } else {
                        // dV[0..<n] += P^T dO
                        BLAS.gemm(transA: true, m: n, n: hd, k: m, a: pb, lda: L, b: dOb, ldb: outStride, beta: beta, c: dv, ldc: S)
                        // dP = dO V^T
                        BLAS.gemm(transB: true, m: m, n: n, k: hd, a: dOb, lda: outStride, b: vh, ldb: S, c: db, ldc: L)
                    }
                    // dS = P * (dP - rowsum(P * dP)) * scale, into P (zeros right of the diagonal stay zero)
                    for i in r0..<n {
                        let prow = p + i * L, drow = dp + i * L
                        let dot = VectorMath.dot(prow, drow, i + 1)
                        for j in 0...i { prow[j] = prow[j] * (drow[j] - dot) * sc }
                    }
                    if let x = half?.value, let rows {
                        roundBlock(p, r0: r0, m: m, n: n, into: rows)
                        x.products.multiply(m: m, n: hd, k: n, a: rows, lda: L, b: x.qkv + kOffset, ldb: S, c: dbase + r0 * S + h * hd, ldc: S)
                        x.products.multiply(
                            transA: true, m: n, n: hd, k: m, a: rows, lda: L, b: x.qkv + b * L * S + r0 * S + h * hd, ldb: S,
                            beta: beta, c: dk, ldc: S)
                    } else {
                        // dQ = dS K ; dK[0..<n] += dS^T Q
                        BLAS.gemm(m: m, n: hd, k: n, a: pb, lda: L, b: kh, ldb: S, c: dbase + r0 * S + h * hd, ldc: S)
                        BLAS.gemm(transA: true, m: n, n: hd, k: m, a: pb, lda: L, b: base + r0 * S + h * hd, ldb: S, beta: beta, c: dk, ldc: S)
                    }
                    r0 -= bs
                }
            }
        }
    }
}
