/// One of a caller's settings, by the name the library gives it: the property of an options value
/// (`TrainingOptions.sequenceLength` is `sequenceLength`). A message about a setting names it this
/// way; a front end that offers the setting under another name (the command line's `--seq-len`)
/// shows the message with its own names (`SettingMessage.rendered(naming:)`), so the library never
/// spells a flag.
public struct Setting: Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    /// The library's name of the setting.
    public let name: String
    public init(_ name: String) { self.name = name }
    public init(stringLiteral name: String) { self.name = name }
    public var description: String { name }
}

/// A one-line message that may name settings, written as a string with `Setting`s interpolated:
/// `"\(Setting.steps) must be at least 1, got \(steps)"`. `description` names the settings as the
/// library does; `rendered(naming:)` as a front end does.
public struct SettingMessage: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringInterpolation {
    enum Piece: Sendable, Hashable {
        case text(String)
        case setting(Setting)
    }
    let pieces: [Piece]

    public struct StringInterpolation: StringInterpolationProtocol {
        var pieces: [Piece] = []
        public init(literalCapacity: Int, interpolationCount: Int) {}
        public mutating func appendLiteral(_ literal: String) { pieces.append(.text(literal)) }
        /// A setting, named by whoever shows the message.
        public mutating func appendInterpolation(_ setting: Setting) { pieces.append(.setting(setting)) }
        /// Another message, its settings kept.
        public mutating func appendInterpolation(_ message: SettingMessage) { pieces += message.pieces }
        /// Any other value, as `String(describing:)`.
        public mutating func appendInterpolation<T>(_ value: T) { pieces.append(.text(String(describing: value))) }
    }

    public init(stringLiteral value: String) { pieces = [.text(value)] }
    public init(stringInterpolation: StringInterpolation) { pieces = stringInterpolation.pieces }
    /// A message that names no setting.
    public init(_ text: String) { pieces = [.text(text)] }

    /// The settings the message names, in order.
    public var settings: [Setting] {
        pieces.compactMap {
            if case let .setting(s) = $0 { return s }
            return nil
        }
    }

    /// The message with each setting named by `name`.
    public func rendered(naming name: (Setting) -> String) -> String {
        pieces.map {
            switch $0 {
            case let .text(t): return t
            case let .setting(s): return name(s)
            }
        }.joined()
    }

    /// The message with the library's names of the settings.
    public var description: String { rendered { $0.name } }
}

/// An error whose message may name settings: a front end shows it with its own names of them.
public protocol SettingNamingError: Error, CustomStringConvertible {
    /// The one-line message with each setting named by `name`.
    func description(naming name: (Setting) -> String) -> String
}

extension SettingNamingError {
    public var description: String { description { $0.name } }
}
