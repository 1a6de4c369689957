import Tensors

/// What went wrong in a routing analysis.
public enum RoutingError: SettingNamingError, Sendable {
    /// The token data cannot be cut into windows (names the data).
    case data(source: String, reason: SettingMessage)
    /// A setting of the analysis that cannot work.
    case setting(SettingMessage)

    public func description(naming name: (Setting) -> String) -> String {
        switch self {
        case let .data(s, r): return "\(s): \(r.rendered(naming: name))"
        case let .setting(r): return r.rendered(naming: name)
        }
    }
}

/// The settings of a routing analysis that messages name.
extension Setting {
    /// Tokens per window, each window its own causal sequence.
    package static let windowLength: Setting = "windowLength"
}
