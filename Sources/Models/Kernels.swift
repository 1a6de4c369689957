import Dispatch
import Foundation
import Tensors

// The numeric kernels of the forward pass: work splitting, matrix products in shape-determined
// blocks, vectorised exp / softmax / SwiGLU. Mirrors Training's kernels (Parallel, ParallelGEMM,
// VectorMath), which are internal to that target, so that results do not depend on the thread
// count either.

/// A pointer handed to workers of `DispatchQueue.concurrentPerform` that touch disjoint parts.
struct SharedPointer<T>: @unchecked Sendable {
    let p: UnsafeMutablePointer<T>
    init(_ p: UnsafeMutablePointer<T>) { self.p = p }
    init(_ p: UnsafePointer<T>) { self.p = UnsafeMutablePointer(mutating: p) }
}

/// A fixed-size, 64-byte aligned block of Float32 (activations and scratch of the executor).
final class Buffer: @unchecked Sendable {
    let count: Int
    let pointer: UnsafeMutablePointer<Float>

    /// A buffer of `count` elements, zero-filled unless `zeroed` is false (scratch that is
    /// always written before it is read).
    init(count: Int, zeroed: Bool = true) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(1, count))
        if zeroed { pointer.initialize(repeating: 0, count: max(1, count)) }
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}

/// Scratch buffers reused from chunk to chunk and layer to layer: no allocation, page faults or
/// zero fill in the loop. A slot holds one buffer, grown when a larger one is asked for; its
/// contents are undefined until written.
final class Scratch: @unchecked Sendable {
    enum Slot: Int, CaseIterable {
        case query, key, value, output, queryLatent, keyValueLatent, latent, keyValue, scores
        case feedForwardGate, feedForwardUp, expertInput, expertGateUp, expertOutput, shared
    }
    private var buffers = [Buffer?](repeating: nil, count: Slot.allCases.count)

    /// Room for at least `count` floats in `slot`.
    func callAsFunction(_ slot: Slot, _ count: Int) -> UnsafeMutablePointer<Float> {
        if let b = buffers[slot.rawValue], b.count >= count { return b.pointer }
        let b = Buffer(count: count, zeroed: false)
        buffers[slot.rawValue] = b
        return b.pointer
    }
}

/// Work splitting whose chunks depend only on the problem size, never on the thread count.
enum Parallel {
    static func chunkRows(rows: Int, rowCost: Int) -> Int { max(1, min(rows, 65_536 / max(1, rowCost))) }

    /// Runs `body(chunkIndex, rowRange)` over `rows` rows in fixed chunks, concurrently when
    /// there is more than one chunk.
    static func forRows(_ rows: Int, rowCost: Int, _ body: @Sendable (Int, Range<Int>) -> Void) {
        let chunk = chunkRows(rows: rows, rowCost: rowCost)
        let chunks = (rows + chunk - 1) / chunk
        if chunks <= 1 {
            if rows > 0 { body(0, 0..<rows) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: chunks) { c in body(c, (c * chunk)..<min(rows, (c + 1) * chunk)) }
    }

    /// Runs `body(i)` for i in 0..<count concurrently (each i independent).
    static func forEach(_ count: Int, _ body: @Sendable (Int) -> Void) {
        if count == 1 { body(0); return }
        if count > 1 { DispatchQueue.concurrentPerform(iterations: count, execute: body) }
    }
}

/// oneDNN products by shape, made once: a forward pass runs the same few shapes for every chunk
/// of tokens and layer, and making a product costs far more than looking it up.
final class ProductCache: @unchecked Sendable {
    struct Key: Hashable {
        var transA: Bool, transB: Bool
        var m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int
        var alpha: Float, beta: Float
    }
    static let shared = ProductCache()
    private let lock = NSLock()
    private var products: [Key: ThreadProduct] = [:]

    func product(_ key: Key) -> ThreadProduct? {
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

/// Matrix products (on oneDNN or OpenBLAS) cut into blocks of rows or columns of C that depend only
/// on the shape, computed concurrently with OpenBLAS single-threaded: the same bits on any
/// number of cores.
enum ParallelGEMM {
    static let blockSize = 256

    /// One product `C = alpha op(A) op(B) + beta C`, row-major.
    struct Call: @unchecked Sendable {
        var transA = false, transB = false
        var m: Int, n: Int, k: Int
        var alpha: Float = 1
        var a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int
        var beta: Float = 0
        var c: UnsafeMutablePointer<Float>, ldc: Int

        var split: (rows: Bool, size: Int, blocks: Int) {
            let rows = m >= n, dim = rows ? m : n
            guard dim > 16, 2 * m * n * k >= 4_000_000 else { return (rows, max(1, dim), 1) }
            var blocks = max(2, (dim + ParallelGEMM.blockSize - 1) / ParallelGEMM.blockSize)
            if blocks % 2 == 1 { blocks += 1 }
            let size = ((dim + blocks - 1) / blocks + 15) / 16 * 16
            return (rows, size, (dim + size - 1) / size)
        }

        func run(block i: Int, of s: (rows: Bool, size: Int, blocks: Int)) {
            if s.blocks <= 1 {
                product(m: m, n: n, a: a, b: b, c: c)
            } else if s.rows {
                let r0 = i * s.size, rows = min(m, r0 + s.size) - r0
                product(m: rows, n: n, a: transA ? a + r0 : a + r0 * lda, b: b, c: c + r0 * ldc)
            } else {
                let c0 = i * s.size, cols = min(n, c0 + s.size) - c0
                product(m: m, n: cols, a: a, b: transB ? b + c0 * ldb : b + c0, c: c + c0)
            }
        }

        /// One block on the calling thread: oneDNN when it loaded (its f32 products run
        /// 1.3-1.6x faster than OpenBLAS's here), OpenBLAS otherwise.
        func product(m: Int, n: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>) {
            if GEMMKernel.preferred == .oneDNN,
                let p = ProductCache.shared.product(
                    ProductCache.Key(transA: transA, transB: transB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc, alpha: alpha, beta: beta)),
                p.kernel == .oneDNN
            {
                p.run(a: a, b: b, c: c, scratch: ThreadProduct.Scratch(for: p))
                return
            }
            BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
    }

    /// `C = alpha op(A) op(B) + beta C` in shape-determined blocks run concurrently.
    static func gemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        batch([
            Call(
                transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                beta: beta, c: c, ldc: ldc)
        ])
    }

    /// Independent products (no call writes what another reads or writes), all blocks in one pass.
    static func batch(_ calls: [Call]) {
        var jobs: [(call: Int, block: Int)] = []
        let splits = calls.map(\.split)
        for (i, s) in splits.enumerated() where calls[i].m > 0 && calls[i].n > 0 {
            if calls[i].k == 0 {
                // C = beta C (BLAS would do the same; done here to keep the row split trivial)
                let c = calls[i]
                for r in 0..<c.m { for j in 0..<c.n { c.c[r * c.ldc + j] *= c.beta } }
                continue
            }
            for b in 0..<s.blocks { jobs.append((i, b)) }
        }
        if jobs.count <= 1 {
            for j in jobs { calls[j.call].run(block: j.block, of: splits[j.call]) }
            return
        }
        jobs.withUnsafeBufferPointer { jp in
            calls.withUnsafeBufferPointer { cp in
                splits.withUnsafeBufferPointer { sp in
                    guard let jb = jp.baseAddress, let cb = cp.baseAddress, let sb = sp.baseAddress else { return }
                    let j = SharedPointer(jb), c = SharedPointer(cb), s = SharedPointer(sb)
                    DispatchQueue.concurrentPerform(iterations: jp.count) { i in
                        let job = j.p[i]
                        c.p[job.call].run(block: job.block, of: s.p[job.call])
                    }
                }
            }
        }
    }
}

/// Vectorised kernels on 16-lane Float vectors; every element goes through the same code
/// (tails padded into a full vector), so results do not depend on where a row starts.
enum VectorMath {
    typealias V = SIMD16<Float>
    static let width = 16

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }

    @inline(__always)
    static func loadPartial(_ p: UnsafePointer<Float>, _ count: Int, fill: Float = 0) -> V {
        var v = V(repeating: fill)
        for i in 0..<count { v[i] = p[i] }
        return v
    }

    @inline(__always)
    static func storePartial(_ v: V, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
        for i in 0..<count { p[i] = v[i] }
    }

    /// e^x to about 2 ulp (Cephes' expf), inputs clamped to [-87.3, 88.3].
    @inline(__always)
    static func exp(_ xIn: V) -> V {
        let lo = V(repeating: -87.3), hi = V(repeating: 88.3)
        var x = xIn.replacing(with: lo, where: xIn .< lo)
        x = x.replacing(with: hi, where: x .> hi)
        let magic = V(repeating: 12_582_912)
        let t = x * 1.442_695_04 + magic
        let n = t - magic
        var r = x - n * 0.693_359_375
        r = r + n * 2.121_944_40e-4
        var p = V(repeating: 1.987_569_150_0e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        p = p * (r * r) + r + 1
        let ni = unsafeBitCast(t, to: SIMD16<Int32>.self) &- unsafeBitCast(magic, to: SIMD16<Int32>.self)
        let scale = unsafeBitCast((ni &+ 127) &<< 23, to: V.self)
        return p * scale
    }

    @inline(__always) static func vmax(_ a: V, _ b: V) -> V { a.replacing(with: b, where: b .> a) }

    @inline(__always)
    static func sum(_ v: V) -> Float {
        let a = v.lowHalf + v.highHalf
        let b = a.lowHalf + a.highHalf
        let c = b.lowHalf + b.highHalf
        return c[0] + c[1]
    }

    @inline(__always)
    static func max(_ v: V) -> Float {
        var m = v[0]
        for i in 1..<16 where v[i] > m { m = v[i] }
        return m
    }

    /// sum_j a[j] b[j].
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = V(), j = 0
        while j + width <= n { acc = acc + load(a + j) * load(b + j); j += width }
        if j < n { acc = acc + loadPartial(a + j, n - j) * loadPartial(b + j, n - j) }
        return sum(acc)
    }

    /// Softmax of `row[0..<n]` in place, each element first multiplied by `scale`.
    @inline(__always)
    static func softmaxInPlace(_ row: UnsafeMutablePointer<Float>, _ n: Int, scale: Float) {
        let full = n / width * width, rest = n - full
        var mx = V(repeating: -.infinity), j = 0
        while j < full { mx = vmax(mx, load(row + j) * scale); j += width }
        if rest > 0 { mx = vmax(mx, loadPartial(row + full, rest, fill: -.infinity) * scale) }
        let m = V(repeating: max(mx))
        var s = V()
        j = 0
        while j < full { let e = exp(load(row + j) * scale - m); store(e, row + j); s = s + e; j += width }
        if rest > 0 {
            let e = exp(loadPartial(row + full, rest) * scale - m)
            var masked = V()
            for i in 0..<rest { masked[i] = e[i] }
            storePartial(e, row + full, rest)
            s = s + masked
        }
        let inv = 1 / sum(s)
        j = 0
        while j < full { store(load(row + j) * inv, row + j); j += width }
        if rest > 0 { storePartial(loadPartial(row + full, rest) * inv, row + full, rest) }
    }

    /// `out[j] = SiLU(g[j]) * u[j] = g[j] / (1 + e^-g[j]) * u[j]`.
    static func swiglu(gate g: UnsafePointer<Float>, up u: UnsafePointer<Float>, out o: UnsafeMutablePointer<Float>, count: Int) {
        @inline(__always) func f(_ g: V, _ u: V) -> V { g / (1 + exp(-g)) * u }
        var j = 0
        while j + width <= count { store(f(load(g + j), load(u + j)), o + j); j += width }
        if j < count {
            let n = count - j
            storePartial(f(loadPartial(g + j, n), loadPartial(u + j, n)), o + j, n)
        }
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
