import Foundation
import Tensors

/// The silhouette score of a labelling (Rousseeuw 1987), Euclidean, as scikit-learn's
/// `silhouette_score`.
///
/// For point i with label L: a_i = mean distance to the other points labelled L, b_i = the
/// smallest mean distance to the points of another label, s_i = (b_i - a_i) / max(a_i, b_i),
/// and s_i = 0 when i is alone in its label. The score is the mean of s_i, in [-1, 1]: near 1 for
/// compact, well separated groups, near 0 for overlapping ones.
public enum Silhouette {
    /// The mean silhouette of `points` (`[N, d]`) under `labels` (one per point, any integers).
    ///
    /// Distances come from one GEMM per block of rows for d > 8 and directly otherwise.
    /// - Throws: `EmbeddingError` for a non-matrix, non-finite values, a label count that differs
    ///   from N, or fewer than 2 or more than N - 1 distinct labels.
    public static func score(_ points: Tensor, labels: [Int], threads: Int = NearestNeighbors.defaultThreads) throws -> Double {
        let s = try samples(points, labels: labels, threads: threads)
        return s.reduce(0, +) / Double(s.count)
    }

    /// The silhouette s_i of every point.
    public static func samples(_ points: Tensor, labels: [Int], threads: Int = NearestNeighbors.defaultThreads) throws -> [Double] {
        try validatePoints(points, minimumPoints: 2)
        let n = points.rows, d = points.columns
        guard labels.count == n else { throw EmbeddingError.labelCountMismatch(labels: labels.count, points: n) }
        let distinct = Array(Set(labels)).sorted()
        guard distinct.count >= 2, distinct.count <= n - 1 else {
            throw EmbeddingError.invalidLabelCount(distinct: distinct.count, points: n)
        }
        let index = Dictionary(uniqueKeysWithValues: distinct.enumerated().map { ($1, $0) })
        let cluster = labels.map { index[$0] ?? 0 }
        let groups = distinct.count
        var sizes = [Int](repeating: 0, count: groups)
        for c in cluster { sizes[c] += 1 }

        let x = PCA.centerColumns(points).0
        let norms = rowSquaredNorms(x)
        var result = [Double](repeating: 0, count: n)
        let blockRows = max(1, min(n, (1 << 22) / max(1, n)))
        var products = [Float](repeating: 0, count: d > 8 ? blockRows * n : 0)
        x.storage.withUnsafeBufferPointer { xp in
            let xb = xp.baseAddress!
            var start = 0
            while start < n {
                let rows = min(blockRows, n - start)
                if d > 8 {
                    products.withUnsafeMutableBufferPointer { g in
                        BLAS.gemm(transB: true, m: rows, n: n, k: d, a: xb + start * d, b: xb, c: g.baseAddress!)
                    }
                }
                let chunks = Chunks(count: rows, size: 16)
                products.withUnsafeBufferPointer { g in
                    result.withUnsafeMutableBufferPointer { rp in
                        let out = UnsafeShared(rp)
                        Parallel.forEach(chunks.chunkCount, threads: threads) { c in
                            var sums = [Double](repeating: 0, count: groups)
                            for r in chunks.range(c) {
                                let i = start + r
                                for k in 0..<groups { sums[k] = 0 }
                                for j in 0..<n where j != i {
                                    var d2: Float
                                    if d > 8 {
                                        d2 = max(0, norms[i] + norms[j] - 2 * g[r * n + j])
                                    } else {
                                        d2 = 0
                                        for k in 0..<d {
                                            let t = xb[i * d + k] - xb[j * d + k]
                                            d2 += t * t
                                        }
                                    }
                                    sums[cluster[j]] += Double(d2.squareRoot())
                                }
                                let own = cluster[i]
                                guard sizes[own] > 1 else { out.value[i] = 0; continue }
                                let a = sums[own] / Double(sizes[own] - 1)
                                var b = Double.infinity
                                for k in 0..<groups where k != own { b = min(b, sums[k] / Double(sizes[k])) }
                                let m = max(a, b)
                                out.value[i] = m > 0 ? (b - a) / m : 0
                            }
                        }
                    }
                }
                start += rows
            }
        }
        return result
    }
}
