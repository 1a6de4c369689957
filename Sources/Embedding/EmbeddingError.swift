import Tensors

/// Why an embedding, a PCA or a silhouette score could not be computed.
public enum EmbeddingError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The input is not a matrix of points (rank 2, at least one column).
    case notAMatrix(shape: [Int])
    /// Fewer points than the method needs.
    case tooFewPoints(count: Int, minimum: Int)
    /// The perplexity is not below the number of points (`maximum` is the largest usable value).
    case perplexityTooLarge(perplexity: Double, points: Int, maximum: Int)
    /// A parameter outside its range, e.g. a negative perplexity or zero iterations.
    case invalidParameter(name: String, value: String, expected: String)
    /// The input holds a NaN or an infinity at (row, column).
    case nonFiniteInput(row: Int, column: Int)
    /// Exact t-SNE was asked for more points than its N x N matrices allow.
    case tooManyPointsForExact(count: Int, maximum: Int)
    /// The labels do not match the points (one label per point).
    case labelCountMismatch(labels: Int, points: Int)
    /// The silhouette needs between 2 and N - 1 distinct labels.
    case invalidLabelCount(distinct: Int, points: Int)

    public var description: String {
        switch self {
        case .notAMatrix(let shape):
            return "expected a matrix of points (rows x features), got shape \(shape)"
        case .tooFewPoints(let count, let minimum):
            return "need at least \(minimum) points, got \(count)"
        case .perplexityTooLarge(let perplexity, let points, let maximum):
            return "perplexity \(perplexity) must be less than the number of points (\(points)); "
                + "use at most \(maximum)"
        case .invalidParameter(let name, let value, let expected):
            return "invalid \(name) \(value): expected \(expected)"
        case .nonFiniteInput(let row, let column):
            return "input holds a non-finite value (NaN or infinity) at row \(row), column \(column)"
        case .tooManyPointsForExact(let count, let maximum):
            return "exact t-SNE keeps N x N matrices and is limited to \(maximum) points, got \(count); "
                + "use Barnes-Hut"
        case .labelCountMismatch(let labels, let points):
            return "got \(labels) labels for \(points) points"
        case .invalidLabelCount(let distinct, let points):
            return "the silhouette needs between 2 and \(points - 1) distinct labels, got \(distinct)"
        }
    }
}

/// Checks that `data` is an N x d matrix of finite values with at least `minimumPoints` rows.
func validatePoints(_ data: Tensor, minimumPoints: Int) throws {
    guard data.rank == 2, data.columns >= 1 else { throw EmbeddingError.notAMatrix(shape: data.shape) }
    guard data.rows >= minimumPoints else {
        throw EmbeddingError.tooFewPoints(count: data.rows, minimum: minimumPoints)
    }
    if data.hasNonFinite, let k = data.storage.firstIndex(where: { !$0.isFinite }) {
        throw EmbeddingError.nonFiniteInput(row: k / data.columns, column: k % data.columns)
    }
}
