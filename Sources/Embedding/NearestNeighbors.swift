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

    /// Exact neighbours by brute force: each row against all points through a fixed-order product
    /// (|x|^2 + |y|^2 - 2 x.y, `Products`), and a bounded max-heap per row give the k-th candidate
    /// distance t; every point within t plus a bound on the product's rounding error is then
    /// re-ranked by its directly summed distance, ties by index. The result is the same whatever
    /// the thread count, and exact up to Float rounding. No BLAS here: OpenBLAS's idle threads
    /// spin and would compete with the selection workers.
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
        x.storage.withUnsafeBufferPointer { xp in
            let xb = xp.baseAddress!
            let transposed = Products.transpose(xb, rows: n, cols: d)
            let padded = transposed.withUnsafeBufferPointer { Products.PaddedMatrix($0.baseAddress!, rows: d, columns: n) }
            let chunks = Chunks(count: n, size: 32)
            padded.storage.withUnsafeBufferPointer { bp in
                indices.withUnsafeMutableBufferPointer { ip in
                    distances.withUnsafeMutableBufferPointer { dp in
                        let out = UnsafeShared((ip, dp))
                        Parallel.forEach(chunks.chunkCount, threads: threads) { c in
                            let rows = chunks.range(c)
                            let block = UnsafeMutablePointer<Float>.allocate(capacity: rows.count * n)
                            defer { block.deallocate() }
                            Products.multiplyRows(
                                xb + rows.lowerBound * d, m: rows.count, bp.baseAddress!, padded,
                                into: block)
                            // k plus a margin: when the margin's candidates all lie beyond the
                            // rounding band, no other point can belong among the k nearest.
                            let capacity = min(n - 1, k + 16)
                            var heap = NeighborHeap(capacity: capacity)
                            var near: [(distance: Float, index: Int32)] = []
                            for i in rows {
                                let ni = norms[i]
                                let g = block + (i - rows.lowerBound) * n
                                heap.select(n: n, skipping: i) { j in ni + norms[j] - 2 * g[j] }
                                let limit = heap.distances[k - 1] + 2 * rounding * (ni + maxNorm)
                                near.removeAll(keepingCapacity: true)
                                func addExact(_ j: Int) { near.append((squaredDistance(xb + i * d, xb + j * d, d), Int32(j))) }
                                if capacity == n - 1 || heap.distances[capacity - 1] > limit {
                                    for t in 0..<capacity where heap.distances[t] <= limit { addExact(Int(heap.indices[t])) }
                                } else {
                                    for j in 0..<n where j != i && ni + norms[j] - 2 * g[j] <= limit { addExact(j) }
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
        }
        return NearestNeighbors(points: n, k: k, indices: indices, squaredDistances: distances)
    }

    /// The default number of worker threads: the active processor count.
    public static var defaultThreads: Int { ProcessInfo.processInfo.activeProcessorCount }
}

/// sum_c (a_c - b_c)^2 over `d` coordinates, in a fixed order (eight lanes, then the rest).
@inline(__always)
func squaredDistance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ d: Int) -> Float {
    var acc = SIMD8<Float>(repeating: 0)
    var c = 0
    while c + 8 <= d {
        let diff = load8(a + c) - load8(b + c)
        acc += diff * diff
        c += 8
    }
    var s = acc.sum()
    while c < d {
        let diff = a[c] - b[c]
        s += diff * diff
        c += 1
    }
    return s
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

    /// Scans the candidates `0..<n` (distance of index j: `distance(j)`), leaving out `skip`.
    @inline(__always)
    mutating func select(n: Int, skipping skip: Int, _ distance: (Int) -> Float) {
        let k = capacity
        distances.withUnsafeMutableBufferPointer { hd in
            indices.withUnsafeMutableBufferPointer { hi in
                var size = 0
                var j = 0
                // Fill, then keep a max-heap on (distance, index) at the root.
                while size < k {
                    if j != skip {
                        hd[size] = max(0, distance(j)); hi[size] = Int32(j); size += 1
                        NeighborHeap.siftUp(hd, hi, size - 1)
                    }
                    j += 1
                }
                var top = hd[0]
                while j < n {
                    // A later index loses ties, so only strictly smaller distances enter.
                    let v = distance(j)
                    if v < top && j != skip {
                        hd[0] = max(0, v); hi[0] = Int32(j)
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

    @inline(__always)
    private static func greater(
        _ d: UnsafeMutableBufferPointer<Float>, _ x: UnsafeMutableBufferPointer<Int32>,
        _ a: Int, _ b: Int
    ) -> Bool {
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
