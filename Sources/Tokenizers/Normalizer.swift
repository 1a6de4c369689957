import Foundation

/// A normalizer of `tokenizer.json`, applied to the UTF-8 bytes of each stretch of text between
/// added tokens (as `tokenizers` does). Only the normalized text matters here: encoding yields ids,
/// not offsets, so no alignment is tracked.
indirect enum Normalizer: Sendable {
    /// Unicode normalization forms (see `UnicodeNormalization`).
    case nfc, nfd, nfkc, nfkd
    /// Full lower-case mapping of every character (Rust's `char::to_lowercase`).
    case lowercase
    /// Removes white space at the start and/or end.
    case strip(left: Bool, right: Bool)
    /// Replaces every match of the pattern by `content`.
    case replace(SplitPattern, content: [UInt8])
    /// Puts `prefix` before a non-empty text.
    case prepend([UInt8])
    /// SentencePiece's NMT normalization: drops control characters, maps some spaces to U+0020.
    case nmt
    /// Each normalizer in turn.
    case sequence([Normalizer])

    /// The normalized text.
    func apply(_ s: [UInt8]) -> [UInt8] {
        switch self {
        case .nfc: return UnicodeNormalization.apply(.nfc, s)
        case .nfd: return UnicodeNormalization.apply(.nfd, s)
        case .nfkc: return UnicodeNormalization.apply(.nfkc, s)
        case .nfkd: return UnicodeNormalization.apply(.nfkd, s)
        case .lowercase:
            if s.allSatisfy({ $0 < 0x80 }) { return s.map { ($0 >= 0x41 && $0 <= 0x5A) ? $0 | 0x20 : $0 } }
            var out = ""
            for u in String(decoding: s, as: UTF8.self).unicodeScalars { out += u.properties.lowercaseMapping }
            return Array(out.utf8)
        case let .strip(left, right):
            var scalars = Array(String(decoding: s, as: UTF8.self).unicodeScalars)[...]
            if left { while let f = scalars.first, f.properties.isWhitespace { scalars = scalars.dropFirst() } }
            if right { while let l = scalars.last, l.properties.isWhitespace { scalars = scalars.dropLast() } }
            var v = String.UnicodeScalarView()
            v.append(contentsOf: scalars)
            return Array(String(v).utf8)
        case let .replace(pattern, content):
            var out: [UInt8] = []
            out.reserveCapacity(s.count)
            var last = 0
            s.withUnsafeBufferPointer { b in
                guard let p = b.baseAddress else { return }
                pattern.matches(p, 0, b.count) { start, end in
                    out.append(contentsOf: b[last..<start])
                    out.append(contentsOf: content)
                    last = end
                }
            }
            out.append(contentsOf: s[last...])
            return out
        case let .prepend(prefix):
            return s.isEmpty ? s : prefix + s
        case .nmt:
            var v = String.UnicodeScalarView()
            for u in String(decoding: s, as: UTF8.self).unicodeScalars {
                switch u.value {
                case 0x01...0x08, 0x0B, 0x0E...0x1F, 0x7F, 0x8F, 0x9F: continue
                case 0x09, 0x0A, 0x0C, 0x0D, 0x1680, 0x200B...0x200F, 0x2028, 0x2029, 0x2581, 0xFEFF, 0xFFFD: v.append(" ")
                default: v.append(u)
                }
            }
            return Array(String(v).utf8)
        case let .sequence(list):
            var t = s
            for n in list { t = n.apply(t) }
            return t
        }
    }
}
