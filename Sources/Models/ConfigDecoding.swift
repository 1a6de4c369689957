import Checkpoints
import Foundation

/// A `config.json` key, for configs whose keys differ between transformers versions.
struct ConfigKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension KeyedDecodingContainer where Key == ConfigKey {
    /// The value of the first of `keys` present and not null, else nil.
    func first<T: Decodable>(_ type: T.Type, _ keys: String...) throws -> T? {
        for k in keys {
            let key = ConfigKey(k)
            if contains(key), try !decodeNil(forKey: key) { return try decode(T.self, forKey: key) }
        }
        return nil
    }

    /// The value of the first of `keys` present, else `fallback`.
    func value<T: Decodable>(_ keys: String..., default fallback: T) throws -> T {
        for k in keys {
            let key = ConfigKey(k)
            if contains(key), try !decodeNil(forKey: key) { return try decode(T.self, forKey: key) }
        }
        return fallback
    }

    /// The value of the first of `keys` present; throws naming the first key when none is.
    func required<T: Decodable>(_ keys: String...) throws -> T {
        for k in keys {
            let key = ConfigKey(k)
            if contains(key), try !decodeNil(forKey: key) { return try decode(T.self, forKey: key) }
        }
        throw DecodingError.keyNotFound(ConfigKey(keys[0]), .init(codingPath: codingPath, debugDescription: "missing '\(keys[0])'"))
    }
}

/// Decodes a family's config struct from a checkpoint's `config.json` object.
func decodeConfig<T: Decodable>(_ type: T.Type, from config: ModelConfig, source: String) throws(ModelsError) -> T {
    let data = Data(config.json.serialized().utf8)
    do { return try JSONDecoder().decode(T.self, from: data) } catch let e as DecodingError {
        throw .config(file: source, reason: describe(e))
    } catch let e as ModelsError {
        throw e
    } catch {
        throw .config(file: source, reason: "\(error)")
    }
}

/// One line for a decoding error: the key path and what was wrong.
func describe(_ e: DecodingError) -> String {
    func path(_ p: [CodingKey]) -> String { p.map(\.stringValue).joined(separator: ".") }
    switch e {
    case let .keyNotFound(k, c): return "missing '\((c.codingPath.map(\.stringValue) + [k.stringValue]).joined(separator: "."))'"
    case let .typeMismatch(t, c): return "'\(path(c.codingPath))' is not a \(t)"
    case let .valueNotFound(t, c): return "'\(path(c.codingPath))' is null, expected a \(t)"
    case let .dataCorrupted(c): return c.debugDescription + (c.codingPath.isEmpty ? "" : " at '\(path(c.codingPath))'")
    @unknown default: return "\(e)"
    }
}
