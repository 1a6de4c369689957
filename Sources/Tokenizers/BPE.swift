/// The byte alphabet of GPT-2's byte-level BPE: byte b stands for the character `byteAlphabet[b]`
/// (printable bytes stand for themselves, the others for U+0100 and up).
let byteAlphabet: [UInt32] = {
    var table = [UInt32](repeating: 0, count: 256)
    var n: UInt32 = 0
    for b in 0..<256 {
        if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
            table[b] = UInt32(b)
        } else {
            table[b] = 256 + n
            n += 1
        }
    }
    return table
}()

/// The byte that character `v` of the byte alphabet stands for.
let byteAlphabetInverse: [UInt32: UInt8] = {
    var d: [UInt32: UInt8] = [:]
    for b in 0..<256 { d[byteAlphabet[b]] = UInt8(b) }
    return d
}()

/// A byte-pair-encoding model (`"type": "BPE"`), encoding one pre-token at a time as `tokenizers`
/// does: characters to ids (with `byte_fallback` and `unk_token`), then merges by priority, the
/// lowest rank first and, among equal ranks, the leftmost.
struct BPEModel: Sendable {
    /// Pieces are raw bytes standing for the byte alphabet (a ByteLevel pre-tokenizer ends the
    /// chain); otherwise pieces are UTF-8 text whose characters are looked up directly.
    let byteLevel: Bool
    /// Token -> id, keyed by the bytes a piece holds (for byte-level models, the bytes the token's
    /// characters stand for).
    let vocab: ByteStringMap
    /// (left, right) -> (rank, merged).
    let merges: PairTable
    let unkId: Int32?
    let fuseUnk: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    /// Byte-level: the id of each byte's character, or -1.
    let byteIds: [Int32]
    /// Byte-level: the UTF-8 of each byte's character (for `byte_fallback`).
    let byteChars: [[UInt8]]
    /// `<0xNN>` ids, or -1.
    let fallbackIds: [Int32]
    /// Text: the ids of single-character tokens (ASCII in a table, the rest in a dictionary).
    let asciiIds: [Int32]
    let scalarIds: [UInt32: Int32]

    /// Text models: every pair of adjacent characters found inside some vocabulary token. No merge
    /// can join two characters whose pair is absent, so a long piece is cut there into words
    /// that merge independently (and hit the cache): the same ids, far faster for models without
    /// a pre-tokenizer (Llama 2, Mistral), whose pieces are whole texts.
    let adjacentPairs: PairTable?

    /// Appends the ids of one pre-token (`n` bytes at `p`) to `out`.
    @inline(__always)
    func encode(_ p: UnsafePointer<UInt8>, _ n: Int, _ state: inout EncoderState, into out: inout [Int32]) {
        if ignoreMerges, let id = vocab.get(p, n) { out.append(id); return }
        if n >= 256, let adjacent = adjacentPairs {
            encodeLong(p, n, adjacent, &state, into: &out)
        } else {
            encodeWord(p, n, &state, into: &out)
        }
    }

    /// Cuts a long text piece between known characters that no token holds side by side.
    private func encodeLong(
        _ p: UnsafePointer<UInt8>, _ n: Int, _ adjacent: PairTable, _ state: inout EncoderState,
        into out: inout [Int32]
    ) {
        var start = 0, i = 0
        var previous: Int32 = -1
        var previousKnown = false
        while i < n {
            let (v, l) = UTF8Bytes.decode(p, i, n)
            let known = (v < 0x80 ? asciiIds[Int(v)] : (scalarIds[v] ?? -1)) >= 0
            let scalar = Int32(bitPattern: v)
            if known && previousKnown && i > start && adjacent.get(previous, scalar) == nil {
                encodeWord(p + start, i - start, &state, into: &out)
                start = i
            }
            previousKnown = known
            previous = scalar
            i += l
        }
        encodeWord(p + start, n - start, &state, into: &out)
    }

    /// BPE on one word: the cache, else characters and merges.
    @inline(__always)
    private func encodeWord(_ p: UnsafePointer<UInt8>, _ n: Int, _ state: inout EncoderState, into out: inout [Int32]) {
        let cacheable = n < 256
        var h: UInt64 = 0
        if cacheable {
            h = hashBytes(p, n)
            if state.cache.lookup(p, n, hash: h, { out.append(contentsOf: $0) }) { return }
        }
        state.symbols.removeAll(keepingCapacity: true)
        initialSymbols(p, n, into: &state.symbols)
        if state.symbols.count > 1 { mergeAll(&state) }
        out.append(contentsOf: state.symbols)
        if cacheable {
            state.symbols.withUnsafeBufferPointer { state.cache.insert(p, n, hash: h, $0) }
        }
    }

    /// The ids of the characters of the piece, before any merge (`BPE::merge_word`).
    @inline(__always)
    private func initialSymbols(_ p: UnsafePointer<UInt8>, _ n: Int, into sym: inout [Int32]) {
        var pendingUnk = false
        if byteLevel {
            byteIds.withUnsafeBufferPointer { ids in
                for i in 0..<n {
                    let id = ids[Int(p[i])]
                    if id >= 0 {
                        if pendingUnk, let u = unkId { sym.append(u); pendingUnk = false }
                        sym.append(id)
                    } else {
                        unknown(byteChars[Int(p[i])][...], &pendingUnk, &sym)
                    }
                }
            }
        } else {
            var i = 0
            while i < n {
                let (v, l) = UTF8Bytes.decode(p, i, n)
                let id: Int32 = v < 0x80 ? asciiIds[Int(v)] : (scalarIds[v] ?? -1)
                if id >= 0 {
                    if pendingUnk, let u = unkId { sym.append(u); pendingUnk = false }
                    sym.append(id)
                } else {
                    unknown(UnsafeBufferPointer(start: p + i, count: l)[...], &pendingUnk, &sym)
                }
                i += l
            }
        }
        if pendingUnk, let u = unkId { sym.append(u) }
    }

    /// A character missing from the vocabulary: its bytes as `<0xNN>` tokens when all exist
    /// (leaving a pending unknown pending, as `tokenizers` does), else the unknown token (fused
    /// with a preceding one if `fuse_unk`), else nothing.
    @inline(__always)
    private func unknown<C: Collection>(_ bytes: C, _ pendingUnk: inout Bool, _ sym: inout [Int32]) where C.Element == UInt8 {
        if byteFallback && bytes.allSatisfy({ fallbackIds[Int($0)] >= 0 }) {
            for b in bytes { sym.append(fallbackIds[Int(b)]) }
            return
        }
        guard let u = unkId else { return }
        if pendingUnk && !fuseUnk { sym.append(u) }
        pendingUnk = true
    }

    /// Applies merges to `state.symbols` in place: a min-heap of (rank, position) as in
    /// `tokenizers`' `Word::merge_all`, skipping entries made stale by earlier merges.
    private func mergeAll(_ state: inout EncoderState) {
        let n = state.symbols.count
        if n == 2 {
            if let m = merges.get(state.symbols[0], state.symbols[1]) {
                state.symbols.removeLast()
                state.symbols[0] = Int32(truncatingIfNeeded: m & 0xFFFF_FFFF)
            }
            return
        }
        state.prepare(n)
        var heap = MergeHeap(storage: [])
        swap(&heap.storage, &state.heap)
        defer { swap(&heap.storage, &state.heap) }
        state.symbols.withUnsafeMutableBufferPointer { sym in
            state.next.withUnsafeMutableBufferPointer { next in
                state.prev.withUnsafeMutableBufferPointer { prev in
                    for i in 0..<(n - 1) {
                        if let m = merges.get(sym[i], sym[i + 1]) { heap.push(rank: m >> 32, pos: i, merged: m) }
                        next[i] = Int32(i + 1)
                        prev[i] = Int32(i - 1)
                    }
                    next[n - 1] = -1
                    prev[n - 1] = Int32(n - 2)
                    while let top = heap.pop() {
                        let pos = top.pos
                        if sym[pos] < 0 { continue }  // removed
                        let nx = Int(next[pos])
                        if nx < 0 { continue }
                        guard let cur = merges.get(sym[pos], sym[nx]), cur & 0xFFFF_FFFF == top.merged & 0xFFFF_FFFF else { continue }
                        let merged = Int32(truncatingIfNeeded: cur & 0xFFFF_FFFF)
                        sym[pos] = merged
                        sym[nx] = -1
                        let after = Int(next[nx])
                        next[pos] = Int32(after)
                        if after >= 0 { prev[after] = Int32(pos) }
                        let before = Int(prev[pos])
                        if before >= 0, let m = merges.get(sym[before], merged) {
                            heap.push(rank: m >> 32, pos: before, merged: m)
                        }
                        if after >= 0, let m = merges.get(merged, sym[after]) {
                            heap.push(rank: m >> 32, pos: pos, merged: m)
                        }
                    }
                }
            }
        }
        state.symbols.removeAll(where: { $0 < 0 })
    }
}

/// Scratch space and the pre-token cache of one encoding run (not shared between threads).
struct EncoderState {
    var cache = PieceCache()
    var symbols: [Int32] = []
    var next: [Int32] = []
    var prev: [Int32] = []
    var heap: [MergeHeap.Entry] = []

    mutating func prepare(_ n: Int) {
        if next.count < n {
            next = [Int32](repeating: 0, count: n)
            prev = [Int32](repeating: 0, count: n)
        }
        heap.removeAll(keepingCapacity: true)
    }
}

/// A binary min-heap of merge candidates ordered by (rank, position).
struct MergeHeap {
    struct Entry {
        /// rank << 32 | position
        var key: UInt64
        /// rank << 32 | merged id
        var merged: UInt64
        var pos: Int { Int(truncatingIfNeeded: key & 0xFFFF_FFFF) }
    }
    var storage: [Entry]

    @inline(__always)
    mutating func push(rank: UInt64, pos: Int, merged: UInt64) {
        storage.append(Entry(key: rank << 32 | UInt64(pos), merged: merged))
        var i = storage.count - 1
        let e = storage[i]
        while i > 0 {
            let parent = (i - 1) >> 1
            if storage[parent].key <= e.key { break }
            storage[i] = storage[parent]
            i = parent
        }
        storage[i] = e
    }

    @inline(__always)
    mutating func pop() -> Entry? {
        guard let last = storage.popLast() else { return nil }
        if storage.isEmpty { return last }
        let top = storage[0]
        let n = storage.count
        var i = 0
        while true {
            let l = 2 * i + 1
            if l >= n { break }
            var c = l
            if l + 1 < n && storage[l + 1].key < storage[l].key { c = l + 1 }
            if storage[c].key >= last.key { break }
            storage[i] = storage[c]
            i = c
        }
        storage[i] = last
        return top
    }
}
