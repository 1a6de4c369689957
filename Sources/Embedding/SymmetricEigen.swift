/// Eigen-decomposition of a dense real symmetric matrix, in Double.
///
/// Householder reduction to tridiagonal form (accumulating the reflections), then the implicit
/// QL algorithm with Wilkinson-type shifts on the tridiagonal matrix. About 9 n^3 flops: meant for
/// the small matrices of PCA (covariances up to a few hundred columns, Rayleigh-Ritz projections).
struct SymmetricEigen {
    /// Eigenvalues, largest first.
    var values: [Double]
    /// Eigenvectors as rows: `vectors[i * n ..< (i + 1) * n]` belongs to `values[i]`, unit length.
    var vectors: [Double]
    /// Order of the matrix.
    var n: Int

    /// Decomposes the symmetric `n x n` row-major matrix `a` (only its values are read; it need
    /// not be exactly symmetric, the upper triangle wins).
    init(_ a: [Double], n: Int) {
        self.n = n
        precondition(a.count == n * n, "SymmetricEigen: \(a.count) elements for order \(n)")
        if n == 0 { values = []; vectors = []; return }
        var m = a
        for i in 0..<n { for j in 0..<i { m[i * n + j] = m[j * n + i] } }
        var q = [Double](repeating: 0, count: n * n)
        for i in 0..<n { q[i * n + i] = 1 }
        var d = [Double](repeating: 0, count: n), e = [Double](repeating: 0, count: n)
        SymmetricEigen.tridiagonalize(&m, n: n, q: &q, diagonal: &d, offDiagonal: &e)
        // The QL sweeps rotate columns of Q; keep Q transposed so that they rotate rows.
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { v[j * n + i] = q[i * n + j] } }
        SymmetricEigen.implicitQL(diagonal: &d, offDiagonal: &e, vectors: &v, n: n)
        let order = (0..<n).sorted { d[$0] > d[$1] || (d[$0] == d[$1] && $0 < $1) }
        values = order.map { d[$0] }
        vectors = [Double](repeating: 0, count: n * n)
        for (r, i) in order.enumerated() {
            for k in 0..<n { vectors[r * n + k] = v[i * n + k] }
        }
    }

    /// Reduces `a` to tridiagonal T = Q^T A Q by Householder reflections `H = I - beta v v^T`,
    /// multiplying them into `q` (`q = H_0 H_1 ... H_{n-3}`).
    private static func tridiagonalize(
        _ a: inout [Double], n: Int, q: inout [Double],
        diagonal d: inout [Double], offDiagonal e: inout [Double]
    ) {
        var v = [Double](repeating: 0, count: n), p = [Double](repeating: 0, count: n)
        a.withUnsafeMutableBufferPointer { a in
            q.withUnsafeMutableBufferPointer { q in
                for k in 0..<max(0, n - 2) {
                    let len = n - k - 1
                    var norm2 = 0.0
                    for j in 0..<len { v[j] = a[k * n + k + 1 + j]; norm2 += v[j] * v[j] }
                    let norm = norm2.squareRoot()
                    if norm == 0 { continue }
                    let alpha = v[0] > 0 ? -norm : norm
                    v[0] -= alpha
                    let vnorm2 = norm2 - 2 * alpha * (v[0] + alpha) + alpha * alpha
                    if vnorm2 <= 0 { continue }
                    let beta = 2 / vnorm2
                    // p = beta * S v on the trailing block S, then w = p - (beta/2)(v.p) v.
                    var vp = 0.0
                    for i in 0..<len {
                        var s = 0.0
                        let row = (k + 1 + i) * n + k + 1
                        for j in 0..<len { s += a[row + j] * v[j] }
                        p[i] = beta * s
                        vp += v[i] * p[i]
                    }
                    let kappa = 0.5 * beta * vp
                    for i in 0..<len { p[i] -= kappa * v[i] }
                    for i in 0..<len {
                        let row = (k + 1 + i) * n + k + 1
                        for j in 0..<len { a[row + j] -= v[i] * p[j] + p[i] * v[j] }
                    }
                    a[k * n + k + 1] = alpha
                    a[(k + 1) * n + k] = alpha
                    for j in 1..<len { a[k * n + k + 1 + j] = 0; a[(k + 1 + j) * n + k] = 0 }
                    for r in 0..<n {
                        var s = 0.0
                        let row = r * n + k + 1
                        for j in 0..<len { s += q[row + j] * v[j] }
                        s *= beta
                        for j in 0..<len { q[row + j] -= s * v[j] }
                    }
                }
                for i in 0..<n {
                    d[i] = a[i * n + i]
                    e[i] = i + 1 < n ? a[i * n + i + 1] : 0
                }
            }
        }
    }

    /// Diagonalises the symmetric tridiagonal matrix (`d`, `e[i]` coupling i and i + 1) by
    /// implicit QL steps, applying each plane rotation to rows i, i + 1 of `vectors`.
    private static func implicitQL(
        diagonal d: inout [Double], offDiagonal e: inout [Double],
        vectors: inout [Double], n: Int
    ) {
        let eps = Double.ulpOfOne
        vectors.withUnsafeMutableBufferPointer { z in
            for l in 0..<n {
                var iterations = 0
                while true {
                    var m = l
                    while m < n - 1 {
                        let dd = abs(d[m]) + abs(d[m + 1])
                        if abs(e[m]) <= eps * dd { break }
                        m += 1
                    }
                    if m == l || iterations >= 60 { break }
                    iterations += 1
                    var g = (d[l + 1] - d[l]) / (2 * e[l])
                    var r = (g * g + 1).squareRoot()
                    g = d[m] - d[l] + e[l] / (g + (g >= 0 ? r : -r))
                    var s = 1.0, c = 1.0, p = 0.0
                    var i = m - 1
                    var deflated = false
                    while i >= l {
                        let f = s * e[i], b = c * e[i]
                        r = (f * f + g * g).squareRoot()
                        e[i + 1] = r
                        if r == 0 {
                            d[i + 1] -= p
                            e[m] = 0
                            deflated = true
                            break
                        }
                        s = f / r
                        c = g / r
                        g = d[i + 1] - p
                        r = (d[i] - g) * s + 2 * c * b
                        p = s * r
                        d[i + 1] = g + p
                        g = c * r - b
                        let rowI = i * n, rowJ = (i + 1) * n
                        for k in 0..<n {
                            let zi = z[rowI + k], zj = z[rowJ + k]
                            z[rowJ + k] = s * zi + c * zj
                            z[rowI + k] = c * zi - s * zj
                        }
                        i -= 1
                    }
                    if deflated { continue }
                    d[l] -= p
                    e[l] = g
                    e[m] = 0
                }
            }
        }
    }
}
