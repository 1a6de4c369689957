import Foundation
import Tensors

/// oneDNN's BF16 matrix products for `--precision bf16`: one any-shape product per
/// (transA, transB, beta) that training's products use (alpha 1, beta 0 or 1), made up front so
/// that a machine without them fails before the first step, with one error naming what is
/// missing.
final class BF16Products: @unchecked Sendable {
    private let table: [AnyShapeProduct]

    /// - Parameters:
    ///   - kernel: the kernel asked for (`MOE_INSPECT_GEMM=openblas` asks for OpenBLAS).
    ///   - unavailableReason: why oneDNN did not load, nil when it did.
    /// - Throws: `TrainingError.invalidOption` when oneDNN is missing, not asked for, or has
    ///   no BF16 products on this CPU.
    init(kernel: GEMMKernel = .preferred,
         unavailableReason: String? = OneDNN.isAvailable ? nil : OneDNN.unavailableReason) throws(TrainingError) {
        let need = "--precision bf16 needs oneDNN's BF16 matrix products"
        if let unavailableReason {
            throw .invalidOption("\(need), and oneDNN is unavailable (\(unavailableReason)); install libdnnl2 or use --precision fp32")
        }
        guard kernel == .oneDNN else {
            throw .invalidOption("\(need), and MOE_INSPECT_GEMM=openblas asks for OpenBLAS, which has none; unset it or use --precision fp32")
        }
        var made: [AnyShapeProduct] = []
        for index in 0..<8 {
            guard let p = AnyShapeProduct(transA: index & 1 != 0, transB: index & 2 != 0, beta: index & 4 != 0 ? 1 : 0, inputs: .bf16) else {
                throw .invalidOption("\(need), and oneDNN \(OneDNN.version) has none on this CPU (it needs AVX-512); use --precision fp32")
            }
            made.append(p)
        }
        table = made
    }

    /// `C = op(A) op(B) + beta C` on the calling thread, A and B BF16 bits laid out as
    /// `BLAS.gemm`'s operands, C Float32; beta 0 or 1.
    func multiply(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, a: UnsafePointer<UInt16>, lda: Int,
                  b: UnsafePointer<UInt16>, ldb: Int, beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        precondition(beta == 0 || beta == 1, "BF16 products are made for beta 0 and 1")
        if k == 0 {  // C = beta C, as BLAS does
            if beta == 0 { for r in 0..<m { (c + r * ldc).update(repeating: 0, count: n) } }
            return
        }
        let ran = table[(transA ? 1 : 0) + (transB ? 2 : 0) + (beta == 1 ? 4 : 0)]
            .run(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc)
        precondition(ran, "oneDNN failed a BF16 product of valid sizes (\(m) x \(n) x \(k))")
    }
}

/// BF16 copies ("shadows") of the Float32 buffers that feed matrix products in bf16 training:
/// the parameters, and activations and gradients of one batch shape. A product whose two
/// operands both have a shadow runs on the BF16 copies (`ParallelGEMM.batch(_:bf16:)`); the
/// others (router, attention scores) stay Float32.
///
/// A shadow holds what `round` last put there: the passes round each operand after writing it
/// and before the product that reads it. Buffers never live at the same time may share one
/// shadow's memory.
final class BF16Shadows: @unchecked Sendable {
    struct Entry {
        let base: UnsafeMutablePointer<Float>, count: Int
        let shadow: UnsafeMutablePointer<UInt16>
    }

    let products: BF16Products
    private(set) var entries: [Entry] = []
    private var storage: [UnsafeMutablePointer<UInt16>] = []

    init(products: BF16Products) { self.products = products }

    deinit { for s in storage { s.deallocate() } }

    /// New shadow memory of `count` elements.
    func allocate(_ count: Int) -> UnsafeMutablePointer<UInt16> {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 2, alignment: 64).bindMemory(to: UInt16.self, capacity: max(1, count))
        p.initialize(repeating: 0, count: max(1, count))
        storage.append(p)
        return p
    }

    /// Gives `buffer` a shadow: `memory` when given (shared), else its own.
    func add(_ buffer: FloatBuffer, sharing memory: UnsafeMutablePointer<UInt16>? = nil) {
        entries.append(Entry(base: buffer.pointer, count: buffer.count, shadow: memory ?? allocate(buffer.count)))
    }

    /// The shadow of the element at `p`, or nil when its buffer has none.
    func shadow(of p: UnsafePointer<Float>) -> UnsafePointer<UInt16>? {
        for e in entries {
            let offset = UnsafePointer(e.base).distance(to: p)
            if offset >= 0 && offset < e.count { return UnsafePointer(e.shadow + offset) }
        }
        return nil
    }

    /// Rounds `count` elements from `p` (inside a buffer with a shadow) into the shadow.
    func round(_ p: UnsafePointer<Float>, count: Int) {
        guard let s = shadow(of: p) else { preconditionFailure("BF16Shadows.round: no shadow for this buffer") }
        let src = UnsafeShared(p), dst = UnsafeShared(UnsafeMutablePointer(mutating: s))
        Parallel.forRows(count, rowCost: 1) { _, r in
            Conversion.roundToBF16(src.value + r.lowerBound, count: r.count, into: dst.value + r.lowerBound)
        }
    }

    /// Rounds all of `buffer` into its shadow.
    func round(_ buffer: FloatBuffer) { round(buffer.pointer, count: buffer.count) }
}
