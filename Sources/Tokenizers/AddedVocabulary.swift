/// An added token of `tokenizer.json` (`added_tokens`), matched in the text before the model runs.
public struct AddedToken: Sendable, Equatable {
    /// The text of the token.
    public let content: String
    /// Its id.
    public let id: Int32
    /// Matches only as a whole word (not next to a word character).
    public let singleWord: Bool
    /// Takes the white space before it.
    public let lstrip: Bool
    /// Takes the white space after it.
    public let rstrip: Bool
    /// Matched in the normalized text (against its normalized form) rather than the raw text.
    public let normalized: Bool
    /// A special token (`<|endoftext|>`...): skipped by `decode(skipSpecialTokens: true)`.
    public let special: Bool
}

/// The added tokens, split in two sets as `tokenizers` does: those matched in the raw text, and
/// those (normalized) matched in each normalized stretch.
struct AddedVocabulary: Sendable {
    /// Every added token, by id order.
    let tokens: [AddedToken]
    /// Matches tokens with `normalized: false` in the raw text.
    let raw: TokenTrie
    /// Matches tokens with `normalized: true`, by their normalized form, in normalized text.
    let normalized: TokenTrie
    /// Decoding text of each added token's id: the normalized form of normalized tokens.
    let decodeText: [Int32: [UInt8]]
    /// Content -> id.
    let idByContent: [[UInt8]: Int32]
    /// Id -> token.
    let byId: [Int32: AddedToken]
}

/// A byte trie of added tokens, finding leftmost-longest non-overlapping matches (the
/// `daachorse` `LeftmostLongest` automaton of `tokenizers`), then applying each token's
/// `single_word`, `lstrip` and `rstrip` as `AddedVocabulary::find_matches` does.
struct TokenTrie: Sendable {
    private struct Node: Sendable {
        var children: [(UInt8, Int32)] = []
        var token: Int32 = -1  // index into `flags`
    }
    private var nodes: [Node] = [Node()]
    private var firstByte = [Bool](repeating: false, count: 256)
    private var flags: [(id: Int32, singleWord: Bool, lstrip: Bool, rstrip: Bool)] = []

    var isEmpty: Bool { flags.isEmpty }

    /// Builds the trie; two tokens with the same pattern are an error (as in `tokenizers`).
    init(_ patterns: [([UInt8], AddedToken)], file: String) throws(TokenizerError) {
        for (bytes, t) in patterns {
            guard !bytes.isEmpty else {
                throw .unsupported(file: file, component: "added token", reason: "'\(t.content)' is empty once normalized")
            }
            var node = 0
            for b in bytes {
                if let c = nodes[node].children.first(where: { $0.0 == b }) {
                    node = Int(c.1)
                } else {
                    nodes.append(Node())
                    nodes[node].children.append((b, Int32(nodes.count - 1)))
                    node = nodes.count - 1
                }
            }
            firstByte[Int(bytes[0])] = true
            guard nodes[node].token < 0 else {
                throw .malformed(
                    file: file,
                    reason: "added tokens \(flags[Int(nodes[node].token)].id) and \(t.id) match the same text '\(String(decoding: bytes, as: UTF8.self))'")
            }
            nodes[node].token = Int32(flags.count)
            flags.append((t.id, t.singleWord, t.lstrip, t.rstrip))
        }
    }

    /// The end and token index of the longest token starting at `i`, if any.
    @inline(__always)
    private func longest(_ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int) -> (Int, Int)? {
        var node = 0, j = i
        var best: (Int, Int)? = nil
        while j < end {
            let b = p[j]
            guard let c = nodes[node].children.first(where: { $0.0 == b }) else { break }
            node = Int(c.1)
            j += 1
            if nodes[node].token >= 0 { best = (j, Int(nodes[node].token)) }
        }
        return best
    }

    /// Cuts `start..<end` of `p` into stretches and tokens: calls `emit(s, e, id)` with `id` nil for
    /// a stretch of text and the token id for a match, covering the range as `tokenizers` does.
    func split(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ emit: (Int, Int, Int32?) -> Void) {
        guard !flags.isEmpty, end > start else { emit(start, end, nil); return }
        var startOffset = start
        var i = start
        while i < end {
            if !firstByte[Int(p[i])] { i += 1; continue }
            guard let (m, t) = longest(p, i, end) else { i += 1; continue }
            var s = i, e = m
            i = m
            let f = flags[t]
            if f.singleWord {
                let startSpace = s == start || !Self.isWordChar(before: s, p, start)
                let stopSpace = e == end || !Self.isWordChar(at: e, p, end)
                if !startSpace || !stopSpace { continue }
            }
            if f.lstrip { s = max(Self.spaceRunStart(before: s, p, start), startOffset) }
            if f.rstrip { e = Self.spaceRunEnd(from: e, p, end) }
            if startOffset < s { emit(startOffset, s, nil) }
            emit(s, e, f.id)
            startOffset = e
        }
        if startOffset != end { emit(startOffset, end, nil) }
    }

    /// The start of the scalar that ends just before `i` (valid UTF-8, `i > lower`).
    @inline(__always)
    private static func previousStart(_ p: UnsafePointer<UInt8>, _ i: Int, _ lower: Int) -> Int {
        var j = i - 1
        while j > lower && p[j] & 0xC0 == 0x80 { j -= 1 }
        return j
    }

    private static func isWordChar(before i: Int, _ p: UnsafePointer<UInt8>, _ lower: Int) -> Bool {
        let j = previousStart(p, i, lower)
        return CharClass.of(UTF8Bytes.decode(p, j, i).0) & CharClass.word != 0
    }

    private static func isWordChar(at i: Int, _ p: UnsafePointer<UInt8>, _ end: Int) -> Bool {
        CharClass.of(UTF8Bytes.decode(p, i, end).0) & CharClass.word != 0
    }

    /// The start of the run of white space ending at `i` (Rust regex `\s*$` on `lower..<i`).
    private static func spaceRunStart(before i: Int, _ p: UnsafePointer<UInt8>, _ lower: Int) -> Int {
        var s = i
        while s > lower {
            let j = previousStart(p, s, lower)
            if CharClass.of(UTF8Bytes.decode(p, j, s).0) & CharClass.space == 0 { break }
            s = j
        }
        return s
    }

    /// The end of the run of white space starting at `i` (Rust regex `^\s*` on `i..<end`).
    private static func spaceRunEnd(from i: Int, _ p: UnsafePointer<UInt8>, _ end: Int) -> Int {
        var e = i
        while e < end {
            let (v, l) = UTF8Bytes.decode(p, e, end)
            if CharClass.of(v) & CharClass.space == 0 { break }
            e += l
        }
        return e
    }
}
