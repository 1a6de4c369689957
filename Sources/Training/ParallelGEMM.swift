import CBLAS
import Dispatch
import Foundation
import Tensors

/// Matrix products for training, split across the cores by us rather than by OpenBLAS.
///
/// OpenBLAS's own threads busy-wait (sched_yield) between calls and fight the
/// `concurrentPerform` workers of the element-wise passes and of attention on a 2-core machine
/// (measured: most of a step lost to yields). Training therefore runs OpenBLAS with one thread
/// and cuts each large product into blocks of `blockSize` rows (or columns) of C computed
/// concurrently. The blocks depend only on the shape, never on the number of cores, so the
/// result is the same bits whatever the machine (OpenBLAS picks kernels by block shape, so a
/// split by core count would not be).
enum ParallelGEMM {
    /// Rows (or columns) of C per block.
    static let blockSize = 256

    /// The OpenBLAS kernel family in use (e.g. `SkylakeX`; `Prescott` means the CPU was not
    /// recognised and SSE3 kernels run: set OPENBLAS_CORETYPE=SKYLAKEX or HASWELL).
    static var coreName: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }

    /// Makes OpenBLAS single-threaded for the rest of the process (training owns the cores).
    static func takeOverThreads() { openblas_set_num_threads(1) }

    /// `C = alpha op(A) op(B) + beta C`, row-major, as `BLAS.gemm`, in shape-determined blocks
    /// run concurrently (`concurrent: false` runs the same blocks in order, for tests).
    static func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                     a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                     beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, concurrent: Bool = true) {
        let splitRows = m >= n
        let blocks = ((splitRows ? m : n) + blockSize - 1) / blockSize
        guard blocks > 1, 2 * m * n * k >= 4_000_000 else {
            BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        let ap = SharedPointer(UnsafeMutablePointer(mutating: a)), bp = SharedPointer(UnsafeMutablePointer(mutating: b)), cp = SharedPointer(c)
        let body: @Sendable (Int) -> Void = { i in
            if splitRows {
                let r0 = i * blockSize, rows = min(m, r0 + blockSize) - r0
                let aStart = transA ? ap.p + r0 : ap.p + r0 * lda
                BLAS.gemm(transA: transA, transB: transB, m: rows, n: n, k: k, alpha: alpha, a: aStart, lda: lda,
                          b: bp.p, ldb: ldb, beta: beta, c: cp.p + r0 * ldc, ldc: ldc)
            } else {
                let c0 = i * blockSize, cols = min(n, c0 + blockSize) - c0
                let bStart = transB ? bp.p + c0 * ldb : bp.p + c0
                BLAS.gemm(transA: transA, transB: transB, m: m, n: cols, k: k, alpha: alpha, a: ap.p, lda: lda,
                          b: bStart, ldb: ldb, beta: beta, c: cp.p + c0, ldc: ldc)
            }
        }
        if concurrent { DispatchQueue.concurrentPerform(iterations: blocks, execute: body) } else { for i in 0..<blocks { body(i) } }
    }
}
