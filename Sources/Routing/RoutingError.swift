/// What went wrong in a routing analysis.
public enum RoutingError: Error, CustomStringConvertible, Sendable {
    /// The token data cannot be cut into windows (names the data).
    case data(source: String, reason: String)
    /// Checkpoints that cannot be compared (different tokens, layers or experts).
    case mismatch(reason: String)

    public var description: String {
        switch self {
        case let .data(s, r): return "\(s): \(r)"
        case let .mismatch(r): return r
        }
    }
}
