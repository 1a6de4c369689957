import Foundation
import Tensors

/// Gaussian conditional probabilities calibrated to a perplexity, row by row.
///
/// For each point i the precision beta_i of p_{j|i} proportional to exp(-beta_i d_ij) (d_ij the
/// squared distance) is found by bisection, doubling or halving beta while it is unbracketed, until
/// the Shannon entropy H_i = -sum_j p_{j|i} ln p_{j|i} is within `tolerance` of ln(perplexity)
/// (scikit-learn's `_binary_search_perplexity`: start at beta 1, tolerance 1e-5, 100 steps).
/// Distances are shifted by the row minimum before exponentiating, which leaves p and H unchanged
/// but keeps the sum away from underflow, so duplicate or far-away points give no 0/0.
public struct PerplexityCalibration: Sendable {
    /// `[rows * columns]` conditional probabilities; each row sums to 1 (0 on excluded entries).
    public var probabilities: [Float]
    /// The precision beta_i found for each row.
    public var betas: [Double]
    /// The entropy H_i (natural log) of each row's distribution.
    public var entropies: [Double]

    /// Largest number of bisection steps per row.
    public static let maximumSteps = 100

    /// Calibrates each row of a `rows x columns` matrix of squared distances.
    ///
    /// - Parameters:
    ///   - squaredDistances: row i holds the squared distances from point i to its candidates.
    ///   - excludingDiagonal: the matrix is square and entry (i, i) is the point itself: skip it.
    ///   - perplexity: the target exp(H_i), > 0.
    ///   - tolerance: allowed |H_i - ln(perplexity)|.
    public init(
        squaredDistances: [Float], rows: Int, columns: Int, excludingDiagonal: Bool = false,
        perplexity: Double, tolerance: Double = 1e-5, threads: Int = NearestNeighbors.defaultThreads
    ) {
        precondition(squaredDistances.count == rows * columns, "PerplexityCalibration: shape mismatch")
        var p = [Float](repeating: 0, count: rows * columns)
        var betas = [Double](repeating: 1, count: rows)
        var entropies = [Double](repeating: 0, count: rows)
        let target = log(perplexity)
        let chunks = Chunks(count: rows, size: 16)
        squaredDistances.withUnsafeBufferPointer { dist in
            p.withUnsafeMutableBufferPointer { pp in
                betas.withUnsafeMutableBufferPointer { bp in
                    entropies.withUnsafeMutableBufferPointer { hp in
                        let out = UnsafeShared((pp, bp, hp))
                        Parallel.forEach(chunks.chunkCount, threads: threads) { c in
                            var row = [Double](repeating: 0, count: columns)
                            for i in chunks.range(c) {
                                let skip = excludingDiagonal ? i : -1
                                let (beta, entropy) = PerplexityCalibration.calibrateRow(
                                    dist.baseAddress! + i * columns, count: columns, skipping: skip,
                                    target: target, tolerance: tolerance, into: &row)
                                for j in 0..<columns { out.value.0[i * columns + j] = Float(row[j]) }
                                out.value.1[i] = beta
                                out.value.2[i] = entropy
                            }
                        }
                    }
                }
            }
        }
        probabilities = p
        self.betas = betas
        self.entropies = entropies
    }

    /// One row's bisection; leaves the normalised probabilities in `row` and returns (beta, H).
    static func calibrateRow(
        _ d: UnsafePointer<Float>, count: Int, skipping skip: Int, target: Double,
        tolerance: Double, into row: inout [Double]
    ) -> (Double, Double) {
        var dmin = Double.infinity
        for j in 0..<count where j != skip { dmin = min(dmin, Double(d[j])) }
        if !dmin.isFinite { dmin = 0 }
        var beta = 1.0, lo = -Double.infinity, hi = Double.infinity
        var entropy = 0.0, sum = 1.0, evaluated = beta
        for _ in 0..<maximumSteps {
            evaluated = beta
            sum = 0
            var weighted = 0.0
            for j in 0..<count {
                if j == skip { row[j] = 0; continue }
                let shifted = Double(d[j]) - dmin
                let e = exp(-shifted * beta)
                row[j] = e
                sum += e
                weighted += shifted * e
            }
            entropy = log(sum) + beta * weighted / sum
            let diff = entropy - target
            if abs(diff) <= tolerance { break }
            if diff > 0 {
                lo = beta
                beta = hi == .infinity ? beta * 2 : (beta + hi) / 2
            } else {
                hi = beta
                beta = lo == -.infinity ? beta / 2 : (beta + lo) / 2
            }
        }
        let inverse = 1 / sum
        for j in 0..<count { row[j] *= inverse }
        return (evaluated, entropy)
    }
}

/// Symmetric joint probabilities on a sparse pattern, in compressed-row form.
///
/// P = (C + C^T) / sum(C + C^T) for the conditional probabilities C on the k-nearest-neighbour
/// graph (scikit-learn's `_joint_probabilities_nn`); rows list their columns in increasing order.
public struct SparseAffinities: Sendable {
    /// Number of points N.
    public var points: Int
    /// `[N + 1]` offsets into `columns` and `values`.
    public var rowStart: [Int]
    /// Column (neighbour) of each stored entry.
    public var columns: [Int32]
    /// p_ij of each stored entry; all entries sum to 1.
    public var values: [Float]

    /// Symmetrises conditional probabilities `conditional[i * k + t]` of the pairs (i, neighbour).
    public init(neighbors: NearestNeighbors, conditional: [Float]) {
        let n = neighbors.points, k = neighbors.k
        var counts = [Int](repeating: 0, count: n + 1)
        for i in 0..<n {
            counts[i] += k
            for t in 0..<k { counts[Int(neighbors.indices[i * k + t])] += 1 }
        }
        var start = [Int](repeating: 0, count: n + 1)
        for i in 0..<n { start[i + 1] = start[i] + counts[i] }
        var fill = start
        var cols = [Int32](repeating: 0, count: start[n])
        var vals = [Double](repeating: 0, count: start[n])
        for i in 0..<n {
            for t in 0..<k {
                let j = Int(neighbors.indices[i * k + t]), p = Double(conditional[i * k + t])
                cols[fill[i]] = Int32(j); vals[fill[i]] = p; fill[i] += 1
                cols[fill[j]] = Int32(i); vals[fill[j]] = p; fill[j] += 1
            }
        }
        // Sort each row by column and merge the pairs stored from both ends.
        var rowStart = [0]
        rowStart.reserveCapacity(n + 1)
        var outCols: [Int32] = [], outVals: [Double] = []
        outCols.reserveCapacity(start[n]); outVals.reserveCapacity(start[n])
        var total = 0.0
        for i in 0..<n {
            let order = (start[i]..<start[i + 1]).sorted { cols[$0] < cols[$1] }
            var last: Int32 = -1
            for e in order {
                if cols[e] == last {
                    outVals[outVals.count - 1] += vals[e]
                } else {
                    outCols.append(cols[e]); outVals.append(vals[e]); last = cols[e]
                }
                total += vals[e]
            }
            rowStart.append(outCols.count)
        }
        let scale = 1 / max(total, Double.ulpOfOne)
        points = n
        self.rowStart = rowStart
        columns = outCols
        values = outVals.map { Float($0 * scale) }
    }
}

/// Turns dense conditional probabilities `[N * N]` into symmetric joint ones, in place:
/// P = max((C + C^T) / sum, eps) off the diagonal (scikit-learn's `_joint_probabilities`, eps the
/// Double machine epsilon), 0 on it.
func symmetrizeDenseProbabilities(_ c: inout [Float], n: Int) {
    var total = 0.0
    c.withUnsafeMutableBufferPointer { p in
        for i in 0..<n {
            p[i * n + i] = 0
            for j in (i + 1)..<max(i + 1, n) {
                let v = p[i * n + j] + p[j * n + i]
                p[i * n + j] = v
                p[j * n + i] = v
                total += 2 * Double(v)
            }
        }
        let scale = Float(1 / max(total, Double.ulpOfOne))
        let floor = Float(Double.ulpOfOne)
        for i in 0..<n {
            for j in 0..<n where j != i { p[i * n + j] = max(p[i * n + j] * scale, floor) }
        }
    }
}
