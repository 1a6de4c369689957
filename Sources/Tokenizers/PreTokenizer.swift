/// How a `Split` pre-tokenizer treats the matches of its pattern (`tokenizers`'
/// `SplitDelimiterBehavior`); splitting `the-final--countdown` on `-`:
/// removed `the final countdown`, isolated `the - final - - countdown`,
/// mergedWithPrevious `the- final- - countdown`, mergedWithNext `the -final - -countdown`,
/// contiguous `the - final -- countdown`.
enum SplitBehavior: String, Sendable {
    case removed, isolated
    case mergedWithPrevious = "merged_with_previous"
    case mergedWithNext = "merged_with_next"
    case contiguous
}

/// When Metaspace puts its replacement character before a word.
enum PrependScheme: String, Sendable {
    /// Before every stretch of text that does not start with it.
    case always
    /// Only before the stretch that starts the input.
    case first
    /// Never.
    case never
}

/// One pre-tokenizer of a `tokenizer.json` (a `Sequence` is flattened into its steps).
enum PreTokenizerStep: Sendable {
    /// Splits on a pattern.
    case split(SplitPattern, SplitBehavior, invert: Bool)
    /// Replaces spaces by `replacement`, prepends it per `prepend`, and (if `split`) splits before
    /// each occurrence.
    case metaspace(replacement: [UInt8], prepend: PrependScheme, split: Bool)
    /// GPT-2's byte-level step: an optional leading space, the GPT-2 regex, then every byte stands
    /// for one character of the byte alphabet. Always the last step: the model then reads pieces
    /// as bytes.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
}

/// The pre-tokenizer chain: cuts one stretch of normalized text into the pieces the model encodes.
struct PreTokenizer: Sendable {
    let steps: [PreTokenizerStep]

    /// True when the chain ends with ByteLevel (pieces are raw bytes for the byte alphabet).
    var isByteLevel: Bool {
        if case .byteLevel = steps.last { return true }
        return false
    }

    /// Calls `emit(pointer, start, end)` for each non-empty piece of `text`, in order. `atStart`
    /// says whether `text` begins the input (for Metaspace's `first` scheme).
    func run(_ text: UnsafeBufferPointer<UInt8>, atStart: Bool, _ emit: (UnsafePointer<UInt8>, Int, Int) -> Void) {
        guard let p = text.baseAddress, text.count > 0 else { return }
        run(p, 0, text.count, atStart: atStart, step: 0, emit)
    }

    private func run(
        _ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, atStart: Bool, step k: Int,
        _ emit: (UnsafePointer<UInt8>, Int, Int) -> Void
    ) {
        guard end > start else { return }
        guard k < steps.count else { emit(p, start, end); return }
        switch steps[k] {
        case let .byteLevel(addPrefixSpace, useRegex):
            if addPrefixSpace && p[start] != 0x20 {
                var copy = [UInt8](repeating: 0x20, count: end - start + 1)
                copy.withUnsafeMutableBufferPointer { c in
                    (c.baseAddress! + 1).update(from: p + start, count: end - start)
                }
                copy.withUnsafeBufferPointer { c in
                    byteLevelSplit(c.baseAddress!, 0, c.count, useRegex: useRegex, emit)
                }
            } else {
                byteLevelSplit(p, start, end, useRegex: useRegex, emit)
            }

        case let .split(pattern, behavior, invert):
            if behavior == .isolated {
                // Matches and the stretches between them, each a piece: no need to collect.
                var prev = start
                pattern.matches(p, start, end) { s, e in
                    if s > prev { run(p, prev, s, atStart: atStart && prev == start, step: k + 1, emit) }
                    if e > s { run(p, s, e, atStart: atStart && s == start, step: k + 1, emit) }
                    prev = e
                }
                if end > prev { run(p, prev, end, atStart: atStart && prev == start, step: k + 1, emit) }
                return
            }
            for (s, e) in Self.pieces(p, start, end, pattern, behavior, invert: invert) where e > s {
                run(p, s, e, atStart: atStart && s == start, step: k + 1, emit)
            }

        case let .metaspace(replacement, prepend, split):
            var t: [UInt8] = []
            t.reserveCapacity(end - start + replacement.count)
            for i in start..<end {
                if p[i] == 0x20 { t.append(contentsOf: replacement) } else { t.append(p[i]) }
            }
            let startsWithIt = t.starts(with: replacement)
            if !startsWithIt && (prepend == .always || (prepend == .first && atStart)) {
                t.insert(contentsOf: replacement, at: 0)
            }
            t.withUnsafeBufferPointer { b in
                let q = b.baseAddress!, n = b.count
                guard split else { run(q, 0, n, atStart: atStart, step: k + 1, emit); return }
                // Split before each replacement character; a run of them stays one per piece,
                // the last joining the text after it (MergedWithNext).
                let r = replacement.count
                var marks: [Int] = []
                var i = 0
                while i + r <= n {
                    if memcmpBytes(q + i, replacement, r) { marks.append(i); i += r } else { i += 1 }
                }
                var pieces: [(Int, Int)] = []
                var prev = 0
                for m in marks {
                    if m > prev { pieces.append((prev, m)) }
                    prev = m
                }
                if n > prev { pieces.append((prev, n)) }
                for (s, e) in pieces { run(q, s, e, atStart: atStart && s == 0, step: k + 1, emit) }
            }
        }
    }

    /// The GPT-2 regex's pieces (or the whole stretch when `useRegex` is false).
    @inline(__always)
    private func byteLevelSplit(
        _ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, useRegex: Bool,
        _ emit: (UnsafePointer<UInt8>, Int, Int) -> Void
    ) {
        guard useRegex else { emit(p, start, end); return }
        var prev = start
        KnownPattern.gpt2.scan(p, start, end) { s, e in
            if s > prev { emit(p, prev, s) }
            if e > s { emit(p, s, e) }
            prev = e
        }
        if end > prev { emit(p, prev, end) }
    }

    /// The pieces of `start..<end` for any behaviour, as `NormalizedString::split` computes them.
    static func pieces(
        _ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ pattern: SplitPattern,
        _ behavior: SplitBehavior, invert: Bool
    ) -> [(Int, Int)] {
        // (range, isMatch) covering the whole stretch.
        var marks: [(Int, Int, Bool)] = []
        var prev = start
        pattern.matches(p, start, end) { s, e in
            if s != prev { marks.append((prev, s, false)) }
            marks.append((s, e, true))
            prev = e
        }
        if prev != end { marks.append((prev, end, false)) }
        if invert { marks = marks.map { ($0.0, $0.1, !$0.2) } }
        var out: [(Int, Int)] = []
        switch behavior {
        case .isolated:
            out = marks.map { ($0.0, $0.1) }
        case .removed:
            out = marks.filter { !$0.2 }.map { ($0.0, $0.1) }
        case .contiguous:
            var previous = false
            for (s, e, m) in marks {
                if m == previous, !out.isEmpty { out[out.count - 1].1 = e } else { out.append((s, e)) }
                previous = m
            }
        case .mergedWithPrevious:
            var previous = false
            for (s, e, m) in marks {
                if m && !previous, !out.isEmpty { out[out.count - 1].1 = e } else { out.append((s, e)) }
                previous = m
            }
        case .mergedWithNext:
            var previous = false
            for (s, e, m) in marks.reversed() {
                if m && !previous, !out.isEmpty { out[out.count - 1].0 = s } else { out.append((s, e)) }
                previous = m
            }
            out.reverse()
        }
        return out
    }
}

/// True when the `n` bytes at `p` equal `bytes`.
@inline(__always)
func memcmpBytes(_ p: UnsafePointer<UInt8>, _ bytes: [UInt8], _ n: Int) -> Bool {
    for i in 0..<n where p[i] != bytes[i] { return false }
    return true
}
