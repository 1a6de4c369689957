import Checkpoints
import Tensors
import Tokenizers

/// What went wrong setting up or running training; always names the file or setting at fault.
public enum TrainingError: SettingNamingError, Sendable {
    /// A `config.json` that does not describe a trainable OLMoE model.
    case config(file: String, reason: String)
    /// A checkpoint whose tensors do not fit the config.
    case checkpoint(file: String, reason: String)
    /// A token file that cannot be used.
    case data(file: String, reason: SettingMessage)
    /// A token id at or above the vocabulary size (`position` counts tokens from 0).
    case tokenOutOfVocabulary(file: String, position: Int, token: Int64, vocabularySize: Int)
    /// Saved trainer state that cannot be resumed from.
    case state(file: String, reason: SettingMessage)
    /// A setting or a combination of settings that cannot work.
    case invalidOption(SettingMessage)
    /// Reading or writing a file failed.
    case io(file: String, reason: SettingMessage)
    /// The loss or the gradient became NaN or infinite.
    case nonFinite(step: Int, what: String)
    /// A file of the checkpoint layer could not be read or written; its error names the file.
    case files(CheckpointError)
    /// Text could not be tokenized; the tokenizer's error names the file.
    case text(TokenizerError)

    public func description(naming name: (Setting) -> String) -> String {
        // an error of the checkpoint layer is wrapped (`.files`), never pasted into a reason
        func named(_ f: String, _ r: String) -> String { "\(f): \(r)" }
        switch self {
        case let .config(f, r): return named(f, r)
        case let .checkpoint(f, r): return named(f, r)
        case let .data(f, r): return named(f, r.rendered(naming: name))
        case let .tokenOutOfVocabulary(f, p, t, v):
            return "\(f): token \(t) at position \(p) is outside the vocabulary (size \(v)); it is the first such token"
        case let .state(f, r): return named(f, r.rendered(naming: name))
        case let .invalidOption(r): return r.rendered(naming: name)
        case let .io(f, r): return named(f, r.rendered(naming: name))
        case let .nonFinite(s, w):
            return "step \(s): \(w) is not finite (NaN or infinity); the learning rate may be too high, or the weights or data hold extreme values"
        case let .files(e): return e.description(naming: name)
        case let .text(e): return e.description
        }
    }
}
