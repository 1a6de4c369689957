/// A JSON value that keeps object keys in file order and reports duplicates.
///
/// The parser is written for untrusted headers: it works on bytes, validates UTF-8, limits
/// nesting depth, never traps, and tells integers (`.int`) from other numbers (`.number`).
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case number(Double)
    case string(String)
    case array([JSONValue])
    /// Key-value pairs in file order.
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.int(x), .int(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.int(x), .number(y)), let (.number(y), .int(x)): return Double(x) == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// Member `key` of an object, else nil. Keys compare byte for byte (not by Unicode
    /// canonical equivalence); a duplicated key gives its last value, as Python's `json` does.
    public subscript(key: String) -> JSONValue? {
        if case let .object(pairs) = self { return pairs.last(where: { $0.0.utf8.elementsEqual(key.utf8) })?.1 }
        return nil
    }

    /// The string, if this is one.
    public var stringValue: String? { if case let .string(s) = self { return s }; return nil }
    /// The integer, if this is an integer literal or a number with no fraction.
    public var intValue: Int? {
        switch self {
        case let .int(i): return i
        case let .number(d) where d.rounded() == d && abs(d) < 9e15: return Int(d)
        default: return nil
        }
    }
    /// The value as a Double, for any number.
    public var doubleValue: Double? {
        switch self {
        case let .int(i): return Double(i)
        case let .number(d): return d
        default: return nil
        }
    }
    /// The boolean, if this is one.
    public var boolValue: Bool? { if case let .bool(b) = self { return b }; return nil }
    /// The elements, if this is an array.
    public var arrayValue: [JSONValue]? { if case let .array(a) = self { return a }; return nil }
    /// The pairs, if this is an object.
    public var objectPairs: [(String, JSONValue)]? { if case let .object(o) = self { return o }; return nil }

    /// Returns a copy of this object with `key` set (replacing an existing member in place).
    public func setting(_ key: String, _ value: JSONValue) -> JSONValue {
        guard case var .object(pairs) = self else { return self }
        if let i = pairs.firstIndex(where: { $0.0 == key }) { pairs[i].1 = value } else { pairs.append((key, value)) }
        return .object(pairs)
    }

    /// Serialises compactly (`pretty: false`) or with two-space indentation.
    public func serialized(pretty: Bool = false) -> String {
        var out = ""
        write(to: &out, pretty: pretty, indent: 0)
        return out
    }

    private func write(to out: inout String, pretty: Bool, indent: Int) {
        let nl = pretty ? "\n" : ""
        let pad = pretty ? String(repeating: "  ", count: indent + 1) : ""
        let endPad = pretty ? String(repeating: "  ", count: indent) : ""
        switch self {
        case .null: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .int(i): out += String(i)
        case let .number(d):
            if d.isFinite {
                if d.rounded() == d && abs(d) < 1e15 { out += String(Int(d)) + ".0" } else { out += "\(d)" }
            } else {
                out += "null"
            }
        case let .string(s): JSONValue.writeString(s, to: &out)
        case let .array(a):
            if a.isEmpty { out += "[]"; return }
            out += "[" + nl
            for (i, v) in a.enumerated() {
                out += pad
                v.write(to: &out, pretty: pretty, indent: indent + 1)
                out += (i + 1 < a.count ? "," : "") + nl
            }
            out += endPad + "]"
        case let .object(o):
            if o.isEmpty { out += "{}"; return }
            out += "{" + nl
            for (i, (k, v)) in o.enumerated() {
                out += pad
                JSONValue.writeString(k, to: &out)
                out += pretty ? ": " : ":"
                v.write(to: &out, pretty: pretty, indent: indent + 1)
                out += (i + 1 < o.count ? "," : "") + nl
            }
            out += endPad + "}"
        }
    }

    static func writeString(_ s: String, to out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let h = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }
}

/// Why a JSON text could not be parsed: a message and the byte offset where it went wrong.
public struct JSONParseError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public let offset: Int
    public var description: String { "\(message) at byte \(offset)" }
}

/// A byte-level JSON parser (RFC 8259) with duplicate-key detection.
public struct JSONParser {
    private let bytes: UnsafeRawBufferPointer
    private var pos = 0
    private let maxDepth: Int
    private let rejectDuplicateKeys: Bool

    /// Parses one JSON value filling all of `bytes` (trailing white space allowed).
    public static func parse(
        _ bytes: UnsafeRawBufferPointer, maxDepth: Int = 64,
        rejectDuplicateKeys: Bool = true
    ) throws(JSONParseError) -> JSONValue {
        var p = JSONParser(bytes: bytes, maxDepth: maxDepth, rejectDuplicateKeys: rejectDuplicateKeys)
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        if p.pos != bytes.count { throw JSONParseError(message: "unexpected text after the JSON value", offset: p.pos) }
        return v
    }

    /// Parses a JSON text held in a byte array.
    public static func parse(_ bytes: [UInt8], rejectDuplicateKeys: Bool = true) throws(JSONParseError) -> JSONValue {
        let r = bytes.withUnsafeBytes { b -> Result<JSONValue, JSONParseError> in
            do throws(JSONParseError) { return .success(try parse(b, rejectDuplicateKeys: rejectDuplicateKeys)) } catch { return .failure(error) }
        }
        return try r.get()
    }

    /// Parses a JSON text held in a string.
    public static func parse(_ text: String, rejectDuplicateKeys: Bool = true) throws(JSONParseError) -> JSONValue {
        try parse(Array(text.utf8), rejectDuplicateKeys: rejectDuplicateKeys)
    }

    private init(bytes: UnsafeRawBufferPointer, maxDepth: Int, rejectDuplicateKeys: Bool) {
        self.bytes = bytes; self.maxDepth = maxDepth; self.rejectDuplicateKeys = rejectDuplicateKeys
    }

    private func fail(_ m: String) -> JSONParseError { JSONParseError(message: m, offset: pos) }
    private var current: UInt8? { pos < bytes.count ? bytes[pos] : nil }

    private mutating func skipSpace() {
        while pos < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[pos]) { pos += 1 }
    }

    private mutating func value(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth < maxDepth else { throw fail("JSON nested deeper than \(maxDepth) levels") }
        guard let c = current else { throw fail("unexpected end of JSON") }
        switch c {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw fail("unexpected character '\(Character(Unicode.Scalar(c)))' in JSON")
        }
    }

    private mutating func literal(_ word: String) throws(JSONParseError) {
        for b in word.utf8 {
            guard current == b else { throw fail("invalid literal, expected '\(word)'") }
            pos += 1
        }
    }

    private mutating func object(depth: Int) throws(JSONParseError) -> JSONValue {
        pos += 1
        var pairs: [(String, JSONValue)] = []
        var seen = Set<ExactName>()
        skipSpace()
        if current == UInt8(ascii: "}") { pos += 1; return .object(pairs) }
        while true {
            skipSpace()
            guard current == UInt8(ascii: "\"") else { throw fail("expected a string key in JSON object") }
            let keyStart = pos
            let key = try string()
            if rejectDuplicateKeys && !seen.insert(ExactName(key)).inserted {
                throw JSONParseError(message: "duplicate key \"\(key)\"", offset: keyStart)
            }
            skipSpace()
            guard current == UInt8(ascii: ":") else { throw fail("expected ':' after key \"\(key)\"") }
            pos += 1
            skipSpace()
            let v = try value(depth: depth + 1)
            pairs.append((key, v))
            skipSpace()
            if current == UInt8(ascii: ",") { pos += 1; continue }
            if current == UInt8(ascii: "}") { pos += 1; return .object(pairs) }
            throw fail("expected ',' or '}' in JSON object")
        }
    }

    private mutating func array(depth: Int) throws(JSONParseError) -> JSONValue {
        pos += 1
        var items: [JSONValue] = []
        skipSpace()
        if current == UInt8(ascii: "]") { pos += 1; return .array(items) }
        while true {
            skipSpace()
            items.append(try value(depth: depth + 1))
            skipSpace()
            if current == UInt8(ascii: ",") { pos += 1; continue }
            if current == UInt8(ascii: "]") { pos += 1; return .array(items) }
            throw fail("expected ',' or ']' in JSON array")
        }
    }

    private mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard pos + 4 <= bytes.count else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[pos]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw fail("invalid hex digit in \\u escape")
            }
            v = v * 16 + d
            pos += 1
        }
        return v
    }

    private mutating func string() throws(JSONParseError) -> String {
        pos += 1
        var scalars = String.UnicodeScalarView()
        var runStart = pos
        func flushRun(_ end: Int) throws(JSONParseError) {
            if end > runStart {
                guard let s = String(validating: UnsafeRawBufferPointer(rebasing: bytes[runStart..<end]), as: UTF8.self) else {
                    throw JSONParseError(message: "invalid UTF-8 in JSON string", offset: runStart)
                }
                scalars.append(contentsOf: s.unicodeScalars)
            }
        }
        while true {
            guard let c = current else { throw fail("unterminated JSON string") }
            if c == UInt8(ascii: "\"") {
                try flushRun(pos)
                pos += 1
                return String(scalars)
            }
            if c < 0x20 { throw fail("control character in JSON string") }
            if c == UInt8(ascii: "\\") {
                try flushRun(pos)
                pos += 1
                guard let e = current else { throw fail("unterminated escape") }
                pos += 1
                switch e {
                case UInt8(ascii: "\""): scalars.append("\"")
                case UInt8(ascii: "\\"): scalars.append("\\")
                case UInt8(ascii: "/"): scalars.append("/")
                case UInt8(ascii: "b"): scalars.append("\u{08}")
                case UInt8(ascii: "f"): scalars.append("\u{0C}")
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code) {
                        guard pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired surrogate in JSON string")
                        }
                        pos += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate in JSON string") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let u = Unicode.Scalar(code) else { throw fail("invalid \\u escape") }
                    scalars.append(u)
                default: throw fail("invalid escape in JSON string")
                }
                runStart = pos
                continue
            }
            pos += 1
        }
    }

    private mutating func number() throws(JSONParseError) -> JSONValue {
        let start = pos
        var isInteger = true
        if current == UInt8(ascii: "-") { pos += 1 }
        guard let first = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { throw fail("invalid number") }
        if first == UInt8(ascii: "0") { pos += 1 } else { while let c = current, (48...57).contains(c) { pos += 1 } }
        if current == UInt8(ascii: ".") {
            isInteger = false
            pos += 1
            guard let c = current, (48...57).contains(c) else { throw fail("invalid number") }
            while let c = current, (48...57).contains(c) { pos += 1 }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            isInteger = false
            pos += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { pos += 1 }
            guard let c = current, (48...57).contains(c) else { throw fail("invalid number") }
            while let c = current, (48...57).contains(c) { pos += 1 }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
        if isInteger, let i = Int(text) { return .int(i) }
        guard let d = Double(text) else { throw JSONParseError(message: "invalid number", offset: start) }
        return .number(d)
    }
}
