import Dispatch
import Foundation

/// Norms of matrix-vector products over a sequence of matrices read one at a time:
/// `N[i, e] = || W_e x_i ||_2` for vectors x_i (rows of X [m, d]) and matrices W_e [r, d].
///
/// This is ERC's activation matrix when the W_e are the experts' gate projections and the x_i
/// the proxy tokens. It costs `2 m r d` FLOPs per matrix; the matrices are never all in memory:
/// each worker reads one matrix into its own buffer, multiplies it on its own core
/// (`ThreadProduct`: oneDNN when present, else single-threaded OpenBLAS) and reduces the
/// product to norms while it is in cache, so memory holds one matrix per worker and reading
/// overlaps the products of the other workers. Each matrix's numbers are computed by one thread
/// in a fixed order, so results do not depend on the number of workers.
public enum ProductNorms {
    /// Where the matrices come from.
    public struct Source: Sendable {
        /// Number of matrices, rows r and columns d of each.
        public var count: Int, rows: Int, columns: Int
        /// Decodes matrix e [r, d] to Float32 into the buffer (exactly r * d long).
        public var read: @Sendable (Int, UnsafeMutableBufferPointer<Float>) throws -> Void
        /// Copies matrix e's stored BF16 bits (r * d UInt16) when every matrix is stored as BF16,
        /// else nil. Lets oneDNN multiply the stored bits directly (see `compute`).
        public var readBF16: (@Sendable (Int, UnsafeMutableBufferPointer<UInt16>) throws -> Void)?
        /// Hints that matrix e will be read soon (e.g. `posix_fadvise`).
        public var prefetch: @Sendable (Int) -> Void

        public init(
            count: Int, rows: Int, columns: Int,
            read: @escaping @Sendable (Int, UnsafeMutableBufferPointer<Float>) throws -> Void,
            readBF16: (@Sendable (Int, UnsafeMutableBufferPointer<UInt16>) throws -> Void)? = nil,
            prefetch: @escaping @Sendable (Int) -> Void = { _ in }
        ) {
            self.count = count; self.rows = rows; self.columns = columns
            self.read = read; self.readBF16 = readBF16; self.prefetch = prefetch
        }
    }

    /// The norms and what was measured on the way.
    public struct Result: Sendable {
        /// N [m, count].
        public var norms: Tensor
        /// ||W_e||_F per matrix (non-finite exactly when W_e holds NaN or Inf, or overflows).
        public var frobenius: [Double]
        /// Seconds the workers spent reading, summed over workers and divided by their number.
        public var readSeconds: Double
        /// What multiplied: `onednn brg:avx512_core f32`, `openblas`, ...
        public var kernel: String
    }

    /// How the products are formed.
    public enum Precision: Sendable {
        /// Float32 products of the decoded matrices.
        case f32
        /// For BF16-stored matrices on oneDNN: X is split as X = X_hi + X_lo + r with X_hi, X_lo
        /// in BF16 (|r| <= 2^-16 |X|), and `W [X_hi; X_lo]^T` is one BF16 product with Float32
        /// accumulation (the BF16 x BF16 products are exact). Relative error about 1e-7 against
        /// the Float32 product, at the cost of one Float32 product and without decoding W.
        case splitBF16
        /// `splitBF16` where it pays: the source offers BF16 bits, oneDNN is in use and its BF16
        /// kernel for this shape runs on AMX tiles; else `f32`. The split doubles the products'
        /// work, so it wins only where BF16 products run well over twice as fast as Float32 ones:
        /// measured on this project's machines, with AVX-512 BF16 instructions alone (no AMX) the
        /// split ran 2-4x slower than decoding and multiplying in Float32 (`make bench`).
        case automatic
    }

    /// `MOE_INSPECT_PRODUCT=f32` or `split-bf16` fixes what `.automatic` chooses.
    static let forced: Precision? = {
        switch ProcessInfo.processInfo.environment["MOE_INSPECT_PRODUCT"] {
        case "f32": return .f32
        case "split-bf16": return .splitBF16
        default: return nil
        }
    }()

    /// True when oneDNN's BF16 product of an expert-sized shape runs on AMX (kernel names such
    /// as `brg:avx512_core_amx`), where the split pays; decided once per process from the
    /// kernel oneDNN picks for this CPU, so every run on the machine multiplies the same way.
    static let bf16RunsOnAMX: Bool = {
        guard let p = ThreadProduct(m: 1024, n: 128, k: 2048, transB: true, inputs: .bf16, kernel: .oneDNN) else { return false }
        return p.kernelName.contains("amx")
    }()

    /// Computes N for proxies `x` [m, d] over `source`'s matrices on `workers` threads.
    /// - Throws: the first error of `source.read`; no further matrices are started after it.
    public static func compute(
        x: Tensor, source: Source, precision: Precision = .automatic, kernel: GEMMKernel = .preferred,
        workers: Int = ProcessInfo.processInfo.activeProcessorCount
    ) throws -> Result {
        let m = x.rows, d = source.columns, r = source.rows, n = source.count
        precondition(x.columns == d && m > 0 && r > 0 && d > 0, "ProductNorms: X [\(m), \(x.columns)] against matrices [\(r), \(d)]")
        let split: Bool
        switch precision {
        case .f32: split = false
        case .splitBF16: split = source.readBF16 != nil && kernel == .oneDNN
        case .automatic:
            if let forced { return try compute(x: x, source: source, precision: forced, kernel: kernel, workers: workers) }
            split = source.readBF16 != nil && kernel == .oneDNN && bf16RunsOnAMX
        }
        // C [r, m] (or [r, 2m]) = W [r, d] X^T: W is the large operand, streamed once.
        let columns = split ? 2 * m : m
        guard
            let product = ThreadProduct(
                m: r, n: columns, k: d, transB: true, lda: d, ldb: d, ldc: columns,
                inputs: split ? .bf16 : .f32, kernel: kernel)
        else {
            // no BF16 product on this CPU: Float32 products on the same kernel (never nil for f32)
            return try compute(x: x, source: source, precision: .f32, kernel: kernel, workers: workers)
        }
        var xb = [UInt16]()
        if split {
            xb = [UInt16](repeating: 0, count: 2 * m * d)
            x.storage.withUnsafeBufferPointer { xs in
                for i in 0..<(m * d) {
                    let hi = Conversion.bf16Bits(xs[i])
                    xb[i] = hi
                    xb[m * d + i] = Conversion.bf16Bits(xs[i] - Float(bitPattern: UInt32(hi) << 16))
                }
            }
        }
        var out = Tensor(shape: [m, n])
        var frob = [Double](repeating: 0, count: n)
        var readTime = [Double](repeating: 0, count: max(1, workers))
        let failure = FirstFailure()
        let next = Counter()
        let threads = max(1, min(workers, n))
        let body = {
            out.storage.withUnsafeMutableBufferPointer { ob in
                frob.withUnsafeMutableBufferPointer { fb in
                    readTime.withUnsafeMutableBufferPointer { tb in
                        x.storage.withUnsafeBufferPointer { xs in
                            xb.withUnsafeBufferPointer { xbs in
                                let shared = UnsafeShared(
                                    (
                                        ob.baseAddress!, fb.baseAddress!, tb.baseAddress!,
                                        split ? UnsafeRawPointer(xbs.baseAddress!) : UnsafeRawPointer(xs.baseAddress!)
                                    ))
                                DispatchQueue.concurrentPerform(iterations: threads) { w in
                                    let (o, f, t, xp) = shared.value
                                    let scratch = ThreadProduct.Scratch(for: product)
                                    let weights = UnsafeMutableBufferPointer<Float>.allocate(capacity: split ? 0 : r * d)
                                    let bits = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: split ? r * d : 0)
                                    let c = UnsafeMutablePointer<Float>.allocate(capacity: r * columns)
                                    defer { weights.deallocate(); bits.deallocate(); c.deallocate() }
                                    var seconds = 0.0
                                    while !failure.happened, let e = next.take(below: n) {
                                        if e + threads < n { source.prefetch(e + threads) }
                                        let t0 = Date()
                                        do {
                                            if split, let readBits = source.readBF16 { try readBits(e, bits) } else { try source.read(e, weights) }
                                        } catch {
                                            failure.record(error)
                                            break
                                        }
                                        seconds += Date().timeIntervalSince(t0)
                                        if split {
                                            f[e] = frobeniusBF16(bits.baseAddress!, count: r * d)
                                            product.run(a: UnsafeRawPointer(bits.baseAddress!), b: xp, c: c, scratch: scratch)
                                        } else {
                                            f[e] = frobenius(weights.baseAddress!, count: r * d)
                                            product.run(a: UnsafeRawPointer(weights.baseAddress!), b: xp, c: c, scratch: scratch)
                                        }
                                        columnNorms(c, rows: r, m: m, split: split, into: o + e, stride: n)
                                    }
                                    t[w] = seconds
                                }
                            }
                        }
                    }
                }
            }
        }
        if product.kernel == .openBLAS { BLAS.withThreads(1, body) } else { body() }
        if let e = failure.error { throw e }
        return Result(
            norms: out, frobenius: frob, readSeconds: readTime.reduce(0, +) / Double(threads),
            kernel: product.kernel == .oneDNN ? "onednn \(product.kernelName)\(split ? " split-bf16" : " f32")" : "openblas")
    }

    /// ||p[0..<count]||_2: blocks of 256 squares summed in 16 Float lanes, each block's lanes
    /// then added in Double. (A single Float accumulator is one dependent chain of additions,
    /// latency-bound at a fraction of the machine's speed.) A block whose squares overflow or
    /// underflow Float32 is summed in Double instead, so weights of any finite magnitude give
    /// their norm, and NaN or Inf give a non-finite norm.
    public static func frobenius(_ p: UnsafePointer<Float>, count: Int) -> Double {
        let raw = UnsafeRawPointer(p)
        return sumOfSquares(count: count, element: { Double(p[$0]) }) { k in
            var acc = SIMD16<Float>()
            for j in 0..<16 { let v = raw.loadUnaligned(fromByteOffset: 4 * (k + 16 * j), as: SIMD16<Float>.self); acc += v * v }
            return acc.sum()
        }.squareRoot()
    }

    /// ||p[0..<count]||_2 of BF16 bits: as `frobenius`, with the even and odd elements of each
    /// pair in separate lanes; agrees with `frobenius` of the decoded values to about 1e-7.
    public static func frobeniusBF16(_ p: UnsafePointer<UInt16>, count: Int) -> Double {
        let raw = UnsafeRawPointer(p)
        return sumOfSquares(count: count, element: { Double(Float(bitPattern: UInt32(p[$0]) << 16)) }) { k in
            var even = SIMD8<Float>(), odd = SIMD8<Float>()
            for j in 0..<16 {
                // 8 UInt32 = 16 BF16: the low half of each is the even element
                let pairs = raw.loadUnaligned(fromByteOffset: 2 * (k + 16 * j), as: SIMD8<UInt32>.self)
                let lo = unsafeBitCast(pairs &<< 16, to: SIMD8<Float>.self)
                let hi = unsafeBitCast(pairs & 0xFFFF_0000, to: SIMD8<Float>.self)
                even += lo * lo; odd += hi * hi
            }
            return even.sum() + odd.sum()
        }.squareRoot()
    }

    /// Sum of squares over blocks of 256 (`block(k)`: the Float sum of block k..<k+256), each
    /// block added in Double, or summed element by element in Double when its Float sum
    /// overflowed, underflowed, or is zero while an element is not.
    @inline(__always)
    static func sumOfSquares(count: Int, element: (Int) -> Double, block: (Int) -> Float) -> Double {
        var s = 0.0, k = 0
        func exact(_ range: Range<Int>) -> Double { var t = 0.0; for i in range { let v = element(i); t += v * v }; return t }
        while k + 256 <= count {
            let acc = block(k)
            if acc.isFinite && acc >= 1e-30 || acc == 0 && !(k..<(k + 256)).contains(where: { element($0) != 0 }) {
                s += Double(acc)
            } else {
                s += exact(k..<(k + 256))
            }
            k += 256
        }
        if k < count { s += exact(k..<count) }
        return s
    }

    /// out[i * stride] = || C[:, i] ||_2 over the r rows of C [r, m] (split: C [r, 2m], column i
    /// being C[:, i] + C[:, m + i]): blocks of 64 rows summed in Float, the blocks in Double.
    static func columnNorms(_ c: UnsafePointer<Float>, rows r: Int, m: Int, split: Bool, into out: UnsafeMutablePointer<Float>, stride: Int) {
        let ld = split ? 2 * m : m
        let acc = UnsafeMutablePointer<Float>.allocate(capacity: m)
        let total = UnsafeMutablePointer<Double>.allocate(capacity: m)
        defer { acc.deallocate(); total.deallocate() }
        total.initialize(repeating: 0, count: m)
        var k = 0
        while k < r {
            let stop = min(r, k + 64)
            acc.initialize(repeating: 0, count: m)
            for row in k..<stop {
                let p = c + row * ld
                if split {
                    for i in 0..<m { let v = p[i] + p[m + i]; acc[i] += v * v }
                } else {
                    for i in 0..<m { let v = p[i]; acc[i] += v * v }
                }
            }
            for i in 0..<m {
                let a = acc[i]
                if a.isFinite && a >= 1e-30 {
                    total[i] += Double(a)
                } else {
                    // squares that overflow or underflow Float32: this block in Double
                    for row in k..<stop {
                        let p = c + row * ld
                        let v = split ? Double(p[i] + p[m + i]) : Double(p[i])
                        total[i] += v * v
                    }
                }
            }
            k = stop
        }
        for i in 0..<m { out[i * stride] = Float(total[i].squareRoot()) }
    }
}

/// Hands out item numbers to workers under a lock.
private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0
    func take(below limit: Int) -> Int? {
        lock.lock(); defer { lock.unlock() }
        guard next < limit else { return nil }
        next += 1
        return next - 1
    }
}

/// The first error of concurrent workers.
private final class FirstFailure: @unchecked Sendable {
    private let lock = NSLock()
    private var first: Error?
    var happened: Bool { lock.lock(); defer { lock.unlock() }; return first != nil }
    var error: Error? { lock.lock(); defer { lock.unlock() }; return first }
    func record(_ e: Error) { lock.lock(); defer { lock.unlock() }; if first == nil { first = e } }
}
