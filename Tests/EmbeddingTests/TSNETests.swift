import Foundation
import Tensors
import Testing

@testable import Embedding

@Suite("t-SNE")
struct TSNETests {
    @Test("perplexity calibration reaches the requested perplexity on every row")
    func perplexityCalibration() throws {
        let (x, _) = gaussianBlobs(centers: 5, perCenter: 60, d: 10, spread: 5, seed: 1)
        let knn = try NearestNeighbors.exact(x, k: 90, threads: 2)
        for perplexity in [5.0, 30.0] {
            let cal = PerplexityCalibration(
                squaredDistances: knn.squaredDistances, rows: 300, columns: 90,
                perplexity: perplexity, threads: 2)
            for i in 0..<300 {
                let row = cal.probabilities[(i * 90)..<((i + 1) * 90)]
                let total = row.reduce(0.0) { $0 + Double($1) }
                let entropy = row.reduce(0.0) { $1 > 0 ? $0 - Double($1) * log(Double($1)) : $0 }
                #expect(abs(total - 1) < 1e-5)
                // Float storage of p costs a few 1e-6 on top of the 1e-5 search tolerance.
                #expect(abs(entropy - log(perplexity)) < 5e-5, "row \(i): perplexity \(exp(entropy))")
            }
        }
    }

    @Test("the full-matrix calibration skips the point itself")
    func calibrationExcludesSelf() {
        // Four points on a line at 0, 1, 2, 4: squared distances.
        let pos: [Float] = [0, 1, 2, 4]
        let d2 = (0..<16).map { k -> Float in
            let t = pos[k / 4] - pos[k % 4]; return t * t
        }
        let cal = PerplexityCalibration(
            squaredDistances: d2, rows: 4, columns: 4, excludingDiagonal: true,
            perplexity: 2, threads: 1)
        for i in 0..<4 {
            #expect(cal.probabilities[i * 4 + i] == 0)
            #expect(abs(exp(cal.entropies[i]) - 2) < 1e-4)
        }
    }

    @Test("nearest neighbours are the closest points, nearest first")
    func nearestNeighbors() throws {
        // Points on a line at 0, 1, 3, 7, 15: neighbours of 3 are 1 (d^2 4), 0 (9), 7 (16).
        let x = Tensor(shape: [5, 1], storage: [0, 1, 3, 7, 15])
        let knn = try NearestNeighbors.exact(x, k: 3, threads: 1)
        #expect(Array(knn.indices[6..<9]) == [1, 0, 3])
        for (got, want) in zip(knn.squaredDistances[6..<9], [Float(4), 9, 16]) { #expect(abs(got - want) < 1e-5) }
    }

    @Test("bad input gives clear errors")
    func errors() throws {
        let (x, _) = gaussianBlobs(centers: 2, perCenter: 10, d: 3, spread: 5, seed: 2)
        #expect(throws: EmbeddingError.perplexityTooLarge(perplexity: 30, points: 20, maximum: 19)) {
            try TSNE().fit(x)
        }
        let message = EmbeddingError.perplexityTooLarge(perplexity: 30, points: 20, maximum: 19).description
        #expect(message.contains("at most 19"))
        #expect(throws: EmbeddingError.tooFewPoints(count: 3, minimum: 4)) {
            try TSNE(perplexity: 1).fit(x.rows(0..<3))
        }
        var bad = x
        bad[4, 2] = .nan
        #expect(throws: EmbeddingError.nonFiniteInput(row: 4, column: 2)) { try TSNE(perplexity: 5).fit(bad) }
        bad[4, 2] = .infinity
        #expect(throws: EmbeddingError.nonFiniteInput(row: 4, column: 2)) { try TSNE(perplexity: 5).fit(bad) }
        #expect(throws: EmbeddingError.self) { try TSNE(perplexity: -1).fit(x) }
        #expect(throws: EmbeddingError.self) { try TSNE(perplexity: 5, iterations: 0).fit(x) }
        #expect(throws: EmbeddingError.notAMatrix(shape: [60])) { try TSNE(perplexity: 5).fit(x.reshaped([60])) }
        let big = Tensor(shape: [TSNE.exactLimit + 1, 1])
        #expect(throws: EmbeddingError.tooManyPointsForExact(count: TSNE.exactLimit + 1, maximum: TSNE.exactLimit)) {
            try TSNE(method: .exact).fit(big)
        }
    }

    @Test("duplicate points embed without NaN", arguments: [TSNE.Method.exact, .barnesHut])
    func duplicates(method: TSNE.Method) throws {
        // 40 copies of one point, 40 of another, and 20 distinct points.
        var values: [Float] = []
        for _ in 0..<40 { values += [1, 2, 3] }
        for _ in 0..<40 { values += [-1, 0, 5] }
        for i in 0..<20 { values += [Float(i), Float(i % 3), 0] }
        let x = Tensor(shape: [100, 3], storage: values)
        var tsne = TSNE(perplexity: 10, method: method, iterations: 300)
        tsne.threads = 2
        let result = try tsne.fit(x)
        #expect(!result.embedding.hasNonFinite)
        #expect(result.klDivergence.isFinite)
        // All-identical input: no spread at all, still finite.
        let same = Tensor(shape: [10, 2], repeating: 3)
        let flat = try TSNE(perplexity: 3, method: method, iterations: 100).fit(same)
        #expect(!flat.embedding.hasNonFinite)
    }

    @Test("the same seed gives the same map with 1 and 2 threads", arguments: [TSNE.Method.exact, .barnesHut])
    func determinism(method: TSNE.Method) throws {
        let (x, _) = gaussianBlobs(centers: 6, perCenter: 70, d: 20, spread: 4, seed: 3)
        var one = TSNE(perplexity: 20, method: method, iterations: 400, seed: 7)
        one.threads = 1
        var two = one
        two.threads = 2
        let a = try one.fit(x), b = try two.fit(x)
        #expect(a.embedding.storage == b.embedding.storage)
        #expect(a.klDivergence == b.klDivergence)
    }

    @Test("exact t-SNE on digits reaches scikit-learn's KL within 2%")
    func digitsExact() throws {
        let x = try TSNEFixtures.array("digits.moearray")
        let peer = try TSNEFixtures.peerKL("digits-exact")
        let result = try TSNE(method: .exact).fit(x)
        #expect(result.iterations == 1000)
        #expect(abs(result.klDivergence - peer) / peer < 0.02, "ours \(result.klDivergence), scikit-learn \(peer)")
    }

    @Test("Barnes-Hut t-SNE on digits reaches scikit-learn's KL within 2%")
    func digitsBarnesHut() throws {
        let x = try TSNEFixtures.array("digits.moearray")
        let labels = try TSNEFixtures.labels("digits-labels.moearray")
        let peer = try TSNEFixtures.peerKL("digits-bh")
        let result = try TSNE().fit(x)
        #expect(result.neighbors == 91)
        // Our quadtree sums are closer to the exact repulsion than scikit-learn's: with angle 0.2
        // scikit-learn reaches 0.738 and so do we (0.7385 at angle 0.5, 0.7381 with exact forces),
        // while its default angle 0.5 stops at 0.754. So: within 2% of scikit-learn at angle 0.2,
        // and never more than 2% above scikit-learn's default.
        let closer = try TSNEFixtures.peerKL("digits-bh-angle0.2")
        #expect(abs(result.klDivergence - closer) / closer < 0.02, "ours \(result.klDivergence), scikit-learn \(closer)")
        #expect(result.klDivergence < peer * 1.02, "ours \(result.klDivergence), scikit-learn \(peer)")
        // The ten digits separate in the map (scikit-learn's map scores about 0.5 here).
        #expect(try Silhouette.score(result.embedding, labels: labels) > 0.35)
    }

    @Test("progress reports every 50 iterations with a falling KL after exaggeration")
    func progress() throws {
        let (x, _) = gaussianBlobs(centers: 4, perCenter: 50, d: 8, spread: 6, seed: 4)
        var reports: [TSNEProgress] = []
        _ = try TSNE(perplexity: 15, iterations: 500).fit(x) { reports.append($0) }
        #expect(reports.map(\.iteration) == Array(stride(from: 50, through: 500, by: 50)))
        #expect(reports.prefix(5).allSatisfy { $0.exaggerated })
        #expect(!reports[5].exaggerated)
        #expect(reports.allSatisfy { $0.klDivergence.isFinite })
        #expect(reports[9].klDivergence <= reports[5].klDivergence)
    }
}

@Suite("Barnes-Hut quadtree")
struct QuadTreeTests {
    /// 3000 points in 2-D: three clusters of different spread, and a few duplicates.
    static func points() -> [Float] {
        var rng = SeededGenerator(seed: 11)
        var y: [Float] = []
        for i in 0..<3000 {
            let (cx, cy, s): (Double, Double, Double) = [(0, 0, 1), (8, -3, 0.3), (-5, 6, 3)][i % 3]
            y += [Float(cx + s * rng.nextNormal()), Float(cy + s * rng.nextNormal())]
        }
        for i in 0..<20 { y[2 * (100 + i)] = y[0]; y[2 * (100 + i) + 1] = y[1] }
        return y
    }

    @Test("groups partition the points and repulsion matches the brute-force sums")
    func repulsionAccuracy() {
        let y = Self.points(), n = y.count / 2
        var tree = QuadTree()
        var out = [Float](repeating: 0, count: 3 * n)
        y.withUnsafeBufferPointer { tree.build($0.baseAddress!, n: n) }
        var covered = [Int](repeating: 0, count: n)
        for g in 0..<(tree.groups.count / 2) {
            for s in Int(tree.groups[2 * g])..<Int(tree.groups[2 * g + 1]) { covered[s] += 1 }
        }
        #expect(covered.allSatisfy { $0 == 1 })
        let z = out.withUnsafeMutableBufferPointer { tree.repulsion(theta2: 0.25, threads: 2, into: $0.baseAddress!) }
        var exactZ = 0.0, errorSquares = 0.0, forceSquares = 0.0
        for i in 0..<n {
            var q = 0.0, fx = 0.0, fy = 0.0
            for j in 0..<n where j != i {
                let dx = Double(y[2 * i] - y[2 * j]), dy = Double(y[2 * i + 1] - y[2 * j + 1])
                let w = 1 / (1 + dx * dx + dy * dy)
                q += w; fx += w * w * dx; fy += w * w * dy
            }
            exactZ += q
            #expect(abs(Double(out[3 * i + 2]) - q) / q < 0.02)
            errorSquares += pow(Double(out[3 * i]) - fx, 2) + pow(Double(out[3 * i + 1]) - fy, 2)
            forceSquares += fx * fx + fy * fy
        }
        #expect(abs(z - exactZ) / exactZ < 2e-3, "Z \(z) against \(exactZ)")
        #expect((errorSquares / forceSquares).squareRoot() < 0.02)
    }
}
