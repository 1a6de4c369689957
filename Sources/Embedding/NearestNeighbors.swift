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
    /// (|x|^2 + |y|^2 - 2 x.y) and a bounded max-heap per row give the k-th candidate distance t;
    /// every point within t plus a bound on the GEMM's rounding error is then re-ranked by its
    /// directly summed distance, ties by index. The result is therefore the same whatever the
    /// thread counts of OpenBLAS and of this function, and exact up to Float rounding.
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
        let maxNorm = norms.max() ?? 0
        // |computed - exact| of |x|^2 + |y|^2 - 2 x.y is below (d + 2) u (|x|^2 + |y|^2).
        let rounding = Float(d + 2) * Float.ulpOfOne
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
                                var candidates = [Float](repeating: 0, count: n)
                                var heap = NeighborHeap(capacity: k)
                                var near: [(distance: Float, index: Int32)] = []
                                for r in chunks.range(c) {
                                    let i = start + r
                                    let row = g.baseAddress! + r * n
                                    let ni = norms[i]
                                    for j in 0..<n { candidates[j] = max(0, ni + norms[j] - 2 * row[j]) }
                                    heap.select(candidates, skipping: i)
                                    let limit = heap.distances[k - 1] + 2 * rounding * (ni + maxNorm)
                                    near.removeAll(keepingCapacity: true)
                                    for j in 0..<n where j != i && candidates[j] <= limit {
                                        var s: Float = 0
                                        for c in 0..<d {
                                            let diff = xb[i * d + c] - xb[j * d + c]
                                            s += diff * diff
                                        }
                                        near.append((s, Int32(j)))
                                    }
                                    near.sort { $0.distance < $1.distance || ($0.distance == $1.distance && $0.index < $1.index) }
                                    for t in 0..<k {
                                        out.value.0[i * k + t] = near[t].index
                                        out.value.1[i * k + t] = near[t].distance
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

/// Selects the `capacity` smallest candidates of a row, ties going to the smaller index.
struct NeighborHeap {
    let capacity: Int
    /// After `select`: the chosen distances and indices, in increasing (distance, index) order.
    private(set) var distances: [Float]
    private(set) var indices: [Int32]

    init(capacity: Int) {
        self.capacity = capacity
        distances = .init(repeating: 0, count: capacity)
        indices = .init(repeating: 0, count: capacity)
    }

    /// Scans `candidates` (distance by index), leaving out index `skip`.
    mutating func select(_ candidates: [Float], skipping skip: Int) {
        let k = capacity
        candidates.withUnsafeBufferPointer { cand in
            distances.withUnsafeMutableBufferPointer { hd in
                indices.withUnsafeMutableBufferPointer { hi in
                    var size = 0
                    var j = 0
                    // Fill, then keep a max-heap on (distance, index) at the root.
                    while size < k {
                        if j != skip {
                            hd[size] = cand[j]; hi[size] = Int32(j); size += 1
                            NeighborHeap.siftUp(hd, hi, size - 1)
                        }
                        j += 1
                    }
                    var top = hd[0]
                    while j < cand.count {
                        // A later index loses ties, so only strictly smaller distances enter.
                        if cand[j] < top && j != skip {
                            hd[0] = cand[j]; hi[0] = Int32(j)
                            NeighborHeap.siftDown(hd, hi, size)
                            top = hd[0]
                        }
                        j += 1
                    }
                    // Heap sort into increasing order.
                    var end = size
                    while end > 1 {
                        end -= 1
                        hd.swapAt(0, end); hi.swapAt(0, end)
                        NeighborHeap.siftDown(hd, hi, end)
                    }
                }
            }
        }
    }

    @inline(__always)
    private static func greater(_ d: UnsafeMutableBufferPointer<Float>, _ x: UnsafeMutableBufferPointer<Int32>,
                                _ a: Int, _ b: Int) -> Bool {
        d[a] > d[b] || (d[a] == d[b] && x[a] > x[b])
    }

    private static func siftUp(_ d: UnsafeMutableBufferPointer<Float>, _ x: UnsafeMutableBufferPointer<Int32>, _ start: Int) {
        var c = start
        while c > 0 {
            let p = (c - 1) / 2
            if !greater(d, x, c, p) { break }
            d.swapAt(c, p); x.swapAt(c, p)
            c = p
        }
    }

    private static func siftDown(_ d: UnsafeMutableBufferPointer<Float>, _ x: UnsafeMutableBufferPointer<Int32>, _ size: Int) {
        var p = 0
        while true {
            let l = 2 * p + 1, r = l + 1
            var m = p
            if l < size, greater(d, x, l, m) { m = l }
            if r < size, greater(d, x, r, m) { m = r }
            if m == p { break }
            d.swapAt(p, m); x.swapAt(p, m)
            p = m
        }
    }
}
