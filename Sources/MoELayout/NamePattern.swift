/// A tensor-name pattern with `{layer}` and `{expert}` fields that match decimal numbers,
/// e.g. `model.layers.{layer}.mlp.experts.{expert}.gate_proj.weight`.
public struct NamePattern: Sendable, Hashable, Codable, CustomStringConvertible {
    enum Token: Hashable, Sendable { case literal([UInt8]), layer, expert }

    /// The pattern text.
    public let text: String
    let tokens: [Token]

    /// Parses `text`; unknown `{...}` fields are kept as literal text.
    public init(_ text: String) {
        self.text = text
        var tokens: [Token] = []
        var lit: [UInt8] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            if rest.hasPrefix("{layer}") {
                if !lit.isEmpty { tokens.append(.literal(lit)); lit = [] }
                tokens.append(.layer); rest = rest.dropFirst(7)
            } else if rest.hasPrefix("{expert}") {
                if !lit.isEmpty { tokens.append(.literal(lit)); lit = [] }
                tokens.append(.expert); rest = rest.dropFirst(8)
            } else {
                if let ch = rest.first { lit.append(contentsOf: String(ch).utf8) }
                rest = rest.dropFirst()
            }
        }
        if !lit.isEmpty { tokens.append(.literal(lit)) }
        self.tokens = tokens
    }

    public init(from decoder: Decoder) throws { self.init(try decoder.singleValueContainer().decode(String.self)) }
    public func encode(to encoder: Encoder) throws { var c = encoder.singleValueContainer(); try c.encode(text) }
    public var description: String { text }

    /// How many times `field` (`.layer` or `.expert`) occurs.
    func count(_ field: Token) -> Int { tokens.filter { $0 == field }.count }

    /// The `{name}` fields of the text other than `{layer}` and `{expert}`.
    var unknownFields: [String] {
        var out: [String] = []
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            let after = rest[rest.index(after: open)...]
            guard let close = after.firstIndex(of: "}") else { break }
            let name = String(after[..<close])
            if name != "layer" && name != "expert" && !name.isEmpty && name.allSatisfy({ $0.isLetter || $0 == "_" }) { out.append(name) }
            rest = after[after.index(after: close)...]
        }
        return out
    }

    /// The layer and expert numbers if `name` matches (nil for a field the pattern lacks).
    public func match(_ name: String) -> (layer: Int?, expert: Int?)? {
        var u = Array(name.utf8)[...]
        var layer: Int?, expert: Int?
        for t in tokens {
            switch t {
            case let .literal(l):
                guard u.starts(with: l) else { return nil }
                u = u.dropFirst(l.count)
            case .layer, .expert:
                var v = 0, n = 0
                while let c = u.first, c >= 48, c <= 57, n < 9 { v = v * 10 + Int(c - 48); u = u.dropFirst(); n += 1 }
                guard n > 0 else { return nil }
                if t == .layer { layer = v } else { expert = v }
            }
        }
        return u.isEmpty ? (layer, expert) : nil
    }

    /// The name for the given layer and expert.
    public func name(layer: Int, expert: Int = 0) -> String {
        var s = ""
        for t in tokens {
            switch t {
            case let .literal(l): s += String(decoding: l, as: UTF8.self)
            case .layer: s += String(layer)
            case .expert: s += String(expert)
            }
        }
        return s
    }
}
