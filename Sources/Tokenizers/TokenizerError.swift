/// What went wrong reading a `tokenizer.json` or encoding a text with it; always names the file.
public enum TokenizerError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A file or folder could not be found, opened or read.
    case io(file: String, reason: String)
    /// The tokenizer file is not what `tokenizer.json` must be: `file` and what is wrong.
    case malformed(file: String, reason: String)
    /// The tokenizer uses a component or option this reader does not implement; encoding with it
    /// would not give the ids Hugging Face `tokenizers` gives, so it is refused.
    case unsupported(file: String, component: String, reason: String)
    /// An input text (or id list) cannot be encoded (decoded): `file` names the text.
    case input(file: String, reason: String)

    public var description: String {
        switch self {
        case let .io(f, r): return "\(f): \(r)"
        case let .malformed(f, r): return "\(f): \(r)"
        case let .unsupported(f, c, r): return "\(f): unsupported \(c): \(r)"
        case let .input(f, r): return "\(f): \(r)"
        }
    }
}
