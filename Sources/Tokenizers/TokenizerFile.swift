import Checkpoints
import Foundation

/// Reading `tokenizer.json` into the components of a `Tokenizer`, strictly: every component and
/// option is either implemented exactly or refused with an error naming it.
struct TokenizerFile {
    let file: String

    /// The largest `tokenizer.json` accepted (real ones are under 40 MB).
    static let maxFileBytes = 512 << 20
    /// The largest id accepted (ids index dense tables).
    static let maxId = (1 << 24) - 1

    // MARK: - JSON helpers

    func malformed(_ reason: String) -> TokenizerError { .malformed(file: file, reason: reason) }

    func object(_ v: JSONValue?, _ what: String) throws(TokenizerError) -> JSONValue {
        guard let v, v.objectPairs != nil else { throw malformed("\(what) is not a JSON object") }
        return v
    }

    func type(_ v: JSONValue, _ what: String) throws(TokenizerError) -> String {
        guard let t = v["type"]?.stringValue else { throw malformed("\(what) has no \"type\"") }
        return t
    }

    func bool(_ v: JSONValue, _ key: String, default d: Bool?, _ what: String) throws(TokenizerError) -> Bool {
        switch v[key] {
        case .none, .some(.null):
            guard let d else { throw malformed("\(what) has no \"\(key)\"") }
            return d
        case let .some(.bool(b)): return b
        default: throw malformed("\(what) \"\(key)\" is not true or false")
        }
    }

    func string(_ v: JSONValue, _ key: String, _ what: String) throws(TokenizerError) -> String {
        guard let s = v[key]?.stringValue else { throw malformed("\(what) has no string \"\(key)\"") }
        return s
    }

    func optionalString(_ v: JSONValue, _ key: String, _ what: String) throws(TokenizerError) -> String? {
        switch v[key] {
        case .none, .some(.null): return nil
        case let .some(.string(s)): return s
        default: throw malformed("\(what) \"\(key)\" is not a string or null")
        }
    }

    func int(_ v: JSONValue, _ key: String, _ what: String) throws(TokenizerError) -> Int {
        guard case let .some(.int(i)) = v[key], i >= 0, i <= Int(Int32.max) else {
            throw malformed("\(what) \"\(key)\" is not a non-negative integer")
        }
        return i
    }

    /// A single character (`char` in the Rust struct), as its scalar.
    func character(_ v: JSONValue, _ key: String, _ what: String) throws(TokenizerError) -> Unicode.Scalar {
        let s = try string(v, key, what)
        let scalars = Array(s.unicodeScalars)
        guard scalars.count == 1 else { throw malformed("\(what) \"\(key)\" is not one character") }
        return scalars[0]
    }

    // MARK: - Components

    func normalizer(_ v: JSONValue?) throws(TokenizerError) -> Normalizer? {
        guard let v, v != .null else { return nil }
        let o = try object(v, "normalizer")
        let t = try type(o, "normalizer")
        switch t {
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "Nmt": return .nmt
        case "Strip":
            return .strip(
                left: try bool(o, "strip_left", default: nil, "Strip normalizer"),
                right: try bool(o, "strip_right", default: nil, "Strip normalizer"))
        case "Replace":
            guard let pattern = o["pattern"] else { throw malformed("Replace normalizer has no \"pattern\"") }
            return .replace(
                try SplitPattern.from(pattern, component: "Replace normalizer", file: file),
                content: Array(try string(o, "content", "Replace normalizer").utf8))
        case "Prepend":
            return .prepend(Array(try string(o, "prepend", "Prepend normalizer").utf8))
        case "Sequence":
            guard let list = o["normalizers"]?.arrayValue else { throw malformed("Sequence normalizer has no \"normalizers\" list") }
            var out: [Normalizer] = []
            for n in list { if let x = try normalizer(n) { out.append(x) } }
            return .sequence(out)
        default:
            throw .unsupported(
                file: file, component: "normalizer", reason: "'\(t)' (supported: NFC, NFD, NFKC, NFKD, Lowercase, Nmt, Strip, Replace, Prepend, Sequence)")
        }
    }

    func preTokenizer(_ v: JSONValue?) throws(TokenizerError) -> PreTokenizer {
        var steps: [PreTokenizerStep] = []
        try collectSteps(v, into: &steps)
        for (i, s) in steps.enumerated() {
            if case .byteLevel = s, i != steps.count - 1 {
                throw .unsupported(file: file, component: "pre-tokenizer", reason: "ByteLevel followed by other pre-tokenizers")
            }
        }
        return PreTokenizer(steps: steps)
    }

    private func collectSteps(_ v: JSONValue?, into steps: inout [PreTokenizerStep]) throws(TokenizerError) {
        guard let v, v != .null else { return }
        let o = try object(v, "pre_tokenizer")
        let t = try type(o, "pre_tokenizer")
        switch t {
        case "ByteLevel":
            steps.append(
                .byteLevel(
                    addPrefixSpace: try bool(o, "add_prefix_space", default: true, "ByteLevel pre-tokenizer"),
                    useRegex: try bool(o, "use_regex", default: true, "ByteLevel pre-tokenizer")))
        case "Split":
            guard let pattern = o["pattern"] else { throw malformed("Split pre-tokenizer has no \"pattern\"") }
            let b = try string(o, "behavior", "Split pre-tokenizer")
            guard let behavior = Self.behavior(b) else { throw malformed("Split pre-tokenizer behavior '\(b)' is unknown") }
            steps.append(
                .split(
                    try SplitPattern.from(pattern, component: "Split pre-tokenizer", file: file), behavior,
                    invert: try bool(o, "invert", default: nil, "Split pre-tokenizer")))
        case "Metaspace":
            let (replacement, scheme) = try metaspace(o, "Metaspace pre-tokenizer")
            steps.append(
                .metaspace(
                    replacement: UTF8Bytes.encode(replacement.value), prepend: scheme,
                    split: try bool(o, "split", default: true, "Metaspace pre-tokenizer")))
        case "Sequence":
            guard let list = o["pretokenizers"]?.arrayValue else { throw malformed("Sequence pre-tokenizer has no \"pretokenizers\" list") }
            for p in list { try collectSteps(p, into: &steps) }
        default:
            throw .unsupported(file: file, component: "pre-tokenizer", reason: "'\(t)' (supported: ByteLevel, Split, Metaspace, Sequence)")
        }
    }

    static func behavior(_ s: String) -> SplitBehavior? {
        switch s {
        case "Removed": return .removed
        case "Isolated": return .isolated
        case "MergedWithPrevious": return .mergedWithPrevious
        case "MergedWithNext": return .mergedWithNext
        case "Contiguous": return .contiguous
        default: return nil
        }
    }

    /// Metaspace's replacement and prepend scheme, with the legacy `add_prefix_space` reconciled.
    func metaspace(_ o: JSONValue, _ what: String) throws(TokenizerError) -> (Unicode.Scalar, PrependScheme) {
        let replacement = try character(o, "replacement", what)
        var scheme = PrependScheme.always
        if let s = try optionalString(o, "prepend_scheme", what) {
            guard let p = PrependScheme(rawValue: s) else { throw malformed("\(what) prepend_scheme '\(s)' is unknown") }
            scheme = p
        }
        if case .some(.bool(false)) = o["add_prefix_space"] {
            guard scheme == .never else { throw malformed("\(what) add_prefix_space does not match declared prepend_scheme") }
        }
        return (replacement, scheme)
    }

    func decoder(_ v: JSONValue?) throws(TokenizerError) -> Decoder? {
        guard let v, v != .null else { return nil }
        let o = try object(v, "decoder")
        let t = try type(o, "decoder")
        switch t {
        case "ByteLevel": return .byteLevel
        case "ByteFallback": return .byteFallback
        case "Fuse": return .fuse
        case "Strip":
            return .strip(
                content: try character(o, "content", "Strip decoder").value,
                start: try int(o, "start", "Strip decoder"), stop: try int(o, "stop", "Strip decoder"))
        case "Replace":
            guard let pattern = o["pattern"] else { throw malformed("Replace decoder has no \"pattern\"") }
            return .replace(
                try SplitPattern.from(pattern, component: "Replace decoder", file: file),
                content: Array(try string(o, "content", "Replace decoder").utf8))
        case "Metaspace":
            let (replacement, scheme) = try metaspace(o, "Metaspace decoder")
            return .metaspace(replacement: replacement.value, prepend: scheme)
        case "Sequence":
            guard let list = o["decoders"]?.arrayValue else { throw malformed("Sequence decoder has no \"decoders\" list") }
            var out: [Decoder] = []
            for d in list { if let x = try decoder(d) { out.append(x) } }
            return .sequence(out)
        default:
            throw .unsupported(
                file: file, component: "decoder", reason: "'\(t)' (supported: ByteLevel, ByteFallback, Fuse, Strip, Replace, Metaspace, Sequence)")
        }
    }

    /// The model's vocabulary in file order, checked: ids in range, no token or id twice.
    func vocabulary(_ model: JSONValue) throws(TokenizerError) -> [([UInt8], Int32)] {
        guard let pairs = model["vocab"]?.objectPairs else { throw malformed("model has no \"vocab\" object") }
        guard pairs.count <= Self.maxId + 1 else { throw malformed("the vocabulary has \(pairs.count) tokens; at most \(Self.maxId + 1) are supported") }
        var out: [([UInt8], Int32)] = []
        out.reserveCapacity(pairs.count)
        var seenIds = [Bool](repeating: false, count: 0)
        for (token, v) in pairs {
            guard case let .int(id) = v, id >= 0 else { throw malformed("vocabulary entry '\(token)' has no non-negative integer id") }
            guard id <= Self.maxId else { throw malformed("vocabulary entry '\(token)' has id \(id); ids above \(Self.maxId) are not supported") }
            if id >= seenIds.count { seenIds += [Bool](repeating: false, count: max(id + 1 - seenIds.count, seenIds.count)) }
            guard !seenIds[id] else { throw malformed("vocabulary id \(id) is given to two tokens (the second is '\(token)')") }
            seenIds[id] = true
            out.append((Array(token.utf8), Int32(id)))
        }
        return out
    }

    /// The merges as pairs of token texts, from either form: `"a b"` strings or `["a", "b"]` arrays.
    func merges(_ model: JSONValue) throws(TokenizerError) -> [(String, String)] {
        guard let list = model["merges"]?.arrayValue else { throw malformed("model has no \"merges\" list") }
        var out: [(String, String)] = []
        out.reserveCapacity(list.count)
        var rank = 0
        var strings = false, arrays = false
        for m in list {
            switch m {
            case let .string(s):
                strings = true
                if s.hasPrefix("#version") { continue }
                let parts = s.utf8.split(separator: 0x20, omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw malformed("merge \(rank + 1) '\(s)' is not two tokens separated by one space") }
                out.append((String(decoding: parts[0], as: UTF8.self), String(decoding: parts[1], as: UTF8.self)))
            case let .array(a):
                arrays = true
                guard a.count == 2, let l = a[0].stringValue, let r = a[1].stringValue else {
                    throw malformed("merge \(rank + 1) is not a pair of token strings")
                }
                out.append((l, r))
            default:
                throw malformed("merge \(rank + 1) is neither \"a b\" nor [\"a\", \"b\"]")
            }
            rank += 1
            guard !(strings && arrays) else { throw malformed("merges mix the \"a b\" and [\"a\", \"b\"] forms") }
        }
        return out
    }
}
