import Tensors

/// What went wrong reading or writing a checkpoint; always names the file.
public enum CheckpointError: SettingNamingError, Sendable {
    /// The file is malformed: `file` and what is wrong with it.
    case malformed(file: String, reason: String)
    /// A file or folder could not be opened, read or written.
    case io(file: String, reason: SettingMessage)
    /// A tensor was asked for that the checkpoint does not hold.
    case missingTensor(file: String, name: String)
    /// The operation is not possible for this data (for example BF16 into HDF5).
    case unsupported(file: String, reason: SettingMessage)

    public func description(naming name: (Setting) -> String) -> String {
        switch self {
        case let .malformed(f, r): return "\(f): \(r)"
        case let .io(f, r): return "\(f): \(r.rendered(naming: name))"
        case let .missingTensor(f, n): return "\(f): no tensor named '\(n)'"
        case let .unsupported(f, r): return "\(f): \(r.rendered(naming: name))"
        }
    }
}

/// The settings of the checkpoint layer that messages name.
extension Setting {
    /// Whether an existing output may be replaced.
    package static let overwrite: Setting = "overwrite"
    /// The element type written.
    package static let dtype: Setting = "dtype"
}
