import Tensors

/// What went wrong building or running a model's forward pass; always names the file.
public enum ModelsError: SettingNamingError, Sendable {
    /// The config cannot describe a model this layer runs (missing or inconsistent keys).
    case config(file: String, reason: String)
    /// The model family or one of its options is outside what the forward pass supports.
    case unsupported(file: String, reason: String)
    /// A weight is missing or has the wrong shape.
    case weights(file: String, reason: String)
    /// Input tokens that the model cannot take.
    case input(reason: SettingMessage)

    public func description(naming name: (Setting) -> String) -> String {
        switch self {
        case let .config(f, r): return "\(f): config: \(r)"
        case let .unsupported(f, r): return "\(f): \(r)"
        case let .weights(f, r): return "\(f): \(r)"
        case let .input(r): return r.rendered(naming: name)
        }
    }
}

/// The settings of a forward pass that messages name.
extension Setting {
    /// The most tokens read from the data.
    package static let maxTokens: Setting = "maxTokens"
}
