/// What went wrong while building or writing a figure; every case names what was at fault.
public enum PlotError: Error, CustomStringConvertible, Equatable {
    /// The output name's extension is not one of `png`, `pdf`, `svg`.
    case unsupportedFormat(file: String)
    /// Data handed to a plot call cannot be drawn (lengths differ, a ragged matrix, ...).
    case invalidData(what: String, reason: String)
    /// A provenance key cannot be stored (PNG keys are 1-79 Latin-1 characters without a leading
    /// or trailing space).
    case invalidProvenance(file: String, key: String)
    /// Cairo or libpng could not draw or encode the figure.
    case renderFailed(file: String, reason: String)
    /// The file could not be written or renamed into place.
    case writeFailed(file: String, reason: String)

    /// One line naming the file or data and the cause.
    public var description: String {
        switch self {
        case .unsupportedFormat(let file):
            return "\(file): unsupported figure format (use .png, .pdf or .svg)"
        case .invalidData(let what, let reason):
            return "\(what): \(reason)"
        case .invalidProvenance(let file, let key):
            return "\(file): provenance key \"\(key)\" is not 1-79 Latin-1 characters without leading or trailing spaces"
        case .renderFailed(let file, let reason):
            return "\(file): cannot render figure: \(reason)"
        case .writeFailed(let file, let reason):
            return "\(file): cannot write figure: \(reason)"
        }
    }
}
