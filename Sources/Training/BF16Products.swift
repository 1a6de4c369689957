import Foundation
import Tensors

/// The BF16 matrix products of `--precision bf16`: Float32 output and accumulation of BF16
/// operands, one any-shape product per (transA, transB, beta) that training's products use
/// (alpha 1, beta 0 or 1).
///
/// They run on oneDNN's BF16 kernels where oneDNN has them on this CPU (AVX-512 BF16 units). Where
/// it has none (oneDNN missing, an older CPU, or a CPU that oneDNN's build does not recognise),
/// the same products are *emulated*: the BF16 operands are widened to Float32, which is exact,
/// and multiplied in Float32. The numbers are those of the hardware products up to the order of
/// the Float32 additions (every product of two BF16 values is exact in Float32); only the speed-up
/// is lost. `isEmulated` says which runs, so that the trainer can tell the user.
final class BF16Products: @unchecked Sendable {
    private let table: [AnyShapeProduct]
    /// Why the products are emulated, nil when oneDNN's BF16 kernels run them.
    let emulationReason: String?

    /// True when the products run in Float32 on widened BF16 operands (no BF16 kernel here).
    var isEmulated: Bool { emulationReason != nil }

    /// What runs, for a log line: oneDNN's kernel, or the emulation and why.
    var description: String {
        if let emulationReason { return "BF16 products emulated in Float32 (\(emulationReason)): same rounding, no speed-up" }
        return "BF16 products on oneDNN \(OneDNN.version) (\(table.first?.kernelName ?? "?"))"
    }

    /// - Parameters:
    ///   - kernel: the kernel asked for (`MOE_INSPECT_GEMM=openblas` asks for OpenBLAS, which
    ///     has no BF16 products: they are emulated).
    ///   - unavailableReason: why oneDNN did not load, nil when it did.
    ///   - emulate: emulate even where oneDNN's BF16 kernels exist (for tests).
    init(
        kernel: GEMMKernel = .preferred,
        unavailableReason: String? = OneDNN.isAvailable ? nil : OneDNN.unavailableReason, emulate: Bool = false
    ) {
        var reason: String? = nil
        if emulate {
            reason = "asked for"
        } else if let unavailableReason {
            reason = "oneDNN is unavailable: \(unavailableReason)"
        } else if kernel != .oneDNN {
            reason = "MOE_INSPECT_GEMM=openblas asks for OpenBLAS, which has no BF16 products"
        }
        var made: [AnyShapeProduct] = []
        if reason == nil {
            for index in 0..<8 {
                guard let p = AnyShapeProduct(transA: index & 1 != 0, transB: index & 2 != 0, beta: index & 4 != 0 ? 1 : 0, inputs: .bf16) else {
                    reason = "oneDNN \(OneDNN.version) has no BF16 products on this CPU"
                    made = []
                    break
                }
                made.append(p)
            }
        }
        table = made
        emulationReason = reason
    }

    /// `C = op(A) op(B) + beta C` on the calling thread, A and B BF16 bits laid out as
    /// `BLAS.gemm`'s operands, C Float32; beta 0 or 1.
    func multiply(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, a: UnsafePointer<UInt16>, lda: Int,
        b: UnsafePointer<UInt16>, ldb: Int, beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        precondition(beta == 0 || beta == 1, "BF16 products are made for beta 0 and 1")
        if m == 0 || n == 0 { return }
        if k == 0 {  // C = beta C, as BLAS does
            if beta == 0 { for r in 0..<m { (c + r * ldc).update(repeating: 0, count: n) } }
            return
        }
        guard !table.isEmpty else {
            Self.emulated(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        let ran = table[(transA ? 1 : 0) + (transB ? 2 : 0) + (beta == 1 ? 4 : 0)]
            .run(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc)
        precondition(ran, "oneDNN failed a BF16 product of valid sizes (\(m) x \(n) x \(k))")
    }

    /// The emulated product: both operands widened (exactly) into packed Float32 copies, then one
    /// Float32 product on the calling thread (training runs OpenBLAS single-threaded).
    private static func emulated(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<UInt16>, lda: Int,
        b: UnsafePointer<UInt16>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        // op(A) is m x k: stored as m rows of k (or k rows of m when transposed); likewise B.
        let (aRows, aCols) = transA ? (k, m) : (m, k)
        let (bRows, bCols) = transB ? (n, k) : (k, n)
        let wa = UnsafeMutablePointer<Float>.allocate(capacity: aRows * aCols)
        let wb = UnsafeMutablePointer<Float>.allocate(capacity: bRows * bCols)
        defer { wa.deallocate(); wb.deallocate() }
        widen(a, rows: aRows, columns: aCols, stride: lda, into: wa)
        widen(b, rows: bRows, columns: bCols, stride: ldb, into: wb)
        BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: wa, lda: aCols, b: wb, ldb: bCols, beta: beta, c: c, ldc: ldc)
    }

    /// BF16 bits are the top half of a Float32: widening is a shift, and exact.
    private static func widen(_ source: UnsafePointer<UInt16>, rows: Int, columns: Int, stride: Int, into destination: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let s = source + r * stride, d = destination + r * columns
            for j in 0..<columns { d[j] = Float(bitPattern: UInt32(s[j]) << 16) }
        }
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
