import Foundation
import Tensors

/// t-distributed stochastic neighbour embedding into two dimensions, with scikit-learn's semantics
/// and defaults (`sklearn.manifold.TSNE`).
///
/// Input affinities: Gaussian conditional probabilities calibrated to `perplexity` (see
/// `PerplexityCalibration`) over all other points (exact) or over the k = min(N - 1,
/// floor(3 * perplexity + 1)) nearest neighbours (Barnes-Hut), symmetrised as
/// P = (C + C^T) / sum. Output similarities: q_ij = w_ij / Z with w_ij = 1 / (1 + |y_i - y_j|^2)
/// and Z = sum_{k != l} w_kl. The KL divergence KL(P || Q) = sum p_ij ln(p_ij / q_ij) is minimised
/// by gradient descent with momentum and per-coordinate gains, gradient
/// dKL/dy_i = 4 sum_j (alpha p_ij - q_ij) w_ij (y_i - y_j):
/// - `earlyExaggerationIterations` (250) steps with P multiplied by alpha = `earlyExaggeration`
///   (12) and momentum 0.5, then the rest of `iterations` (1000 in all) with alpha = 1 and
///   momentum 0.8; momentum and gains restart between the two phases;
/// - gains grow by 0.2 where the step and the gradient disagree in sign and shrink by x0.8
///   otherwise, floored at 0.01; learning rate "auto" = max(N / alpha / 4, 50);
/// - every 50 iterations the KL divergence is checked: a phase stops after `iterationsWithoutProgress`
///   iterations without improvement or when the gradient norm falls to `minimumGradientNorm`.
/// The initial map is the data's first two principal components scaled so that the first has
/// standard deviation 1e-4. Barnes-Hut sums the repulsion of far cells (width < angle x
/// distance) through their centre of mass in a quadtree.
///
/// Results depend only on the data, the configuration and `seed`, not on `threads`: all work is
/// split into chunks fixed by the problem size and partial sums are added in chunk order.
public struct TSNE: Sendable {
    /// How the repulsive forces are computed.
    public enum Method: String, Sendable, Codable, CaseIterable {
        /// All N^2 pairs, dense P over all points; O(N^2) time and memory.
        case exact
        /// Quadtree approximation of the repulsion, sparse P on the nearest neighbours.
        case barnesHut = "barnes_hut"
    }

    /// Step size of the gradient descent, in scikit-learn's units.
    public enum LearningRate: Sendable, Equatable {
        /// max(N / earlyExaggeration / 4, 50).
        case auto
        /// A fixed positive value.
        case fixed(Double)
    }

    /// Where the optimisation starts.
    public enum Initialization: Sendable, Equatable {
        /// First two principal components, scaled so that the first has standard deviation 1e-4.
        case pca
        /// Independent normal coordinates of standard deviation 1e-4, drawn from `seed`.
        case random
        /// Given coordinates `[N, 2]`, used as they are.
        case given(Tensor)
    }

    /// Effective number of neighbours, below the number of points. Default 30.
    public var perplexity: Double = 30
    /// Exact or Barnes-Hut. Default Barnes-Hut.
    public var method: Method = .barnesHut
    /// Total number of iterations, early exaggeration included. Default 1000.
    public var iterations = 1000
    /// Factor on P during the first phase. Default 12.
    public var earlyExaggeration: Double = 12
    /// Length of the first phase. Default 250.
    public var earlyExaggerationIterations = 250
    /// Default "auto".
    public var learningRate: LearningRate = .auto
    /// Momentum of the first phase. Default 0.5.
    public var initialMomentum: Double = 0.5
    /// Momentum of the second phase. Default 0.8.
    public var finalMomentum: Double = 0.8
    /// Floor of the gains. Default 0.01.
    public var minimumGain: Double = 0.01
    /// Barnes-Hut opening angle theta (a cell of width w at distance r is summarised when
    /// w / r < theta). Default 0.5; keep it at most 0.7 so a point's own cell is always opened.
    public var angle: Double = 0.5
    /// Default PCA.
    public var initialization: Initialization = .pca
    /// When set and the data has more columns, the data are first projected on this many
    /// principal components (50 is usual for wide data). Default nil: no reduction.
    public var reducedDimensions: Int?
    /// Phase-two patience in iterations (checked every 50). Default 300.
    public var iterationsWithoutProgress = 300
    /// Stop when the (gain-scaled) gradient norm falls to this. Default 1e-7.
    public var minimumGradientNorm: Double = 1e-7
    /// Iterations between KL checks and progress reports. Default 50.
    public var checkInterval = 50
    /// Seeds the random initialisation and the randomised PCA. Default 0.
    public var seed: UInt64 = 0
    /// Worker threads; results do not depend on it. Default: the active processor count.
    public var threads = NearestNeighbors.defaultThreads
    /// Barnes-Hut reports the KL divergence with the exact normaliser Z (one O(N^2) pass at the
    /// end) up to this many points, and with the quadtree's estimate (as scikit-learn) above.
    public var exactKLLimit = 20_000

    /// The largest number of points exact t-SNE accepts.
    public static let exactLimit = 8192

    /// A configuration with scikit-learn's defaults, changed where given.
    public init(perplexity: Double = 30, method: Method = .barnesHut, iterations: Int = 1000, seed: UInt64 = 0) {
        self.perplexity = perplexity
        self.method = method
        self.iterations = iterations
        self.seed = seed
    }

    /// The number of nearest neighbours used by Barnes-Hut for `points` points.
    public func neighborCount(points: Int) -> Int {
        min(points - 1, Int(3 * perplexity + 1))
    }

    /// The learning rate used for `points` points, in scikit-learn's units.
    public func effectiveLearningRate(points: Int) -> Double {
        switch learningRate {
        case .auto: return max(Double(points) / earlyExaggeration / 4, 50)
        case .fixed(let value): return value
        }
    }

    /// Embeds the rows of `data` (`[N, d]`) in two dimensions.
    ///
    /// - Parameter progress: called on the calling thread every `checkInterval` iterations with
    ///   the KL divergence on the unexaggerated P.
    /// - Throws: `EmbeddingError` for fewer than 4 points, non-finite values, a perplexity not
    ///   below N, out-of-range settings, or exact mode on more than `TSNE.exactLimit` points.
    public func fit(_ data: Tensor, progress: ((TSNEProgress) -> Void)? = nil) throws -> TSNEResult {
        let clock = ContinuousClock()
        let started = clock.now
        try validate(data)
        let n = data.rows
        var timings = TSNETimings()
        var x = data
        if let r = reducedDimensions, data.columns > r {
            let t0 = clock.now
            x = try PCA.fitTransform(data, components: r, seed: seed, threads: threads).projected
            timings.reduction = seconds(clock.now - t0)
        }
        x = PCA.centerColumns(x).0

        let t1 = clock.now
        let model: GradientModel
        let neighbors: Int
        switch method {
        case .exact:
            var p = x.storage.withUnsafeBufferPointer {
                Products.squaredDistances($0.baseAddress!, n: n, d: x.columns, threads: threads)
            }
            p =
                PerplexityCalibration(
                    squaredDistances: p, rows: n, columns: n, excludingDiagonal: true,
                    perplexity: perplexity, threads: threads
                ).probabilities
            symmetrizeDenseProbabilities(&p, n: n)
            model = ExactGradient(p: p, n: n, threads: threads)
            neighbors = n - 1
        case .barnesHut:
            neighbors = neighborCount(points: n)
            let knn = NearestNeighbors.exactUnchecked(x, k: neighbors, threads: threads)
            let conditional = PerplexityCalibration(
                squaredDistances: knn.squaredDistances, rows: n,
                columns: neighbors, perplexity: perplexity,
                threads: threads
            ).probabilities
            model = BarnesHutGradient(
                p: SparseAffinities(neighbors: knn, conditional: conditional),
                angle: Float(angle), threads: threads)
        }
        timings.affinities = seconds(clock.now - t1)

        let t2 = clock.now
        var y = try initialEmbedding(x)
        timings.initialization = seconds(clock.now - t2)

        let t3 = clock.now
        let rate = effectiveLearningRate(points: n)
        let run = optimize(&y, model: model, learningRate: rate, progress: progress)
        let kl = model.finalKLDivergence(y, exactNormalizerUpTo: exactKLLimit)
        timings.optimization = seconds(clock.now - t3)
        timings.total = seconds(clock.now - started)
        return TSNEResult(
            embedding: Tensor(shape: [n, 2], storage: y), klDivergence: kl,
            iterations: run, learningRate: rate, neighbors: neighbors, method: method,
            timings: timings)
    }

    private func validate(_ data: Tensor) throws {
        try validatePoints(data, minimumPoints: 4)
        let n = data.rows
        guard perplexity.isFinite, perplexity > 0 else {
            throw EmbeddingError.invalidParameter(name: "perplexity", value: "\(perplexity)", expected: "a positive number")
        }
        guard perplexity < Double(n) else {
            throw EmbeddingError.perplexityTooLarge(perplexity: perplexity, points: n, maximum: n - 1)
        }
        func check(_ ok: Bool, _ name: String, _ value: Any, _ expected: String) throws {
            if !ok { throw EmbeddingError.invalidParameter(name: name, value: "\(value)", expected: expected) }
        }
        try check(iterations >= 1, "iterations", iterations, "at least 1")
        try check(earlyExaggerationIterations >= 0, "early exaggeration iterations", earlyExaggerationIterations, "0 or more")
        try check(earlyExaggeration.isFinite && earlyExaggeration > 0, "early exaggeration", earlyExaggeration, "a positive number")
        try check(angle.isFinite && angle >= 0 && angle <= 1, "angle", angle, "0 ... 1")
        try check(minimumGain.isFinite && minimumGain >= 0, "minimum gain", minimumGain, "0 or more")
        try check(checkInterval >= 1, "check interval", checkInterval, "at least 1")
        if case .fixed(let r) = learningRate {
            try check(r.isFinite && r > 0, "learning rate", r, "a positive number")
        }
        if let r = reducedDimensions {
            try check(r >= 2, "reduced dimensions", r, "at least 2")
        }
        if method == .exact, n > TSNE.exactLimit {
            throw EmbeddingError.tooManyPointsForExact(count: n, maximum: TSNE.exactLimit)
        }
        if case .given(let y) = initialization {
            try check(y.shape == [n, 2], "initial embedding shape", y.shape, "[\(n), 2]")
            try check(!y.hasNonFinite, "initial embedding", "with non-finite values", "finite values")
        }
    }

    /// The starting map `[N * 2]` (interleaved) for centred data `x`.
    private func initialEmbedding(_ x: Tensor) throws -> [Float] {
        let n = x.rows
        switch initialization {
        case .given(let y):
            return y.storage
        case .pca where x.columns >= 2:
            let projected = try PCA.fitTransform(x, components: 2, seed: seed, threads: threads).projected.storage
            var mean = 0.0, squares = 0.0
            for i in 0..<n { mean += Double(projected[2 * i]) }
            mean /= Double(n)
            for i in 0..<n { squares += (Double(projected[2 * i]) - mean) * (Double(projected[2 * i]) - mean) }
            let std = (squares / Double(n)).squareRoot()
            if std > 0, std.isFinite {
                let scale = Float(1e-4 / std)
                return projected.map { $0 * scale }
            }
            return randomEmbedding(n)
        case .pca, .random:
            return randomEmbedding(n)
        }
    }

    private func randomEmbedding(_ n: Int) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        var y = [Float](repeating: 0, count: 2 * n)
        y.withUnsafeMutableBufferPointer { rng.fillNormal($0, std: 1e-4) }
        return y
    }

    /// The two-phase gradient descent; returns the number of iterations run.
    private func optimize(
        _ y: inout [Float], model: GradientModel, learningRate: Double,
        progress: ((TSNEProgress) -> Void)?
    ) -> Int {
        let count = y.count
        var gradient = [Float](repeating: 0, count: count)
        var update = [Float](repeating: 0, count: count)
        var gains = [Float](repeating: 1, count: count)
        let rate = Float(learningRate), floor = Float(minimumGain)
        let phases = [
            (
                end: min(earlyExaggerationIterations, iterations), exaggeration: earlyExaggeration,
                momentum: initialMomentum, patience: earlyExaggerationIterations
            ),
            (end: iterations, exaggeration: 1.0, momentum: finalMomentum, patience: iterationsWithoutProgress),
        ]
        var next = 0
        for phase in phases where next < phase.end {
            for e in 0..<count { update[e] = 0; gains[e] = 1 }
            let momentum = Float(phase.momentum)
            var bestError = Double.greatestFiniteMagnitude, bestIteration = next
            var i = next
            while i < phase.end {
                let check = (i + 1) % checkInterval == 0
                let error = y.withUnsafeBufferPointer { yp in
                    gradient.withUnsafeMutableBufferPointer { gp in
                        model.gradient(
                            yp.baseAddress!, into: gp.baseAddress!,
                            exaggeration: Float(phase.exaggeration),
                            computeError: check || i == phase.end - 1)
                    }
                }
                let norm2 = TSNE.step(
                    count: count, y: &y, gradient: gradient, update: &update, gains: &gains,
                    momentum: momentum, rate: rate, minimumGain: floor)
                var stop = false
                if check {
                    let kl = error ?? .nan
                    progress?(
                        TSNEProgress(
                            iteration: i + 1, iterations: iterations, klDivergence: kl,
                            exaggerated: phase.exaggeration != 1, gradientNorm: norm2.squareRoot()))
                    if kl < bestError {
                        bestError = kl
                        bestIteration = i
                    } else if i - bestIteration > phase.patience {
                        stop = true
                    }
                    if norm2.squareRoot() <= minimumGradientNorm { stop = true }
                }
                i += 1
                if stop { break }
            }
            next = i
        }
        return next
    }

    /// One gradient-descent step with gains and momentum (scikit-learn's `_gradient_descent`):
    /// returns the squared norm of the gain-scaled gradient.
    private static func step(
        count: Int, y: inout [Float], gradient: [Float], update: inout [Float],
        gains: inout [Float], momentum: Float, rate: Float, minimumGain: Float
    ) -> Double {
        var norm2 = 0.0
        y.withUnsafeMutableBufferPointer { y in
            update.withUnsafeMutableBufferPointer { u in
                gains.withUnsafeMutableBufferPointer { gains in
                    gradient.withUnsafeBufferPointer { gradient in
                        for e in 0..<count {
                            var g = gradient[e]
                            var gain = u[e] * g < 0 ? gains[e] + 0.2 : gains[e] * 0.8
                            if gain < minimumGain { gain = minimumGain }
                            gains[e] = gain
                            g *= gain
                            norm2 += Double(g) * Double(g)
                            u[e] = momentum * u[e] - rate * g
                            y[e] += u[e]
                        }
                    }
                }
            }
        }
        return norm2
    }

    private func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}

/// One progress report of `TSNE.fit`.
public struct TSNEProgress: Sendable {
    /// Iterations done so far (1-based).
    public var iteration: Int
    /// Iterations planned in all.
    public var iterations: Int
    /// KL divergence on the unexaggerated P before this iteration's step.
    public var klDivergence: Double
    /// True during early exaggeration.
    public var exaggerated: Bool
    /// Norm of the gain-scaled gradient.
    public var gradientNorm: Double
}

/// Wall-clock seconds spent in each stage of `TSNE.fit`.
public struct TSNETimings: Sendable, Codable {
    /// PCA reduction of wide inputs.
    public var reduction = 0.0
    /// Distances, neighbours, perplexity calibration and symmetrisation.
    public var affinities = 0.0
    /// The initial map.
    public var initialization = 0.0
    /// Gradient descent and the final KL divergence.
    public var optimization = 0.0
    /// Everything.
    public var total = 0.0
}

/// The outcome of `TSNE.fit`.
public struct TSNEResult: Sendable {
    /// The map, `[N, 2]`, in input row order.
    public var embedding: Tensor
    /// KL(P || Q) of the final map on the unexaggerated P (for Barnes-Hut: on the sparse P, with
    /// the exact normaliser Z up to `TSNE.exactKLLimit` points, otherwise the quadtree estimate).
    public var klDivergence: Double
    /// Iterations run (fewer than asked when a stopping rule fired).
    public var iterations: Int
    /// The learning rate used, scikit-learn's units.
    public var learningRate: Double
    /// Neighbours per point in P (N - 1 for exact).
    public var neighbors: Int
    /// The method used.
    public var method: TSNE.Method
    /// Where the time went.
    public var timings: TSNETimings
}
