import Tensors

/// Training's matrix products: Tensors' `ParallelGEMM` on OpenBLAS (single-threaded, in
/// shape-determined blocks), or on BF16 shadows of the operands under `--precision bf16`.
extension ParallelGEMM {
    /// `C = alpha op(A) op(B) + beta C`, row-major, as `BLAS.gemm`, in blocks run concurrently
    /// (`concurrent: false` runs the same blocks in order, for tests).
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

    /// Independent products, all their blocks in one concurrent pass.
    ///
    /// With `bf16`, a call whose A and B both have BF16 shadows runs on them (BF16 inputs,
    /// Float32 accumulation and output, in the same blocks); the other calls run in Float32.
    static func batch(_ calls: [Call], concurrent: Bool = true, bf16: BF16Shadows? = nil) {
        guard let bf16 else {
            batch(on: .openBLAS, calls, concurrent: concurrent)
            return
        }
        let shadows = calls.map { call -> (a: UnsafePointer<UInt16>, b: UnsafePointer<UInt16>)? in
            guard let a = bf16.shadow(of: call.a), let b = bf16.shadow(of: call.b) else { return nil }
            return (a, b)
        }
        let products = bf16.products
        batch(on: .openBLAS, calls, concurrent: concurrent) { i, block in
            guard let s = shadows[i] else { return false }
            let call = calls[i]
            precondition(call.alpha == 1, "BF16 products are made for alpha 1")
            products.multiply(
                transA: call.transA, transB: call.transB, m: block.m, n: block.n, k: call.k, a: s.a + block.aOffset, lda: call.lda,
                b: s.b + block.bOffset, ldb: call.ldb, beta: call.beta, c: call.c + block.cOffset, ldc: call.ldc)
            return true
        }
    }
}
