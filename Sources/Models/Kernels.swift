import Dispatch
import Foundation
import Tensors

// The forward pass's scratch (its buffers are Tensors' FloatBuffer). Its kernels are Tensors' (Parallel, ParallelGEMM,
// VectorMath, SwiGLU), shared with training: results do not depend on the thread count.

/// Scratch buffers reused from chunk to chunk and layer to layer: no allocation, page faults or
/// zero fill in the loop. A slot holds one buffer, grown when a larger one is asked for; its
/// contents are undefined until written.
final class Scratch: @unchecked Sendable {
    enum Slot: Int, CaseIterable {
        case query, key, value, output, queryLatent, keyValueLatent, latent, keyValue, scores
        case feedForwardGate, feedForwardUp, expertInput, expertGateUp, expertOutput, shared
    }
    private var buffers = [FloatBuffer?](repeating: nil, count: Slot.allCases.count)

    /// Room for at least `count` floats in `slot`.
    func callAsFunction(_ slot: Slot, _ count: Int) -> UnsafeMutablePointer<Float> {
        if let b = buffers[slot.rawValue], b.count >= count { return b.pointer }
        let b = FloatBuffer(count: count, zeroed: false)
        buffers[slot.rawValue] = b
        return b.pointer
    }
}

/// Calls `body` with the base addresses of every tensor's storage (read-only, no copies).
func withPointers<R>(_ tensors: [Tensor], _ body: ([UnsafePointer<Float>]) throws -> R) rethrows -> R {
    func step(_ i: Int, _ acc: [UnsafePointer<Float>]) throws -> R {
        if i == tensors.count { return try body(acc) }
        return try tensors[i].storage.withUnsafeBufferPointer { b in
            if let p = b.baseAddress { return try step(i + 1, acc + [p]) }
            // an empty tensor still gets a valid (never read) address
            var none: Float = 0
            return try withUnsafePointer(to: &none) { try step(i + 1, acc + [$0]) }
        }
    }
    return try step(0, [])
}

/// The forward pass's matrix products: Tensors' `ParallelGEMM` on the preferred kernel (oneDNN
/// where it loaded, else OpenBLAS), single-threaded per block, in shape-determined blocks.
extension ParallelGEMM {
    /// `C = alpha op(A) op(B) + beta C`, row-major, in blocks run concurrently.
    static func gemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        gemm(on: .preferred, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }

    /// Independent products (no call writes what another reads or writes), all blocks in one pass.
    static func batch(_ calls: [Call]) { batch(on: .preferred, calls) }
}
