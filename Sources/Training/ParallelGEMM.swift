import CBLAS
import Dispatch
import Foundation
import Tensors

/// Matrix products for training, split across the cores by us rather than by OpenBLAS.
///
/// OpenBLAS's own threads busy-wait (sched_yield) between calls and fight the
/// `concurrentPerform` workers of the element-wise passes and of attention on a 2-core machine
/// (measured: most of a step lost to yields). Training therefore runs OpenBLAS with one thread
/// and cuts each large product into blocks of rows (or columns) of C computed concurrently.
/// The blocks depend only on the shape, never on the number of cores, so the result is the
/// same bits whatever the machine (OpenBLAS picks kernels by block shape, so a split by core
/// count would not be).
enum ParallelGEMM {
    /// Largest rows (or columns) of C per block.
    static let blockSize = 256

    /// The OpenBLAS kernel family in use (e.g. `SkylakeX`; `Prescott` means the CPU was not
    /// recognised and SSE3 kernels run: set OPENBLAS_CORETYPE=SKYLAKEX or HASWELL).
    static var coreName: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }

    /// Makes OpenBLAS single-threaded for the rest of the process (training owns the cores).
    static func takeOverThreads() { openblas_set_num_threads(1) }

    /// One product `C = alpha op(A) op(B) + beta C`, row-major, as `BLAS.gemm`.
    struct Call: @unchecked Sendable {
        var transA = false, transB = false
        var m: Int, n: Int, k: Int
        var alpha: Float = 1
        var a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int
        var beta: Float = 0
        var c: UnsafeMutablePointer<Float>, ldc: Int

        /// Split along rows of C (else columns), the rows (columns) per block and the number of
        /// blocks: an even number of blocks of at most `blockSize` (a multiple of 16), so that
        /// two cores share the work evenly, and one block for small products.
        var split: (rows: Bool, size: Int, blocks: Int) {
            let rows = m >= n, dim = rows ? m : n
            guard dim > 16, 2 * m * n * k >= 4_000_000 else { return (rows, max(1, dim), 1) }
            var blocks = max(2, (dim + blockSize - 1) / blockSize)
            if blocks % 2 == 1 { blocks += 1 }
            let size = ((dim + blocks - 1) / blocks + 15) / 16 * 16
            return (rows, size, (dim + size - 1) / size)
        }

        /// Computes block `i` of `split`, on `bf16` (BF16 copies of A and B laid out as A and B,
        /// and the products that multiply them) when given, else on OpenBLAS.
        func run(
            block i: Int, of s: (rows: Bool, size: Int, blocks: Int),
            bf16: (a: UnsafePointer<UInt16>, b: UnsafePointer<UInt16>, products: BF16Products)? = nil
        ) {
            var m = self.m, n = self.n, aOffset = 0, bOffset = 0, cOffset = 0
            if s.blocks > 1 && s.rows {
                let r0 = i * s.size
                m = min(self.m, r0 + s.size) - r0
                aOffset = transA ? r0 : r0 * lda
                cOffset = r0 * ldc
            } else if s.blocks > 1 {
                let c0 = i * s.size
                n = min(self.n, c0 + s.size) - c0
                bOffset = transB ? c0 * ldb : c0
                cOffset = c0
            }
            guard let bf16 else {
                BLAS.gemm(
                    transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a + aOffset, lda: lda,
                    b: b + bOffset, ldb: ldb, beta: beta, c: c + cOffset, ldc: ldc)
                return
            }
            precondition(alpha == 1, "BF16 products are made for alpha 1")
            bf16.products.multiply(
                transA: transA, transB: transB, m: m, n: n, k: k, a: bf16.a + aOffset, lda: lda, b: bf16.b + bOffset, ldb: ldb,
                beta: beta, c: c + cOffset, ldc: ldc)
        }
    }

    /// `C = alpha op(A) op(B) + beta C`, row-major, as `BLAS.gemm`, in shape-determined blocks
    /// run concurrently (`concurrent: false` runs the same blocks in order, for tests).
    static func gemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, concurrent: Bool = true, bf16: BF16Shadows? = nil
    ) {
        batch(
            [
                Call(
                    transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                    beta: beta, c: c, ldc: ldc)
            ], concurrent: concurrent, bf16: bf16)
    }

    /// Independent products (no call writes what another reads or writes), all their blocks
    /// in one concurrent pass: each call gives the same bits as `gemm` alone.
    ///
    /// With `bf16`, a call whose A and B both have BF16 shadows runs on them (BF16 inputs,
    /// Float32 accumulation and output, in the same blocks); the other calls run in Float32.
    static func batch(_ calls: [Call], concurrent: Bool = true, bf16: BF16Shadows? = nil) {
        var jobs: [(call: Int, block: Int)] = []
        let splits = calls.map(\.split)
        let shadows = calls.map { call -> (a: UnsafePointer<UInt16>, b: UnsafePointer<UInt16>, products: BF16Products)? in
            guard let bf16, let a = bf16.shadow(of: call.a), let b = bf16.shadow(of: call.b) else { return nil }
            return (a, b, bf16.products)
        }
        for (i, s) in splits.enumerated() where calls[i].m > 0 && calls[i].n > 0 {
            for b in 0..<s.blocks { jobs.append((i, b)) }
        }
        if jobs.count <= 1 || !concurrent {
            for j in jobs { calls[j.call].run(block: j.block, of: splits[j.call], bf16: shadows[j.call]) }
            return
        }
        jobs.withUnsafeBufferPointer { jp in
            calls.withUnsafeBufferPointer { cp in
                splits.withUnsafeBufferPointer { sp in
                    shadows.withUnsafeBufferPointer { hp in
                        let j = UnsafeShared(UnsafeMutablePointer(mutating: jp.baseAddress!))
                        let c = UnsafeShared(UnsafeMutablePointer(mutating: cp.baseAddress!))
                        let s = UnsafeShared(UnsafeMutablePointer(mutating: sp.baseAddress!))
                        let h = UnsafeShared(UnsafeMutablePointer(mutating: hp.baseAddress!))
                        DispatchQueue.concurrentPerform(iterations: jp.count) { i in
                            let job = j.value[i]
                            c.value[job.call].run(block: job.block, of: s.value[job.call], bf16: h.value[job.call])
                        }
                    }
                }
            }
        }
    }
}
