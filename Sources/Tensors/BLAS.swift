import CBLAS
import Foundation

/// Matrix products on OpenBLAS. Every matrix product in the project goes through here.
public enum BLAS {
    /// Sets the number of OpenBLAS threads (1 keeps results independent of scheduling).
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }

    /// The kernel family OpenBLAS chose at load time (e.g. `SkylakeX`, `Haswell`, `Prescott`).
    public static var coreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    /// The OpenBLAS kernel this CPU supports when OpenBLAS fell back to a generic one, else nil.
    ///
    /// On virtual CPUs whose model OpenBLAS does not know, it picks `Prescott` (SSE3) kernels,
    /// about 3x slower than the AVX-512 ones the CPU runs (measured here: 27 against 85 GFLOP/s
    /// on the ERC product). The choice is made when the library loads, so it can only be changed
    /// through `OPENBLAS_CORETYPE` before the process starts.
    public static func betterCoreType(cpuinfo: String? = nil) -> String? {
        let generic: Set<String> = [
            "prescott", "katmai", "coppermine", "northwood", "banias", "core2", "penryn", "dunnington",
            "nehalem", "atom", "generic", "unknown",
        ]
        guard generic.contains(coreName.lowercased()) else { return nil }
        let info = cpuinfo ?? ((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "")
        guard let flagsLine = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        if ["avx512f", "avx512vl", "avx512bw", "avx512dq"].allSatisfy(flags.contains) { return "SkylakeX" }
        if ["avx2", "fma"].allSatisfy(flags.contains) { return "Haswell" }
        return nil
    }

    /// C = alpha * op(A) * op(B) + beta * C, row-major.
    ///
    /// - Parameters:
    ///   - a: `m x k` (or `k x m` when `transA`), leading dimension `lda` (default: its row length).
    ///   - b: `k x n` (or `n x k` when `transB`), leading dimension `ldb`.
    ///   - c: `m x n`, leading dimension `ldc` (default `n`).
    @inlinable
    public static func gemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int? = nil,
        b: UnsafePointer<Float>, ldb: Int? = nil,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int? = nil
    ) {
        let la = lda ?? (transA ? m : k)
        let lb = ldb ?? (transB ? k : n)
        let lc = ldc ?? n
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(la), b, Int32(lb), beta, c, Int32(lc))
    }

    /// Product of two tensors viewed as matrices: `op(a) * op(b)`.
    public static func matmul(_ a: Tensor, _ b: Tensor, transA: Bool = false, transB: Bool = false) -> Tensor {
        let m = transA ? a.columns : a.rows, k = transA ? a.rows : a.columns
        let n = transB ? b.rows : b.columns
        precondition(k == (transB ? b.columns : b.rows), "matmul: inner dimensions differ")
        var out = Tensor(shape: [m, n])
        a.storage.withUnsafeBufferPointer { pa in
            b.storage.withUnsafeBufferPointer { pb in
                out.storage.withUnsafeMutableBufferPointer { pc in
                    guard let ap = pa.baseAddress, let bp = pb.baseAddress, let cp = pc.baseAddress else { return }
                    gemm(
                        transA: transA, transB: transB, m: m, n: n, k: k, a: ap, lda: a.columns,
                        b: bp, ldb: b.columns, c: cp)
                }
            }
        }
        return out
    }
}
