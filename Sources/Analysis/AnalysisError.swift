/// Why an analysis could not be computed for a layer or checkpoint.
public enum AnalysisError: Error, CustomStringConvertible, Sendable {
    /// The weights contain NaN or Inf.
    case nonFinite(layer: Int, what: String)
    /// A router row has zero norm, so its noise bound is undefined.
    case zeroRouterRow(layer: Int, row: Int)
    /// A layer with fewer than two experts has no coupling to measure.
    case tooFewExperts(layer: Int, count: Int)
    /// The request does not fit the data.
    case invalid(String)

    public var description: String {
        switch self {
        case let .nonFinite(l, w): return "layer \(l): \(w) contains NaN or Inf"
        case let .zeroRouterRow(l, r): return "layer \(l): router row \(r) has zero norm, so its noise bound eps is undefined"
        case let .tooFewExperts(l, n): return "layer \(l): \(n) expert(s); ERC needs at least 2"
        case let .invalid(s): return s
        }
    }
}
