/// Hand-written matchers for the splitting regexes that checkpoints ship, recognised by their
/// exact pattern text. Each finds the same non-overlapping, leftmost-first matches as Oniguruma
/// (the engine `tokenizers` uses) would, alternative by alternative, including the backtracking
/// of `\s+(?!\S)` and `\s*[\r\n]+`; see `Tests/TokenizersTests` for the comparison with the peer.
enum KnownPattern: Sendable, Equatable {
    /// GPT-2's pattern (also GPT-NeoX, OLMo, OLMoE, RoBERTa; built into the ByteLevel pre-tokenizer):
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    case gpt2
    /// The cl100k-style pattern with case-insensitive contractions, a one-character prefix before
    /// letters and digits in groups of at most `maxDigits`: Qwen2/Qwen3 (`\p{N}`, 1) and
    /// Llama 3 (`\p{N}{1,3}`, 3).
    case wordsAndDigits(maxDigits: Int)

    /// GPT-2's pattern text.
    static let gpt2Text = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    /// Qwen2's pattern text.
    static let qwen2Text = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    /// Llama 3's pattern text.
    static let llama3Text = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The hand-written matcher for `pattern`, if there is one.
    static func recognise(_ pattern: String) -> KnownPattern? {
        let bytes = Array(pattern.utf8)
        if bytes == Array(gpt2Text.utf8) { return .gpt2 }
        if bytes == Array(qwen2Text.utf8) { return .wordsAndDigits(maxDigits: 1) }
        if bytes == Array(llama3Text.utf8) { return .wordsAndDigits(maxDigits: 3) }
        return nil
    }

    /// Calls `emit(start, end)` for every match in bytes `start..<end` of `p` (valid UTF-8), in
    /// order. These patterns match every character, so the matches tile the range.
    @inline(__always)
    func scan(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ emit: (Int, Int) -> Void) {
        switch self {
        case .gpt2: Self.scanGPT2(p, start, end, emit)
        case let .wordsAndDigits(d): Self.scanWordsAndDigits(p, start, end, maxDigits: d, emit)
        }
    }

    // MARK: - Character classes

    private static let L = CharClass.letter, N = CharClass.number, S = CharClass.space

    /// Classes of the ASCII characters.
    private static let ascii: [UInt8] = (0..<128).map { CharClass.compute(Unicode.Scalar(UInt8($0))) }

    @inline(__always)
    private static func cls(_ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int) -> (UInt8, Int) {
        let b = p[i]
        if b < 0x80 { return (ascii.withUnsafeBufferPointer { $0[Int(b)] }, 1) }
        let (v, l) = UTF8Bytes.decode(p, i, end)
        return (CharClass.of(v), l)
    }

    /// The end of the run of characters from `j` whose class has any bit of `any`.
    @inline(__always)
    private static func run(_ p: UnsafePointer<UInt8>, _ j0: Int, _ end: Int, any: UInt8) -> Int {
        var j = j0
        while j < end {
            let (k, l) = cls(p, j, end)
            if k & any == 0 { break }
            j += l
        }
        return j
    }

    /// The end of the run of characters from `j` that are neither letter, number nor space.
    @inline(__always)
    private static func runOther(_ p: UnsafePointer<UInt8>, _ j0: Int, _ end: Int) -> Int {
        var j = j0
        while j < end {
            let (k, l) = cls(p, j, end)
            if k & (L | N | S) != 0 { break }
            j += l
        }
        return j
    }

    // MARK: - GPT-2

    private static func scanGPT2(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ emit: (Int, Int) -> Void) {
        var i = start
        while i < end {
            let b = p[i]
            // 's|'t|'re|'ve|'m|'ll|'d (case-sensitive)
            if b == 0x27 && i + 1 < end {
                let c1 = p[i + 1]
                if c1 == 0x73 || c1 == 0x74 || c1 == 0x6D || c1 == 0x64 { emit(i, i + 2); i += 2; continue }
                if i + 2 < end {
                    let c2 = p[i + 2]
                    if (c1 == 0x72 && c2 == 0x65) || (c1 == 0x76 && c2 == 0x65) || (c1 == 0x6C && c2 == 0x6C) {
                        emit(i, i + 3); i += 3; continue
                    }
                }
            }
            // ' ?' before letters, numbers, or other characters
            if b == 0x20 && i + 1 < end {
                let (k1, l1) = cls(p, i + 1, end)
                var j = -1
                if k1 & L != 0 {
                    j = run(p, i + 1 + l1, end, any: L)
                } else if k1 & N != 0 {
                    j = run(p, i + 1 + l1, end, any: N)
                } else if k1 & S == 0 {
                    j = runOther(p, i + 1 + l1, end)
                }
                if j >= 0 { emit(i, j); i = j; continue }
            }
            let (k0, l0) = cls(p, i, end)
            var j: Int
            if k0 & L != 0 {
                j = run(p, i + l0, end, any: L)
            } else if k0 & N != 0 {
                j = run(p, i + l0, end, any: N)
            } else if k0 & S == 0 {
                j = runOther(p, i + l0, end)
            } else {
                // \s+(?!\S) gives back the last space before a non-space; \s+ takes a lone one.
                var last = i, n = 1
                j = i + l0
                while j < end {
                    let (k, l) = cls(p, j, end)
                    if k & S == 0 { break }
                    last = j; j += l; n += 1
                }
                if j < end && n >= 2 { j = last }
            }
            emit(i, j)
            i = j
        }
    }

    // MARK: - Qwen2 / Llama 3

    @inline(__always)
    private static func lower(_ b: UInt8) -> UInt8 { (b >= 0x41 && b <= 0x5A) ? b | 0x20 : b }

    private static func scanWordsAndDigits(
        _ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, maxDigits: Int,
        _ emit: (Int, Int) -> Void
    ) {
        var i = start
        while i < end {
            let b = p[i]
            // (?i:'s|'t|'re|'ve|'m|'ll|'d); under case folding 's' also matches U+017F LONG S.
            if b == 0x27 && i + 1 < end {
                let c1 = lower(p[i + 1])
                if c1 == 0x73 || c1 == 0x74 || c1 == 0x6D || c1 == 0x64 { emit(i, i + 2); i += 2; continue }
                if i + 2 < end {
                    if p[i + 1] == 0xC5 && p[i + 2] == 0xBF { emit(i, i + 3); i += 3; continue }
                    let c2 = lower(p[i + 2])
                    if (c1 == 0x72 && c2 == 0x65) || (c1 == 0x76 && c2 == 0x65) || (c1 == 0x6C && c2 == 0x6C) {
                        emit(i, i + 3); i += 3; continue
                    }
                }
            }
            let (k0, l0) = cls(p, i, end)
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if k0 & L != 0 {
                let j = run(p, i + l0, end, any: L)
                emit(i, j); i = j; continue
            }
            if k0 & N == 0 && b != 0x0D && b != 0x0A && i + l0 < end {
                let (k1, l1) = cls(p, i + l0, end)
                if k1 & L != 0 {
                    let j = run(p, i + l0 + l1, end, any: L)
                    emit(i, j); i = j; continue
                }
            }
            // \p{N} or \p{N}{1,3}
            if k0 & N != 0 {
                var j = i + l0, n = 1
                while n < maxDigits && j < end {
                    let (k, l) = cls(p, j, end)
                    if k & N == 0 { break }
                    j += l; n += 1
                }
                emit(i, j); i = j; continue
            }
            //  ?[^\s\p{L}\p{N}]+[\r\n]*
            var j = -1
            if b == 0x20 && i + 1 < end {
                let (k1, l1) = cls(p, i + 1, end)
                if k1 & (L | N | S) == 0 { j = runOther(p, i + 1 + l1, end) }
            }
            if j < 0 && k0 & S == 0 { j = runOther(p, i + l0, end) }
            if j >= 0 {
                while j < end && (p[j] == 0x0D || p[j] == 0x0A) { j += 1 }
                emit(i, j); i = j; continue
            }
            // A run of spaces: \s*[\r\n]+ ends after its last line break; else \s+(?!\S), else \s+.
            var last = i, n = 1, lastBreak = (b == 0x0D || b == 0x0A) ? i : -1
            j = i + l0
            while j < end {
                let (k, l) = cls(p, j, end)
                if k & S == 0 { break }
                if p[j] == 0x0D || p[j] == 0x0A { lastBreak = j }
                last = j; j += l; n += 1
            }
            if lastBreak >= 0 { j = lastBreak + 1 } else if j < end && n >= 2 { j = last }
            emit(i, j)
            i = j
        }
    }
}
