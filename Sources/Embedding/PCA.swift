import Tensors

/// Principal component analysis of a point cloud (rows are points).
///
/// The matrix products use `Products`, whose results do not depend on any thread count (OpenBLAS's
/// do), so that a t-SNE map built on a PCA reduction is the same whatever the threads.
/// When the smaller side m = min(N, d) is at most `exactLimit` (256) the covariance (d <= N) or
/// the Gram matrix (N < d) is formed by one GEMM and fully decomposed; otherwise the top
/// components come from randomised subspace iteration (Halko, Martinsson and Tropp 2011, as
/// scikit-learn's `svd_solver="randomized"`: `k + 10` vectors, 7 power iterations, then a
/// Rayleigh-Ritz step), which needs only products with X and X^T. Signs follow scikit-learn's
/// `svd_flip` on the components: the largest-magnitude loading of each component is positive.
public struct PCA: Sendable {
    /// Column means of the fitted data (d values), subtracted before projecting.
    public var mean: [Float]
    /// The principal axes as rows, unit length: `[k, d]`.
    public var components: Tensor
    /// Variance along each axis (eigenvalues of the covariance with N - 1 in the denominator).
    public var explainedVariance: [Double]
    /// `explainedVariance` divided by the total variance of the data.
    public var explainedVarianceRatio: [Double]
    /// Total variance: the trace of the covariance matrix.
    public var totalVariance: Double

    /// Sizes up to which the small side is decomposed exactly.
    public static let exactLimit = 256

    /// Fits the top `components` principal axes of `data` (`[N, d]`).
    ///
    /// - Parameters:
    ///   - components: number of axes k, 1 ... min(N, d).
    ///   - seed: seeds the random start of the randomised solver (unused on the exact path).
    ///   - powerIterations: subspace iterations of the randomised solver.
    ///   - threads: workers for the products; the result does not depend on it.
    /// - Throws: `EmbeddingError` for a non-matrix, fewer than 2 points, non-finite values or
    ///   a component count out of range.
    public static func fit(
        _ data: Tensor, components k: Int, seed: UInt64 = 0, powerIterations: Int = 7,
        threads: Int = NearestNeighbors.defaultThreads
    ) throws -> PCA {
        try validatePoints(data, minimumPoints: 2)
        let n = data.rows, d = data.columns
        guard k >= 1, k <= min(n, d) else {
            throw EmbeddingError.invalidParameter(
                name: "number of components", value: "\(k)",
                expected: "1 ... \(min(n, d))")
        }
        let (centered, mean) = centerColumns(data)
        let totalSquares = centered.storage.withUnsafeBufferPointer { p in
            p.reduce(0.0) { $0 + Double($1) * Double($1) }
        }
        var axes: [Double]  // k x d
        var eigenvalues: [Double]  // k
        if min(n, d) <= exactLimit {
            (axes, eigenvalues) = exactAxes(centered, n: n, d: d, k: k, threads: threads)
        } else {
            (axes, eigenvalues) = randomizedAxes(
                centered, n: n, d: d, k: k, seed: seed,
                iterations: max(0, powerIterations), threads: threads)
        }
        flipSigns(&axes, k: k, d: d)
        let scale = 1 / Double(max(1, n - 1))
        let total = totalSquares * scale
        let variance = eigenvalues.map { max(0, $0) * scale }
        return PCA(
            mean: mean, components: Tensor(shape: [k, d], storage: axes.map { Float($0) }),
            explainedVariance: variance,
            explainedVarianceRatio: variance.map { total > 0 ? $0 / total : 0 },
            totalVariance: total)
    }

    /// Projects `data` (`[M, d]`) onto the axes: `(data - mean) * components^T`, `[M, k]`.
    public func transform(_ data: Tensor, threads: Int = NearestNeighbors.defaultThreads) -> Tensor {
        let k = components.rows, d = components.columns
        precondition(data.columns == d, "PCA.transform: \(data.columns) columns, fitted on \(d)")
        let m = data.rows
        guard m > 0, k > 0 else { return Tensor(shape: [m, k]) }
        var centered = data.storage
        centered.withUnsafeMutableBufferPointer { p in
            for r in 0..<m { for c in 0..<d { p[r * d + c] -= mean[c] } }
        }
        let out = centered.withUnsafeBufferPointer { a in
            components.storage.withUnsafeBufferPointer { b in
                Products.multiplyTransposed(a.baseAddress!, m: m, b.baseAddress!, k: k, d: d, threads: threads)
            }
        }
        return Tensor(shape: [m, k], storage: out)
    }

    /// Fits and projects in one step.
    public static func fitTransform(
        _ data: Tensor, components k: Int, seed: UInt64 = 0,
        threads: Int = NearestNeighbors.defaultThreads
    ) throws
        -> (pca: PCA, projected: Tensor)
    {
        let pca = try fit(data, components: k, seed: seed, threads: threads)
        return (pca, pca.transform(data, threads: threads))
    }

    /// `data` with each column's mean (accumulated in Double) subtracted, and the means.
    static func centerColumns(_ data: Tensor) -> (Tensor, [Float]) {
        let n = data.rows, d = data.columns
        var sums = [Double](repeating: 0, count: d)
        data.storage.withUnsafeBufferPointer { p in
            for r in 0..<n { for c in 0..<d { sums[c] += Double(p[r * d + c]) } }
        }
        let mean = sums.map { Float($0 / Double(n)) }
        var out = data.storage
        out.withUnsafeMutableBufferPointer { p in
            for r in 0..<n { for c in 0..<d { p[r * d + c] -= mean[c] } }
        }
        return (Tensor(shape: [n, d], storage: out), mean)
    }

    /// Top-k axes from the full decomposition of X^T X (d <= N) or X X^T (N < d).
    private static func exactAxes(_ x: Tensor, n: Int, d: Int, k: Int, threads: Int) -> ([Double], [Double]) {
        let useGram = n < d
        let m = useGram ? n : d
        let s: [Float] = x.storage.withUnsafeBufferPointer { a in
            if useGram {
                return Products.multiplyTransposed(a.baseAddress!, m: n, a.baseAddress!, k: n, d: d, threads: threads)
            }
            let xt = Products.transpose(a.baseAddress!, rows: n, cols: d)
            return xt.withUnsafeBufferPointer { t in
                Products.multiply(t.baseAddress!, m: d, k: n, a.baseAddress!, n: d, threads: threads)
            }
        }
        let eig = SymmetricEigen(s.map { Double($0) }, n: m)
        let values = Array(eig.values.prefix(k))
        if !useGram { return (Array(eig.vectors.prefix(k * d)), values) }
        // Right singular vectors from left ones: v = X^T u / |X^T u|.
        let u = eig.vectors.prefix(k * n).map { Float($0) }
        let combined = x.storage.withUnsafeBufferPointer { xp in
            u.withUnsafeBufferPointer { up in
                Products.combineRows(up.baseAddress!, k: k, xp.baseAddress!, n: n, d: d, threads: threads)
            }
        }
        var axes = combined.map { Double($0) }
        for c in 0..<k { normalize(&axes, row: c, length: d) }
        return (axes, values)
    }

    /// Top-k axes by randomised subspace iteration on X^T X, without forming it.
    private static func randomizedAxes(
        _ x: Tensor, n: Int, d: Int, k: Int, seed: UInt64,
        iterations: Int, threads: Int
    ) -> ([Double], [Double]) {
        let l = min(d, n, k + 10)
        var rng = SeededGenerator(seed: seed)
        // Q: d x l, orthonormal columns, stored row-major (d rows of l).
        var q = [Float](repeating: 0, count: d * l)
        q.withUnsafeMutableBufferPointer { rng.fillNormal($0, std: 1) }
        orthonormalizeColumns(&q, rows: d, columns: l)
        var y: [Float] = []
        x.storage.withUnsafeBufferPointer { xp in
            let xb = xp.baseAddress!
            let xt = Products.transpose(xb, rows: n, cols: d)
            xt.withUnsafeBufferPointer { tp in
                for _ in 0..<iterations {
                    y = q.withUnsafeBufferPointer { Products.multiply(xb, m: n, k: d, $0.baseAddress!, n: l, threads: threads) }
                    q = y.withUnsafeBufferPointer { Products.multiply(tp.baseAddress!, m: d, k: n, $0.baseAddress!, n: l, threads: threads) }
                    orthonormalizeColumns(&q, rows: d, columns: l)
                }
            }
            y = q.withUnsafeBufferPointer { Products.multiply(xb, m: n, k: d, $0.baseAddress!, n: l, threads: threads) }
        }
        // Rayleigh-Ritz: T = (XQ)^T (XQ) = Q^T X^T X Q, l x l, accumulated in Double.
        var t = [Double](repeating: 0, count: l * l)
        y.withUnsafeBufferPointer { yp in
            for r in 0..<n {
                let row = r * l
                for i in 0..<l {
                    let yi = Double(yp[row + i])
                    if yi == 0 { continue }
                    for j in i..<l { t[i * l + j] += yi * Double(yp[row + j]) }
                }
            }
        }
        let eig = SymmetricEigen(t, n: l)
        var axes = [Double](repeating: 0, count: k * d)
        for c in 0..<k {
            for r in 0..<d {
                var s = 0.0
                for j in 0..<l { s += Double(q[r * l + j]) * eig.vectors[c * l + j] }
                axes[c * d + r] = s
            }
            normalize(&axes, row: c, length: d)
        }
        return (axes, Array(eig.values.prefix(k)))
    }

    /// Modified Gram-Schmidt with one re-orthogonalisation pass, in Double, on the columns of a
    /// row-major `rows x columns` matrix. A column that vanishes is replaced by a unit vector.
    static func orthonormalizeColumns(_ a: inout [Float], rows: Int, columns: Int) {
        var cols = [Double](repeating: 0, count: rows * columns)  // column-major copy
        for r in 0..<rows { for c in 0..<columns { cols[c * rows + r] = Double(a[r * columns + c]) } }
        cols.withUnsafeMutableBufferPointer { v in
            for c in 0..<columns {
                let vc = v.baseAddress! + c * rows
                for _ in 0..<2 {
                    for p in 0..<c {
                        let vp = v.baseAddress! + p * rows
                        var dot = 0.0
                        for r in 0..<rows { dot += vp[r] * vc[r] }
                        for r in 0..<rows { vc[r] -= dot * vp[r] }
                    }
                }
                var norm = 0.0
                for r in 0..<rows { norm += vc[r] * vc[r] }
                norm = norm.squareRoot()
                if norm > 1e-300 {
                    for r in 0..<rows { vc[r] /= norm }
                } else {
                    for r in 0..<rows { vc[r] = r == c % rows ? 1 : 0 }
                }
            }
        }
        for r in 0..<rows { for c in 0..<columns { a[r * columns + c] = Float(cols[c * rows + r]) } }
    }

    private static func normalize(_ a: inout [Double], row: Int, length: Int) {
        var s = 0.0
        for j in 0..<length { s += a[row * length + j] * a[row * length + j] }
        let norm = s.squareRoot()
        guard norm > 0 else { return }
        for j in 0..<length { a[row * length + j] /= norm }
    }

    /// Makes the largest-magnitude entry of each axis positive (scikit-learn's `svd_flip`).
    private static func flipSigns(_ axes: inout [Double], k: Int, d: Int) {
        for c in 0..<k {
            var best = 0
            for j in 1..<max(1, d) where abs(axes[c * d + j]) > abs(axes[c * d + best]) { best = j }
            if axes[c * d + best] < 0 { for j in 0..<d { axes[c * d + j] = -axes[c * d + j] } }
        }
    }
}
