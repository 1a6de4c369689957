/// A decoder of `tokenizer.json`: turns the list of token strings back into text, step by step as
/// `tokenizers`' `decode_chain` does (each token as UTF-8 bytes).
indirect enum Decoder: Sendable {
    /// Maps the byte alphabet back to bytes and joins everything into one token (invalid UTF-8
    /// becomes U+FFFD).
    case byteLevel
    /// Runs of `<0xNN>` tokens become the text of their bytes (or one U+FFFD per byte if invalid).
    case byteFallback
    /// Joins all tokens into one.
    case fuse
    /// Removes up to `start` leading and `stop` trailing `content` characters of every token.
    case strip(content: UInt32, start: Int, stop: Int)
    /// Replaces the pattern by `content` in every token.
    case replace(SplitPattern, content: [UInt8])
    /// Metaspace: the replacement character becomes a space, except at the start of the first
    /// token unless the prepend scheme is `never`.
    case metaspace(replacement: UInt32, prepend: PrependScheme)
    /// Each decoder in turn.
    case sequence([Decoder])

    /// The tokens after this step.
    func chain(_ tokens: [[UInt8]]) -> [[UInt8]] {
        switch self {
        case .byteLevel:
            var bytes: [UInt8] = []
            for t in tokens {
                var mapped: [UInt8] = []
                var ok = true
                for u in String(decoding: t, as: UTF8.self).unicodeScalars {
                    guard let b = byteAlphabetInverse[u.value] else { ok = false; break }
                    mapped.append(b)
                }
                bytes += ok ? mapped : t
            }
            return [Array(String(decoding: bytes, as: UTF8.self).utf8)]
        case .byteFallback:
            var out: [[UInt8]] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if UTF8Bytes.firstInvalidOffset(pending.withUnsafeBufferPointer { $0 }) == nil {
                    out.append(pending)
                } else {
                    for _ in pending { out.append([0xEF, 0xBF, 0xBD]) }
                }
                pending.removeAll()
            }
            for t in tokens {
                if let b = Self.fallbackByte(t) {
                    pending.append(b)
                } else {
                    flush()
                    out.append(t)
                }
            }
            flush()
            return out
        case .fuse:
            return [tokens.flatMap { $0 }]
        case let .strip(content, start, stop):
            return tokens.map { t in
                let chars = Array(String(decoding: t, as: UTF8.self).unicodeScalars)
                var startCut = 0
                for (i, c) in chars.enumerated().prefix(start) {
                    if c.value == content { startCut = i + 1 } else { break }
                }
                var stopCut = chars.count
                if stop > 0 {
                    for i in 0..<min(stop, chars.count) {
                        let index = chars.count - i - 1
                        if chars[index].value == content { stopCut = index } else { break }
                    }
                }
                guard startCut < stopCut else { return [] }
                var v = String.UnicodeScalarView()
                v.append(contentsOf: chars[startCut..<stopCut])
                return Array(String(v).utf8)
            }
        case let .replace(pattern, content):
            return tokens.map { Normalizer.replace(pattern, content: content).apply($0) }
        case let .metaspace(replacement, prepend):
            return tokens.enumerated().map { i, t in
                var v = String.UnicodeScalarView()
                for c in String(decoding: t, as: UTF8.self).unicodeScalars {
                    if c.value == replacement {
                        if i == 0 && prepend != .never { continue }
                        v.append(" ")
                    } else {
                        v.append(c)
                    }
                }
                return Array(String(v).utf8)
            }
        case let .sequence(list):
            var t = tokens
            for d in list { t = d.chain(t) }
            return t
        }
    }

    /// The byte of a `<0xNN>` token (exactly six bytes, two hex digits of either case).
    static func fallbackByte(_ t: [UInt8]) -> UInt8? {
        guard t.count == 6, t[0] == 0x3C, t[1] == 0x30, t[2] == 0x78, t[5] == 0x3E else { return nil }
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x41...0x46: return c - 0x41 + 10
            case 0x61...0x66: return c - 0x61 + 10
            default: return nil
            }
        }
        guard let h = hex(t[3]), let l = hex(t[4]) else { return nil }
        return h << 4 | l
    }
}
