import Foundation
import Tensors

/// The k nearest neighbours of every point, excluding the point itself (Euclidean).
public struct NearestNeighbors: Sendable {
    /// Number of points N.
    public var points: Int
    /// Neighbours per point k.
    public var k: Int
    /// `[N * k]`: row i lists the neighbours of point i, nearest first (ties by index).
    public var indices: [Int32]
    /// `[N * k]`: squared Euclidean distances matching `indices`, recomputed directly from the
    /// coordinates (not from the GEMM expansion) so that close pairs keep their precision.
    public var squaredDistances: [Float]

    /// Exact neighbours by brute force: blocks of rows against all points through one GEMM each
    /// (|x|^2 + |y|^2 - 2 x.y), a bounded max-heap per row, then exact distances of the winners.
    ///
    /// - Parameters:
    ///   - data: `[N, d]`, finite.
    ///   - k: neighbours per point, 1 ... N - 1.
    ///   - threads: workers for the per-row selection.
    /// - Throws: `EmbeddingError` for bad shapes, non-finite values or k out of range.
    public static func exact(_ data: Tensor, k: Int, threads: Int = defaultThreads) throws -> NearestNeighbors {
        try validatePoints(data, minimumPoints: 2)
        let n = data.rows
        guard k >= 1, k <= n - 1 else {
            throw EmbeddingError.invalidParameter(name: "neighbour count", value: "\(k)", expected: "1 ... \(n - 1)")
        }
        return exactUnchecked(PCA.centerColumns(data).0, k: k, threads: threads)
    }

    /// `exact` on validated, centred data.
    static func exactUnchecked(_ x: Tensor, k: Int, threads: Int) -> NearestNeighbors {
        let n = x.rows, d = x.columns
        let norms = rowSquaredNorms(x)
        var indices = [Int32](repeating: 0, count: n * k)
        var distances = [Float](repeating: 0, count: n * k)
        let blockRows = max(1, min(n, (1 << 22) / max(1, n)))   // about 16 MB of products per block
        var products = [Float](repeating: 0, count: blockRows * n)
        x.storage.withUnsafeBufferPointer { xp in
            let xb = xp.baseAddress!
            var start = 0
            while start < n {
                let rows = min(blockRows, n - start)
                products.withUnsafeMutableBufferPointer { g in
                    BLAS.gemm(transB: true, m: rows, n: n, k: d, a: xb + start * d, b: xb, c: g.baseAddress!)
                }
                let chunks = Chunks(count: rows, size: 32)
                products.withUnsafeBufferPointer { g in
                    indices.withUnsafeMutableBufferPointer { ip in
                        distances.withUnsafeMutableBufferPointer { dp in
                            let out = UncheckedSendable((ip, dp))
                            Parallel.forEach(chunks.chunkCount, threads: threads) { c in
                                var heap = NeighborHeap(capacity: k)
                                for r in chunks.range(c) {
                                    let i = start + r
                                    heap.removeAll()
                                    let row = g.baseAddress! + r * n
                                    let ni = norms[i]
                                    for j in 0..<n where j != i {
                                        heap.offer(max(0, ni + norms[j] - 2 * row[j]), Int32(j))
                                    }
                                    let sorted = heap.sortedAscending()
                                    for (t, entry) in sorted.enumerated() {
                                        let j = Int(entry.index)
                                        out.value.0[i * k + t] = entry.index
                                        var s: Float = 0
                                        for c in 0..<d {
                                            let diff = xb[i * d + c] - xb[j * d + c]
                                            s += diff * diff
                                        }
                                        out.value.1[i * k + t] = s
                                    }
                                }
                            }
                        }
                    }
                }
                start += rows
            }
        }
        return NearestNeighbors(points: n, k: k, indices: indices, squaredDistances: distances)
    }

    /// The default number of worker threads: the active processor count.
    public static var defaultThreads: Int { ProcessInfo.processInfo.activeProcessorCount }
}

/// All squared Euclidean distances `[N * N]` of centred data, by GEMM, clamped at 0, zero diagonal.
func pairwiseSquaredDistances(_ x: Tensor, threads: Int) -> [Float] {
    let n = x.rows, d = x.columns
    let norms = rowSquaredNorms(x)
    var out = [Float](repeating: 0, count: n * n)
    x.storage.withUnsafeBufferPointer { xp in
        out.withUnsafeMutableBufferPointer { o in
            BLAS.gemm(transB: true, m: n, n: n, k: d, a: xp.baseAddress!, b: xp.baseAddress!, c: o.baseAddress!)
            let chunks = Chunks(count: n, size: 64)
            let shared = UncheckedSendable(o)
            Parallel.forEach(chunks.chunkCount, threads: threads) { c in
                for i in chunks.range(c) {
                    let row = shared.value.baseAddress! + i * n
                    for j in 0..<n { row[j] = max(0, norms[i] + norms[j] - 2 * row[j]) }
                    row[i] = 0
                }
            }
        }
    }
    return out
}

/// Squared norm of every row.
func rowSquaredNorms(_ x: Tensor) -> [Float] {
    let n = x.rows, d = x.columns
    return x.storage.withUnsafeBufferPointer { p in
        (0..<n).map { i in
            var s: Float = 0
            for c in 0..<d { s += p[i * d + c] * p[i * d + c] }
            return s
        }
    }
}

/// A bounded max-heap keeping the `capacity` smallest (distance, index) pairs offered.
struct NeighborHeap {
    struct Entry { var distance: Float; var index: Int32 }
    private var items: [Entry] = []
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        items.reserveCapacity(capacity)
    }

    mutating func removeAll() { items.removeAll(keepingCapacity: true) }

    @inline(__always) private static func greater(_ a: Entry, _ b: Entry) -> Bool {
        a.distance > b.distance || (a.distance == b.distance && a.index > b.index)
    }

    @inline(__always) mutating func offer(_ distance: Float, _ index: Int32) {
        let e = Entry(distance: distance, index: index)
        if items.count < capacity {
            items.append(e)
            var c = items.count - 1
            while c > 0 {
                let p = (c - 1) / 2
                if !Self.greater(items[c], items[p]) { break }
                items.swapAt(c, p)
                c = p
            }
        } else if Self.greater(items[0], e) {
            items[0] = e
            var p = 0
            while true {
                let l = 2 * p + 1, r = l + 1
                var m = p
                if l < items.count, Self.greater(items[l], items[m]) { m = l }
                if r < items.count, Self.greater(items[r], items[m]) { m = r }
                if m == p { break }
                items.swapAt(p, m)
                p = m
            }
        }
    }

    func sortedAscending() -> [Entry] {
        items.sorted { Self.greater($1, $0) }
    }
}
