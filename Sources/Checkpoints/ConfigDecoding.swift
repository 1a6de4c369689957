import Foundation

/// A `config.json` key, for configs whose keys differ between transformers versions (v4
/// `num_local_experts` beside `num_experts`, `torch_dtype` beside `dtype`, ...).
public struct ConfigKey: CodingKey {
    public var stringValue: String
    public var intValue: Int? { nil }
    public init(_ s: String) { stringValue = s }
    public init?(stringValue: String) { self.stringValue = stringValue }
    public init?(intValue: Int) { nil }
}

extension KeyedDecodingContainer where Key == ConfigKey {
    /// The value of the first of `keys` present and not null, else nil.
    public func first<T: Decodable>(_ type: T.Type, _ keys: String...) throws -> T? {
        try firstValue(T.self, keys)
    }

    /// The value of the first of `keys` present and not null, else `fallback`.
    public func value<T: Decodable>(_ keys: String..., default fallback: T) throws -> T {
        try firstValue(T.self, keys) ?? fallback
    }

    /// The value of the first of `keys` present and not null; throws naming the first key when
    /// none is.
    public func required<T: Decodable>(_ keys: String...) throws -> T {
        if let v = try firstValue(T.self, keys) { return v }
        throw DecodingError.keyNotFound(ConfigKey(keys[0]), .init(codingPath: codingPath, debugDescription: "missing '\(keys[0])'"))
    }

    /// True when `key` is present, null or not.
    public func has(_ key: String) -> Bool { contains(ConfigKey(key)) }

    private func firstValue<T: Decodable>(_ type: T.Type, _ keys: [String]) throws -> T? {
        for k in keys {
            let key = ConfigKey(k)
            guard contains(key), try !decodeNil(forKey: key) else { continue }
            do { return try decode(T.self, forKey: key) } catch let e as DecodingError { throw e } catch where T.self is any Numeric.Type {
                // Foundation's own error for a number that does not fit the type (12.5 or 1e30 as an
                // integer), which its decoder reports as "not valid JSON" naming no key
                throw DecodingError.typeMismatch(T.self, .init(codingPath: codingPath + [key], debugDescription: "\(error)"))
            }
        }
        return nil
    }
}

/// A config that did not decode: one line naming the key and what was wrong with it.
public struct ConfigDecodingFailure: Error, CustomStringConvertible {
    public let description: String

    /// The line for a `DecodingError`: `missing 'vocab_size'`, `'hidden_size' must be an integer`.
    public init(_ e: DecodingError) {
        func path(_ p: [CodingKey]) -> String { p.map(\.stringValue).joined(separator: ".") }
        func kind(_ t: Any.Type) -> String {
            switch t {
            case is Int.Type: return "an integer"
            case is Double.Type, is Float.Type: return "a number"
            case is Bool.Type: return "true or false"
            case is String.Type: return "a string"
            default: return "a \(t)"
            }
        }
        switch e {
        case let .keyNotFound(k, c): description = "missing '\((c.codingPath.map(\.stringValue) + [k.stringValue]).joined(separator: "."))'"
        case let .typeMismatch(t, c): description = "'\(path(c.codingPath))' must be \(kind(t))"
        case let .valueNotFound(t, c): description = "'\(path(c.codingPath))' is null, expected \(kind(t))"
        case let .dataCorrupted(c):
            // a number that does not fit the type (1.5 or 1e30 as an integer) lands here
            description = c.codingPath.isEmpty ? c.debugDescription : "'\(path(c.codingPath))': \(c.debugDescription)"
        @unknown default: description = "\(e)"
        }
    }
}

extension ModelConfig {
    /// Decodes `T` from the config object (a family's config struct, the trainer's keys).
    /// - Throws: `ConfigDecodingFailure` for a missing key or a value of the wrong type; any
    ///   other error that `T`'s decoder throws, as it is.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        do { return try JSONDecoder().decode(T.self, from: Data(json.serialized().utf8)) } catch let e as DecodingError {
            throw ConfigDecodingFailure(e)
        }
    }
}
