import Foundation
import Tensors
import Testing

@testable import Embedding

/// Rows of a Sylvester-Hadamard matrix of order 2^p: entries +-1, columns mutually orthogonal,
/// every column but the first sums to zero.
private func hadamard(_ order: Int) -> [[Float]] {
    var h: [[Float]] = [[1]]
    while h.count < order {
        h = h.map { $0 + $0 } + h.map { $0 + $0.map { -$0 } }
    }
    return h
}

/// Data with exactly known principal axes: column j is sigma_j times Hadamard column j + 1
/// (orthogonal, zero mean), then rotated by Givens rotations of fixed angles on column pairs
/// (2m, 2m + 1). The covariance eigenvalues are N sigma_j^2 / (N - 1).
private func knownSpectrum(n: Int, sigmas: [Double]) -> Tensor {
    let h = hadamard(n), d = sigmas.count
    var x = [Float](repeating: 0, count: n * d)
    for r in 0..<n { for j in 0..<d { x[r * d + j] = Float(sigmas[j]) * h[r][j + 1] } }
    for m in stride(from: 0, to: d - 1, by: 2) {
        let angle = 0.3 + 0.1 * Double(m % 7)
        let c = Float(cos(angle)), s = Float(sin(angle))
        for r in 0..<n {
            let a = x[r * d + m], b = x[r * d + m + 1]
            x[r * d + m] = c * a - s * b
            x[r * d + m + 1] = s * a + c * b
        }
    }
    // A constant offset per column: PCA must centre.
    for r in 0..<n { for j in 0..<d { x[r * d + j] += Float(j % 5) - 2 } }
    return Tensor(shape: [n, d], storage: x)
}

@Suite("PCA")
struct PCATests {
    @Test("explained variance of a small known case")
    func smallKnownCase() throws {
        // (+-3, 0) and (0, +-1), rotated by 30 degrees into the plane z = 5 of 3-D space:
        // variances 18/3 = 6 and 2/3 along the rotated axes.
        let c = Float(cos(Double.pi / 6)), s = Float(sin(Double.pi / 6))
        let pts: [(Float, Float)] = [(3, 0), (-3, 0), (0, 1), (0, -1)]
        let x = Tensor(shape: [4, 3], storage: pts.flatMap { [c * $0.0 - s * $0.1, s * $0.0 + c * $0.1, 5] })
        let pca = try PCA.fit(x, components: 2)
        #expect(abs(pca.explainedVariance[0] - 6) < 1e-5)
        #expect(abs(pca.explainedVariance[1] - 2.0 / 3) < 1e-5)
        #expect(abs(pca.explainedVarianceRatio[0] - 0.9) < 1e-6)
        #expect(abs(pca.totalVariance - 20.0 / 3) < 1e-5)
        // First axis (cos 30, sin 30, 0), sign made positive on its largest entry.
        #expect(abs(pca.components[0, 0] - c) < 1e-5 && abs(pca.components[0, 1] - s) < 1e-5)
        let projected = pca.transform(x)
        #expect(abs(projected[0, 0] - 3) < 1e-5 && abs(projected[1, 0] + 3) < 1e-5)
    }

    @Test("exact and randomised solvers find a known spectrum", arguments: [64, 300])
    func knownSpectrumRecovered(d: Int) throws {
        let n = 512
        let sigmas = (0..<d).map { 10 * pow(0.97, Double($0)) }
        let x = knownSpectrum(n: n, sigmas: sigmas)
        let pca = try PCA.fit(x, components: 5, seed: 1)
        let total = sigmas.reduce(0) { $0 + $1 * $1 } * Double(n) / Double(n - 1)
        #expect(abs(pca.totalVariance - total) / total < 1e-5)
        for k in 0..<5 {
            let want = sigmas[k] * sigmas[k] * Double(n) / Double(n - 1)
            #expect(abs(pca.explainedVariance[k] - want) / want < 1e-4, "component \(k) (d = \(d))")
        }
    }

    @Test("fewer points than features: the Gram route finds a known spectrum")
    func gramRoute() throws {
        // X = sum_j sigma_j h_j v_j^T with h_j Hadamard columns of order 64 (zero mean, |h|^2 = 64)
        // and v_j unit Hadamard columns of order 1024: covariance eigenvalues 64 sigma_j^2 / 63.
        let n = 64, d = 1024, r = 20
        let small = hadamard(n), big = hadamard(d)
        let sigmas = (0..<r).map { 5 - 0.2 * Double($0) }
        var x = [Float](repeating: 0, count: n * d)
        for j in 0..<r {
            for row in 0..<n {
                let a = Float(sigmas[j]) * small[row][j + 1] / 32
                for c in 0..<d { x[row * d + c] += a * big[c][j + 1] }
            }
        }
        let pca = try PCA.fit(Tensor(shape: [n, d], storage: x), components: 10)
        for k in 0..<10 {
            let want = sigmas[k] * sigmas[k] * 64 / 63
            #expect(abs(pca.explainedVariance[k] - want) / want < 1e-4, "component \(k)")
            // The axis is the Hadamard column j + 1 (unit, sign fixed by the largest entry).
            #expect(abs(abs(pca.components[k, 0]) - 1 / 32) < 1e-5)
        }
        let squares = sigmas.map { $0 * $0 }
        let topShare: Double = squares.prefix(10).reduce(0, +) / squares.reduce(0, +)
        let ratioSum: Double = pca.explainedVarianceRatio.reduce(0, +)
        #expect(abs(ratioSum - topShare) < 1e-5)
    }

    // Its speed is measured in `make bench`, not asserted here: timings drift on a loaded machine.
    @Test("PCA of 4160 x 2048 to 50 components: ordered, orthonormal axes")
    func wideReduction() throws {
        let (x, _) = gaussianBlobs(centers: 65, perCenter: 64, d: 2048, spread: 0.2, seed: 5)
        let pca = try PCA.fit(x, components: 50)
        #expect(pca.components.shape == [50, 2048])
        for k in 1..<50 { #expect(pca.explainedVariance[k] <= pca.explainedVariance[k - 1]) }
        // The axes are orthonormal.
        for a in [0, 17, 49] {
            for b in [0, 17, 49] {
                var dot: Float = 0
                for j in 0..<2048 { dot += pca.components[a, j] * pca.components[b, j] }
                #expect(abs(dot - (a == b ? 1 : 0)) < 1e-4)
            }
        }
    }
}

@Suite("Silhouette")
struct SilhouetteTests {
    @Test("a hand-computed case")
    func handComputed() throws {
        // A = {0, 1}, B = {10, 11} on a line: s = 9.5/10.5 for the outer points, 8.5/9.5 for the inner.
        let x = Tensor(shape: [4, 1], storage: [0, 1, 10, 11])
        let score = try Silhouette.score(x, labels: [0, 0, 7, 7])
        #expect(abs(score - (9.5 / 10.5 + 8.5 / 9.5) / 2) < 1e-6)
        // A singleton label scores 0 for its point.
        let s = try Silhouette.samples(Tensor(shape: [3, 1], storage: [0, 1, 10]), labels: [0, 0, 1])
        #expect(s[2] == 0)
    }

    @Test("well separated blobs score near 1, noise near 0", arguments: [2, 40])
    func blobsAndNoise(d: Int) throws {
        let (blobs, labels) = gaussianBlobs(centers: 4, perCenter: 100, d: d, spread: 200, seed: 6)
        #expect(try Silhouette.score(blobs, labels: labels) > 0.9)
        var rng = SeededGenerator(seed: 9)
        let noise = Tensor(shape: [400, d], storage: (0..<(400 * d)).map { _ in Float(rng.nextNormal()) })
        let random = (0..<400).map { $0 % 4 }
        #expect(abs(try Silhouette.score(noise, labels: random)) < 0.05)
    }

    @Test("labels must fit the points")
    func errors() {
        let x = Tensor(shape: [4, 1], storage: [0, 1, 2, 3])
        #expect(throws: EmbeddingError.labelCountMismatch(labels: 3, points: 4)) {
            try Silhouette.score(x, labels: [0, 1, 1])
        }
        #expect(throws: EmbeddingError.invalidLabelCount(distinct: 1, points: 4)) {
            try Silhouette.score(x, labels: [1, 1, 1, 1])
        }
    }
}
