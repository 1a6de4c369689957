import Foundation
import Tensors

/// Causal scaled dot-product attention over independent windows, with grouped key/value heads
/// and an optional sliding window, as transformers' eager attention computes it in Float32:
/// `P = softmax(Q K^T * scale + mask)`, `O = P V`.
///
/// Token t = b * length + i is position i of window b. Query head h reads key/value head
/// `h / (heads / keyValueHeads)`; queries and keys have `queryKeyDim` elements per head, values
/// `valueDim`. Rows of each block of queries are scored only against the keys up to the block's
/// end, which skips most of the masked upper triangle.
struct CausalAttention {
    let batch: Int, length: Int, heads: Int, keyValueHeads: Int
    let queryKeyDim: Int, valueDim: Int
    let scale: Float
    /// Keys j with `i - j >= window` are masked (transformers' sliding window); nil: none.
    let window: Int?

    static let blockRows = 64

    /// Floats of scratch `forward` needs.
    var scratchCount: Int { batch * heads * min(length, CausalAttention.blockRows) * length }

    /// `query` [T, qStride] (head h at column h * queryKeyDim), `key` [T, kStride], `value`
    /// [T, vStride] (key/value head g at g * dim), `output` [T, outStride] (head h at h * valueDim).
    /// `scratch` holds `batch * heads * min(length, 64) * length` floats.
    func forward(
        query: UnsafePointer<Float>, qStride: Int, key: UnsafePointer<Float>, kStride: Int,
        value: UnsafePointer<Float>, vStride: Int, output: UnsafeMutablePointer<Float>, outStride: Int,
        scratch: UnsafeMutablePointer<Float>
    ) {
        let q = UnsafeShared(query), k = UnsafeShared(key), v = UnsafeShared(value), out = UnsafeShared(output)
        let sp = UnsafeShared(scratch)
        let L = length, H = heads, group = heads / keyValueHeads, dq = queryKeyDim, dv = valueDim
        let sc = scale, bs = min(L, CausalAttention.blockRows), win = window
        // (the executor runs OpenBLAS single-threaded: the jobs fill the cores)
        Parallel.forEach(batch * heads) { job in
            let b = job / H, h = job % H, g = h / group
            let qh = q.value + b * L * qStride + h * dq
            let kh = k.value + b * L * kStride + g * dq
            let vh = v.value + b * L * vStride + g * dv
            let o = out.value + b * L * outStride + h * dv
            let scores = sp.value + job * bs * L
            var denominators = [Float](repeating: 1, count: bs)
            var r0 = 0
            while r0 < L {
                let m = min(bs, L - r0), n = r0 + m
                // the block's rows see keys lo..<n at most
                let lo = win.map { max(0, r0 - $0 + 1) } ?? 0
                BLAS.gemm(
                    transB: true, m: m, n: n - lo, k: dq, a: qh + r0 * qStride, lda: qStride, b: kh + lo * kStride, ldb: kStride,
                    c: scores, ldc: L)
                for i in r0..<n {
                    let row = scores + (i - r0) * L
                    let first = win.map { max(0, i - $0 + 1) } ?? 0
                    // row[j - lo] is key j; keys first...i take part
                    if first > lo { (row).update(repeating: 0, count: first - lo) }
                    // the numerators only: the row's output is divided by their sum after P V
                    denominators[i - r0] = VectorMath.softmaxNumerators(row + (first - lo), i + 1 - first, scale: sc)
                    if i + 1 < n { (row + (i + 1 - lo)).update(repeating: 0, count: n - i - 1) }
                }
                BLAS.gemm(m: m, n: dv, k: n - lo, a: scores, lda: L, b: vh + lo * vStride, ldb: vStride, c: o + r0 * outStride, ldc: outStride)
                for i in 0..<m {
                    let inv = 1 / denominators[i], orow = o + (r0 + i) * outStride
                    for c in 0..<dv { orow[c] *= inv }
                }
                r0 += m
            }
        }
    }
}

/// Adds `bias` [cols] to every row of `x` [rows, stride].
func addBias(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, stride: Int, bias: UnsafePointer<Float>) {
    let xs = UnsafeShared(x), b = UnsafeShared(bias)
    Parallel.forRows(rows, rowCost: cols) { _, range in
        for t in range { let r = xs.value + t * stride; for j in 0..<cols { r[j] += b.value[j] } }
    }
}
