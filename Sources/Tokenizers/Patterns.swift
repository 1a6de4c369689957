import Checkpoints
import Foundation

/// A pattern of a `Split` pre-tokenizer or a `Replace` normalizer/decoder: a literal string, one
/// of the regexes with a hand-written matcher, or any other regex run through ICU
/// (`NSRegularExpression`) after translating the escapes whose meaning differs from Oniguruma's.
enum SplitPattern: @unchecked Sendable {
    /// A literal string (never empty).
    case literal([UInt8])
    /// A regex with a hand-written matcher.
    case known(KnownPattern)
    /// Any other regex, translated for ICU.
    case regex(NSRegularExpression, source: String)

    /// Builds the pattern from its JSON form: `{"String": "..."}` or `{"Regex": "..."}`.
    /// `forceGeneric` skips the hand-written matchers (used to test the ICU path against them).
    static func from(_ json: JSONValue, component: String, file: String, forceGeneric: Bool = false) throws(TokenizerError) -> SplitPattern {
        if let s = json["String"]?.stringValue {
            guard !s.isEmpty else { throw .unsupported(file: file, component: component, reason: "an empty String pattern") }
            return .literal(Array(s.utf8))
        }
        guard let r = json["Regex"]?.stringValue else {
            throw .malformed(file: file, reason: "\(component) pattern is neither {\"String\": ...} nor {\"Regex\": ...}")
        }
        if !forceGeneric, let k = KnownPattern.recognise(r) { return .known(k) }
        return try .regex(compileICU(r, component: component, file: file), source: r)
    }

    /// Calls `emit(start, end)` for every non-overlapping match in bytes `start..<end` of `p`, in
    /// order (a regex may yield empty matches, as Oniguruma's `find_iter` does).
    func matches(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ emit: (Int, Int) -> Void) {
        switch self {
        case let .known(k):
            k.scan(p, start, end, emit)
        case let .literal(lit):
            let n = lit.count
            guard n > 0, end - start >= n else { return }
            lit.withUnsafeBufferPointer { l in
                let first = l[0]
                var i = start
                while i + n <= end {
                    if p[i] == first && memcmp(p + i, l.baseAddress!, n) == 0 {
                        emit(i, i + n); i += n
                    } else {
                        i += 1
                    }
                }
            }
        case let .regex(re, _):
            guard end > start else { return }
            let text = String(decoding: UnsafeBufferPointer(start: p + start, count: end - start), as: UTF8.self)
            // UTF-16 offset -> byte offset.
            var map = [Int](repeating: 0, count: text.utf16.count + 1)
            var u16 = 0, u8 = 0
            for s in text.unicodeScalars {
                let w = s.utf16.count, b = s.utf8.count
                for k in 0..<w { map[u16 + k] = u8 }
                u16 += w; u8 += b
            }
            map[u16] = u8
            let ns = NSRange(location: 0, length: u16)
            for m in re.matches(in: text, options: [], range: ns) {
                let r = m.range
                guard r.location != NSNotFound, r.location + r.length <= u16 else { continue }
                emit(start + map[r.location], start + map[r.location + r.length])
            }
        }
    }

    /// Translates an Oniguruma pattern (as `tokenizers` compiles it) to ICU and compiles it.
    static func compileICU(_ pattern: String, component: String, file: String) throws(TokenizerError) -> NSRegularExpression {
        let space = #"\t\n\x{0B}\f\r\x{85}\p{Z}"#
        let word = #"\p{L}\p{M}\p{N}\p{Pc}"#
        var out = ""
        var depth = 0
        var it = Array(pattern.unicodeScalars)[...]
        func unsupported(_ what: String) -> TokenizerError {
            .unsupported(
                file: file, component: component,
                reason: "the regex \(pattern.debugDescription) uses \(what), whose meaning differs between Oniguruma and this reader")
        }
        while let c = it.popFirst() {
            switch c {
            case "\\":
                guard let e = it.popFirst() else { throw unsupported("a trailing backslash") }
                switch e {
                case "s": out += depth > 0 ? space : "[\(space)]"
                case "S": out += "[^\(space)]"
                case "w": out += depth > 0 ? word : "[\(word)]"
                case "W": out += "[^\(word)]"
                case "d": out += #"\p{Nd}"#
                case "D": out += #"\P{Nd}"#
                case "h", "H", "R", "X", "K", "N", "O", "y", "Y", "g", "k", "A", "z", "Z", "G", "b", "B":
                    throw unsupported("\\\(e)")
                default: out += "\\" + String(e)
                }
            case "[":
                depth += 1
                out += "["
                if it.first == "^" { out += "^"; it = it.dropFirst() }
                if it.first == "]" { out += "\\]"; it = it.dropFirst() }
            case "]":
                if depth > 0 { depth -= 1 }
                out += "]"
            case "^", "$":
                if depth > 0 { out += "\\" + String(c) } else { throw unsupported("the anchor \(c)") }
            default:
                out.unicodeScalars.append(c)
            }
        }
        do {
            return try NSRegularExpression(pattern: out, options: [])
        } catch {
            throw .unsupported(file: file, component: component, reason: "the regex \(pattern.debugDescription) does not compile here")
        }
    }
}
