/// What went wrong in a routing analysis.
public enum RoutingError: Error, CustomStringConvertible, Sendable {
    /// The token data cannot be cut into windows (names the data).
    case data(source: String, reason: String)

    public var description: String {
        switch self {
        case let .data(s, r): return "\(s): \(r)"
        }
    }
}
