import CBLAS
import Dispatch
import Foundation
import Tensors

/// Matrix products for training, split across the cores by us rather than by OpenBLAS.
///
/// OpenBLAS's own threads busy-wait (sched_yield) between calls and fight the
/// `concurrentPerform` workers of the element-wise passes and of attention on a 2-core machine
/// (measured: most of a step lost to yields). Training therefore runs OpenBLAS with one thread
/// and cuts each large product into row (or column) blocks computed concurrently; every element
/// of C is still one OpenBLAS dot product over the whole k, so results do not depend on the
/// number of blocks.
enum ParallelGEMM {
    /// Cores to split over.
    static let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// The OpenBLAS kernel family in use (e.g. `SkylakeX`; `Prescott` means the CPU was not
    /// recognised and SSE3 kernels run: set OPENBLAS_CORETYPE=SKYLAKEX or HASWELL).
    static var coreName: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }

    /// Makes OpenBLAS single-threaded for the rest of the process (training owns the cores).
    static func takeOverThreads() { openblas_set_num_threads(1) }

    /// `C = alpha op(A) op(B) + beta C`, row-major, as `BLAS.gemm`, split over the cores when
    /// the product is large enough to pay for it.
    static func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                     a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                     beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let flops = 2 * m * n * k
        let parts = cores
        guard parts > 1, flops >= 4_000_000, max(m, n) >= 2 * parts else {
            BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        let ap = SharedPointer(UnsafeMutablePointer(mutating: a)), bp = SharedPointer(UnsafeMutablePointer(mutating: b)), cp = SharedPointer(c)
        if m >= n {
            // blocks of rows of C: rows of op(A)
            let block = (m + parts - 1) / parts
            DispatchQueue.concurrentPerform(iterations: parts) { i in
                let r0 = i * block, rows = min(m, r0 + block) - r0
                guard rows > 0 else { return }
                let aStart = transA ? ap.p + r0 : ap.p + r0 * lda
                BLAS.gemm(transA: transA, transB: transB, m: rows, n: n, k: k, alpha: alpha, a: aStart, lda: lda,
                          b: bp.p, ldb: ldb, beta: beta, c: cp.p + r0 * ldc, ldc: ldc)
            }
        } else {
            // blocks of columns of C: columns of op(B)
            let block = (n + parts - 1) / parts
            DispatchQueue.concurrentPerform(iterations: parts) { i in
                let c0 = i * block, cols = min(n, c0 + block) - c0
                guard cols > 0 else { return }
                let bStart = transB ? bp.p + c0 * ldb : bp.p + c0
                BLAS.gemm(transA: transA, transB: transB, m: m, n: cols, k: k, alpha: alpha, a: ap.p, lda: lda,
                          b: bStart, ldb: ldb, beta: beta, c: cp.p + c0, ldc: ldc)
            }
        }
    }
}
