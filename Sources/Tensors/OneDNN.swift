import CBLAS
import CDNNL
import Foundation

/// The matrix-product kernels the project can run on, and the one it prefers.
///
/// oneDNN (`libdnnl.so.2`, Debian's `libdnnl2`) is loaded at run time when present; measured on
/// this project's 2-core AVX-512 machines its f32 products run 1.3-1.6x faster than OpenBLAS
/// 0.3.21's and it has bf16 products, which OpenBLAS lacks (shared/DESIGN.md). Without it every
/// product runs on OpenBLAS.
public enum GEMMKernel: String, Sendable, CaseIterable {
    /// OpenBLAS `cblas_sgemm` (always present).
    case openBLAS = "openblas"
    /// oneDNN's `dnnl_matmul`, loaded at run time.
    case oneDNN = "onednn"

    /// oneDNN when it loaded, else OpenBLAS; `MOE_INSPECT_GEMM=openblas` (or `onednn`) overrides.
    public static let preferred: GEMMKernel = {
        let asked = ProcessInfo.processInfo.environment["MOE_INSPECT_GEMM"].flatMap { GEMMKernel(rawValue: $0.lowercased()) }
        if asked == .openBLAS { return .openBLAS }
        return OneDNN.isAvailable ? .oneDNN : .openBLAS
    }()

    /// What runs, for reports: `onednn 2.6.3` or `openblas SkylakeX (oneDNN: why not)`.
    public static var description: String {
        switch preferred {
        case .oneDNN: return "onednn \(OneDNN.version)"
        case .openBLAS: return "openblas \(BLAS.coreName)" + (OneDNN.isAvailable ? "" : " (oneDNN: \(OneDNN.unavailableReason))")
        }
    }
}

/// oneDNN, loaded on first use.
public enum OneDNN {
    /// True when `libdnnl.so.2` loaded and offers every function used.
    public static var isAvailable: Bool { cdnnl_available() != 0 }
    /// Why oneDNN is not available (empty when it is).
    public static var unavailableReason: String { String(cString: cdnnl_unavailable_reason()) }
    /// The loaded version, e.g. `2.6.3` (empty when unavailable).
    public static var version: String { String(cString: cdnnl_version()) }
    /// True when oneDNN loaded and has BF16 products on this CPU (its BF16 kernels need AVX-512
    /// with BF16 units that its build recognises; some CPUs and virtual CPUs have none).
    public static let hasBF16Products: Bool = AnyShapeProduct(inputs: .bf16) != nil
}

/// A matrix product of fixed shape, `C[m, n] = alpha op(A) op(B) + beta C` (row-major, with
/// leading dimensions), that runs on the calling thread only, on oneDNN or OpenBLAS.
///
/// Callers split their work across the cores themselves, in blocks that depend only on the
/// problem size, so results do not depend on the number of threads. One product may run on
/// several threads at once, each with its own `Scratch`. With OpenBLAS the caller must have made
/// OpenBLAS single-threaded (`BLAS.withThreads(1)`) for the parallel section.
public final class ThreadProduct: @unchecked Sendable {
    /// Element type of A and B (C is always Float32).
    public enum Inputs: Sendable { case f32, bf16 }

    public let m: Int, n: Int, k: Int
    public let transA: Bool, transB: Bool
    public let lda: Int, ldb: Int, ldc: Int
    public let alpha: Float, beta: Float
    public let inputs: Inputs
    /// The kernel that runs it.
    public let kernel: GEMMKernel
    private let product: OpaquePointer?

    /// Memory one concurrent run of a product needs.
    public final class Scratch: @unchecked Sendable {
        let pointer: UnsafeMutableRawPointer?
        let bytes: Int
        /// Scratch memory for runs of `product`.
        public init(for product: ThreadProduct) {
            bytes = product.product.map { cdnnl_product_scratch_bytes($0) } ?? 0
            pointer = bytes > 0 ? UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64) : nil
        }
        deinit { pointer?.deallocate() }
    }

    /// A product of this shape on `kernel` (default: the preferred one). bf16 inputs need oneDNN:
    /// returns nil for them when oneDNN is unavailable.
    public init?(
        m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false,
        lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil, alpha: Float = 1, beta: Float = 0,
        inputs: Inputs = .f32, kernel: GEMMKernel = .preferred
    ) {
        guard m > 0, n > 0, k > 0 else { return nil }
        self.m = m; self.n = n; self.k = k; self.transA = transA; self.transB = transB
        self.lda = lda ?? (transA ? m : k); self.ldb = ldb ?? (transB ? k : n); self.ldc = ldc ?? n
        self.alpha = alpha; self.beta = beta; self.inputs = inputs
        var made: OpaquePointer? = nil
        if kernel == .oneDNN {
            made = cdnnl_product_create(
                Int64(m), Int64(n), Int64(k), inputs == .bf16 ? CDNNL_BF16 : CDNNL_F32,
                transA ? 1 : 0, Int64(self.lda), transB ? 1 : 0, Int64(self.ldb), Int64(self.ldc), alpha, beta)
        }
        if made == nil && inputs == .bf16 { return nil }
        product = made
        self.kernel = made == nil ? .openBLAS : .oneDNN
    }

    deinit { if let product { cdnnl_product_destroy(product) } }

    /// The oneDNN kernel chosen (e.g. `brg:avx512_core`), or `openblas`.
    public var kernelName: String { product.map { String(cString: cdnnl_product_kernel($0)) } ?? "openblas" }

    /// Runs the product on the calling thread. `a` and `b` point to Float (f32) or BF16 bits
    /// (UInt16, bf16) laid out as declared.
    public func run(a: UnsafeRawPointer, b: UnsafeRawPointer, c: UnsafeMutablePointer<Float>, scratch: Scratch) {
        if let product, cdnnl_product_run(product, a, b, c, scratch.pointer) == 0 { return }
        // OpenBLAS (also if a oneDNN run failed, which it does not on valid shapes).
        precondition(inputs == .f32, "bf16 products need oneDNN")
        BLAS.gemm(
            transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
            a: a.assumingMemoryBound(to: Float.self), lda: lda, b: b.assumingMemoryBound(to: Float.self), ldb: ldb,
            beta: beta, c: c, ldc: ldc)
    }
}

/// A matrix product of any shape, `C[m, n] = alpha op(A) op(B) + beta C` (row-major, with leading
/// dimensions), whose sizes come with each run, on oneDNN only (its runtime dimensions: one
/// primitive serves every shape, run by oneDNN's `gemm:jit` kernels, measured here as fast as
/// the fixed-shape `brg` ones for bf16). For products whose sizes change from call to call, such
/// as the rows each expert receives, where a fixed-shape `ThreadProduct` per size would pay
/// oneDNN's primitive creation (0.1-0.7 ms) again and again.
///
/// Runs on the calling thread only; one product may run on several threads at once.
public final class AnyShapeProduct: @unchecked Sendable {
    public let transA: Bool, transB: Bool
    public let alpha: Float, beta: Float
    public let inputs: ThreadProduct.Inputs
    private let product: OpaquePointer

    /// The product, or nil when oneDNN is unavailable or has no such product on this CPU.
    public init?(transA: Bool = false, transB: Bool = false, alpha: Float = 1, beta: Float = 0, inputs: ThreadProduct.Inputs) {
        guard
            let made = cdnnl_any_shape_product_create(
                inputs == .bf16 ? CDNNL_BF16 : CDNNL_F32, transA ? 1 : 0, transB ? 1 : 0,
                alpha, beta)
        else { return nil }
        self.transA = transA; self.transB = transB; self.alpha = alpha; self.beta = beta; self.inputs = inputs
        product = made
    }

    deinit { cdnnl_product_destroy(product) }

    /// The oneDNN kernel chosen (e.g. `gemm:jit`).
    public var kernelName: String { String(cString: cdnnl_product_kernel(product)) }

    /// Runs the product on the calling thread: A is `m x k` (`k x m` when `transA`), B `k x n`
    /// (`n x k` when `transB`), both Float (f32) or BF16 bits (UInt16, bf16) as declared.
    /// - Returns: false when oneDNN failed (it does not on valid sizes); C is then undefined.
    @discardableResult
    public func run(
        m: Int, n: Int, k: Int, a: UnsafeRawPointer, lda: Int, b: UnsafeRawPointer, ldb: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) -> Bool {
        cdnnl_any_shape_product_run(product, Int64(m), Int64(n), Int64(k), a, Int64(lda), b, Int64(ldb), c, Int64(ldc)) == 0
    }
}

extension BLAS {
    /// Runs `body` with OpenBLAS limited to `threads` threads, then restores the count.
    public static func withThreads<R>(_ threads: Int, _ body: () throws -> R) rethrows -> R {
        let saved = Int(openblas_get_num_threads())
        if saved != threads { setThreads(threads) }
        defer { if saved != threads { setThreads(saved) } }
        return try body()
    }
}
