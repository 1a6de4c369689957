/// Why an analysis could not be computed for a layer or checkpoint.
public enum AnalysisError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The weights contain NaN or Inf.
    case nonFinite(layer: Int, what: String)
    /// A router row has zero norm, so its noise bound is undefined.
    case zeroRouterRow(layer: Int, row: Int)
    /// A layer with fewer than two experts has no coupling to measure.
    case tooFewExperts(layer: Int, count: Int)
    /// The layer's weights could not be read (the reader's error, as text).
    case unreadable(layer: Int, reason: String)
    /// The request does not fit the data.
    case invalid(String)

    public var description: String {
        switch self {
        case let .nonFinite(l, w): return "layer \(l): \(w) contains NaN or Inf"
        case let .zeroRouterRow(l, r): return "layer \(l): router row \(r) has zero norm, so its noise bound eps is undefined"
        case let .tooFewExperts(l, n): return "layer \(l): \(n) expert(s); ERC needs at least 2"
        case let .unreadable(l, why): return "layer \(l): cannot read: \(why)"
        case let .invalid(s): return s
        }
    }
}

/// Whether a layer was analysed, or why not.
public enum LayerStatus: Sendable, Equatable, CustomStringConvertible {
    /// Every measure was computed.
    case ok
    /// The layer could not be analysed; its measures are absent.
    case failed(AnalysisError)

    /// `ok`, or the reason in words (the `status` column of the tables).
    public var description: String {
        switch self {
        case .ok: return "ok"
        case let .failed(e): return e.description
        }
    }
}
