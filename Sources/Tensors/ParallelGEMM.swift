import CBLAS
import Dispatch
import Foundation

/// Matrix products split across the cores by us rather than by OpenBLAS, for training and for
/// the forward pass.
///
/// OpenBLAS's own threads busy-wait (sched_yield) between calls and fight the
/// `concurrentPerform` workers of the element-wise passes and of attention on a 2-core machine
/// (measured: most of a training step lost to yields). Callers therefore run OpenBLAS with one
/// thread and cut each large product into blocks of rows (or columns) of C computed
/// concurrently. The blocks depend only on the shape, never on the number of cores, so the
/// result is the same bits whatever the machine (OpenBLAS picks kernels by block shape, so a
/// split by core count would not be).
package enum ParallelGEMM {
    /// Largest rows (or columns) of C per block.
    package static let blockSize = 256

    /// The OpenBLAS kernel family in use (e.g. `SkylakeX`; `Prescott` means the CPU was not
    /// recognised and SSE3 kernels run: set OPENBLAS_CORETYPE=SKYLAKEX or HASWELL).
    package static var coreName: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }

    /// Makes OpenBLAS single-threaded for the rest of the process (the caller owns the cores).
    package static func takeOverThreads() { openblas_set_num_threads(1) }

    /// The library a Float32 block runs on.
    package enum Kernel: Sendable {
        /// OpenBLAS `cblas_sgemm` (training's products).
        case openBLAS
        /// `GEMMKernel.preferred`: oneDNN when it loaded (its f32 products run 1.3-1.6x faster
        /// than OpenBLAS's on the machines measured), OpenBLAS otherwise (the forward pass).
        case preferred
    }

    /// Where block `i` of a call's `split` lies: its rows and columns of C and the offsets of
    /// its parts of A, B and C.
    package struct Block: Sendable {
        package var m: Int, n: Int
        package var aOffset: Int, bOffset: Int, cOffset: Int
    }

    /// One product `C = alpha op(A) op(B) + beta C`, row-major, as `BLAS.gemm`.
    package struct Call: @unchecked Sendable {
        package var transA: Bool, transB: Bool
        package var m: Int, n: Int, k: Int
        package var alpha: Float
        package var a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int
        package var beta: Float
        package var c: UnsafeMutablePointer<Float>, ldc: Int

        package init(
            transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
        ) {
            (self.transA, self.transB, self.m, self.n, self.k, self.alpha) = (transA, transB, m, n, k, alpha)
            (self.a, self.lda, self.b, self.ldb, self.beta, self.c, self.ldc) = (a, lda, b, ldb, beta, c, ldc)
        }

        /// Split along rows of C (else columns), the rows (columns) per block and the number of
        /// blocks: an even number of blocks of at most `blockSize` (a multiple of 16), so that
        /// two cores share the work evenly, and one block for small products.
        package var split: (rows: Bool, size: Int, blocks: Int) {
            let rows = m >= n, dim = rows ? m : n
            guard dim > 16, 2 * m * n * k >= 4_000_000 else { return (rows, max(1, dim), 1) }
            var blocks = max(2, (dim + blockSize - 1) / blockSize)
            if blocks % 2 == 1 { blocks += 1 }
            let size = ((dim + blocks - 1) / blocks + 15) / 16 * 16
            return (rows, size, (dim + size - 1) / size)
        }

        /// Block `i` of `split` `s`.
        package func block(_ i: Int, of s: (rows: Bool, size: Int, blocks: Int)) -> Block {
            var r = Block(m: m, n: n, aOffset: 0, bOffset: 0, cOffset: 0)
            if s.blocks > 1 && s.rows {
                let r0 = i * s.size
                r.m = min(m, r0 + s.size) - r0
                r.aOffset = transA ? r0 : r0 * lda
                r.cOffset = r0 * ldc
            } else if s.blocks > 1 {
                let c0 = i * s.size
                r.n = min(n, c0 + s.size) - c0
                r.bOffset = transB ? c0 * ldb : c0
                r.cOffset = c0
            }
            return r
        }

        /// Computes `block` in Float32 on `kernel`, on the calling thread.
        package func run(_ block: Block, on kernel: Kernel) {
            let a = self.a + block.aOffset, b = self.b + block.bOffset, c = self.c + block.cOffset
            if kernel == .preferred, GEMMKernel.preferred == .oneDNN,
                let p = ProductCache.shared.product(
                    ProductCache.Key(
                        transA: transA, transB: transB, m: block.m, n: block.n, k: k, lda: lda, ldb: ldb, ldc: ldc, alpha: alpha,
                        beta: beta)),
                p.kernel == .oneDNN
            {
                p.run(a: a, b: b, c: c, scratch: ThreadProduct.Scratch(for: p))
                return
            }
            BLAS.gemm(
                transA: transA, transB: transB, m: block.m, n: block.n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta,
                c: c, ldc: ldc)
        }
    }

    /// `C = alpha op(A) op(B) + beta C`, row-major, as `BLAS.gemm`, in shape-determined blocks
    /// run concurrently (`concurrent: false` runs the same blocks in order, for tests).
    package static func gemm(
        on kernel: Kernel, transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, concurrent: Bool = true
    ) {
        let call = Call(
            transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        batch(on: kernel, [call], concurrent: concurrent)
    }

    /// Independent products (no call writes what another reads or writes), all their blocks
    /// in one concurrent pass: each call gives the same bits as `gemm` alone.
    ///
    /// `override(index, block)`, when given, may compute a block of call `index` itself (a BF16
    /// product, say) and return true; the blocks it declines run in Float32 on `kernel`.
    package static func batch(
        on kernel: Kernel, _ calls: [Call], concurrent: Bool = true, override: ((Int, Block) -> Bool)? = nil
    ) {
        var jobs: [(call: Int, block: Int)] = []
        let splits = calls.map(\.split)
        for (i, s) in splits.enumerated() where calls[i].m > 0 && calls[i].n > 0 {
            if calls[i].k == 0 {
                // C = beta C, as BLAS defines it (done here: a product of k = 0 may not be made)
                let c = calls[i]
                for r in 0..<c.m { for j in 0..<c.n { c.c[r * c.ldc + j] *= c.beta } }
                continue
            }
            for b in 0..<s.blocks { jobs.append((i, b)) }
        }
        func run(_ job: (call: Int, block: Int)) {
            let call = calls[job.call], block = call.block(job.block, of: splits[job.call])
            if let override, override(job.call, block) { return }
            call.run(block, on: kernel)
        }
        if jobs.count <= 1 || !concurrent {
            for j in jobs { run(j) }
            return
        }
        withoutActuallyEscaping(run) { run in
            let shared = UnsafeShared((jobs, run))
            DispatchQueue.concurrentPerform(iterations: jobs.count) { i in shared.value.1(shared.value.0[i]) }
        }
    }
}

/// oneDNN products by shape, made once: a forward pass runs the same few shapes for every chunk
/// of tokens and layer, and making a product costs far more than looking it up.
package final class ProductCache: @unchecked Sendable {
    package struct Key: Hashable {
        var transA: Bool, transB: Bool
        var m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int
        var alpha: Float, beta: Float
    }
    package static let shared = ProductCache()
    private let lock = NSLock()
    private var products: [Key: ThreadProduct] = [:]

    package func product(_ key: Key) -> ThreadProduct? {
        lock.lock()
        defer { lock.unlock() }
        if let p = products[key] { return p }
        guard products.count < 4096 else { return nil }  // unbounded shapes: fall back to OpenBLAS
        let p = ThreadProduct(
            m: key.m, n: key.n, k: key.k, transA: key.transA, transB: key.transB, lda: key.lda, ldb: key.ldb, ldc: key.ldc,
            alpha: key.alpha, beta: key.beta)
        products[key] = p
        return p
    }
}
