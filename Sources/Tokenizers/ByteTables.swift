import Foundation

/// Hash tables keyed by byte strings and id pairs, written for the encoder's hot loop: open
/// addressing over flat arrays, no per-entry allocation, no Swift `String` (whose equality is
/// canonical equivalence, which would conflate distinct tokens such as NFC and NFD spellings).

/// A hash of `count` bytes at `p` (64-bit multiply-mix over 8-byte words).
@inline(__always)
func hashBytes(_ p: UnsafeRawPointer, _ count: Int) -> UInt64 {
    var h: UInt64 = 0x9E37_79B9_7F4A_7C15 &* UInt64(truncatingIfNeeded: count &+ 1)
    var i = 0
    while i + 8 <= count {
        let w = p.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        h = (h ^ w) &* 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 32
        i += 8
    }
    if i < count {
        var w: UInt64 = 0
        var s: UInt64 = 0
        while i < count {
            w |= UInt64(p.load(fromByteOffset: i, as: UInt8.self)) << s
            s += 8
            i += 1
        }
        h = (h ^ w) &* 0xC4CE_B9FE_1A85_EC53
    }
    h ^= h >> 29
    h = h &* 0xFF51_AFD7_ED55_8CCD
    h ^= h >> 32
    return h
}

/// An immutable map from byte strings to ids (a vocabulary).
struct ByteStringMap: Sendable {
    private var arena: [UInt8] = []
    private var offsets: [Int] = []
    private var lengths: [Int32] = []
    private var values: [Int32] = []
    private var slots: [Int32] = []
    private var mask = 0

    /// The number of entries.
    var count: Int { values.count }

    /// Builds the map; on a repeated key the first entry is kept and `duplicate` receives the key.
    init(_ entries: [([UInt8], Int32)], duplicate: (([UInt8]) -> Void)? = nil) {
        var cap = 16
        while cap < entries.count * 2 { cap <<= 1 }
        mask = cap - 1
        slots = [Int32](repeating: -1, count: cap)
        offsets.reserveCapacity(entries.count)
        for (key, value) in entries {
            if get(key) != nil { duplicate?(key); continue }
            let index = Int32(values.count)
            offsets.append(arena.count)
            lengths.append(Int32(key.count))
            values.append(value)
            arena.append(contentsOf: key)
            var s = Int(truncatingIfNeeded: key.withUnsafeBytes { hashBytes($0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, $0.count) }) & mask
            while slots[s] >= 0 { s = (s + 1) & mask }
            slots[s] = index
        }
    }

    /// The id of `key`, or nil.
    func get(_ key: [UInt8]) -> Int32? {
        key.withUnsafeBufferPointer { get($0.baseAddress, $0.count) }
    }

    /// The id of the `count` bytes at `p`, or nil.
    @inline(__always)
    func get(_ p: UnsafePointer<UInt8>?, _ count: Int) -> Int32? {
        guard !slots.isEmpty else { return nil }
        let raw = UnsafeRawPointer(p) ?? UnsafeRawPointer(bitPattern: 1)!
        var s = Int(truncatingIfNeeded: hashBytes(raw, count)) & mask
        return slots.withUnsafeBufferPointer { sl in
            arena.withUnsafeBufferPointer { ar in
                while true {
                    let e = Int(sl[s])
                    if e < 0 { return nil }
                    if Int(lengths[e]) == count {
                        let o = offsets[e]
                        if count == 0 || memcmp(ar.baseAddress! + o, raw, count) == 0 { return values[e] }
                    }
                    s = (s + 1) & mask
                }
            }
        }
    }
}

/// A growable cache from byte strings (pre-tokens) to the ids the model gave them.
struct PieceCache {
    private var arena: [UInt8] = []
    private var ids: [Int32] = []
    /// Per entry: key offset, key length, ids offset, ids count.
    private var entries: [(Int, Int32, Int, Int32)] = []
    private var slots: [Int32]
    private var mask: Int
    /// Entries before the cache is emptied and refilled.
    let capacity: Int

    init(capacity: Int = 1 << 16) {
        self.capacity = capacity
        var cap = 16
        while cap < capacity * 2 { cap <<= 1 }
        mask = cap - 1
        slots = [Int32](repeating: -1, count: cap)
    }

    /// Calls `body` with the cached ids of the `count` bytes at `p`; returns false on a miss.
    @inline(__always)
    func lookup(_ p: UnsafePointer<UInt8>, _ count: Int, hash: UInt64, _ body: (UnsafeBufferPointer<Int32>) -> Void) -> Bool {
        var s = Int(truncatingIfNeeded: hash) & mask
        return slots.withUnsafeBufferPointer { sl in
            while true {
                let e = Int(sl[s])
                if e < 0 { return false }
                let (ko, kl, io, ic) = entries[e]
                if Int(kl) == count {
                    let same = arena.withUnsafeBufferPointer { memcmp($0.baseAddress! + ko, p, count) == 0 }
                    if same {
                        ids.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[io..<(io + Int(ic))])) }
                        return true
                    }
                }
                s = (s + 1) & mask
            }
        }
    }

    /// Stores `value` for the `count` bytes at `p` (emptying the cache first when it is full).
    mutating func insert(_ p: UnsafePointer<UInt8>, _ count: Int, hash: UInt64, _ value: UnsafeBufferPointer<Int32>) {
        if entries.count >= capacity {
            entries.removeAll(keepingCapacity: true)
            arena.removeAll(keepingCapacity: true)
            ids.removeAll(keepingCapacity: true)
            for i in slots.indices { slots[i] = -1 }
        }
        let e = Int32(entries.count)
        entries.append((arena.count, Int32(count), ids.count, Int32(value.count)))
        arena.append(contentsOf: UnsafeBufferPointer(start: p, count: count))
        ids.append(contentsOf: value)
        var s = Int(truncatingIfNeeded: hash) & mask
        while slots[s] >= 0 { s = (s + 1) & mask }
        slots[s] = e
    }
}

/// The merge table of a BPE model: the pair of ids (left, right) -> (rank, merged id).
struct PairTable: Sendable {
    private var keys: [UInt64]
    private var values: [UInt64]
    private var mask: Int
    private var count = 0
    private static let empty = UInt64.max

    init(capacity: Int) {
        var cap = 16
        while cap < capacity * 2 { cap <<= 1 }
        mask = cap - 1
        keys = [UInt64](repeating: PairTable.empty, count: cap)
        values = [UInt64](repeating: 0, count: cap)
    }

    @inline(__always)
    private static func slot(_ key: UInt64, _ mask: Int) -> Int {
        var h = key &* 0x9E37_79B9_7F4A_7C15
        h ^= h >> 29
        return Int(truncatingIfNeeded: h) & mask
    }

    /// Sets the merge of (left, right); a later merge of the same pair replaces an earlier one.
    mutating func set(_ left: Int32, _ right: Int32, rank: Int32, merged: Int32) {
        let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        insert(key, UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(UInt32(bitPattern: merged)))
    }

    private mutating func insert(_ key: UInt64, _ value: UInt64) {
        if (count + 1) * 2 > keys.count { grow() }
        var s = PairTable.slot(key, mask)
        while keys[s] != PairTable.empty && keys[s] != key { s = (s + 1) & mask }
        if keys[s] == PairTable.empty { count += 1 }
        keys[s] = key
        values[s] = value
    }

    private mutating func grow() {
        let oldKeys = keys, oldValues = values
        keys = [UInt64](repeating: PairTable.empty, count: oldKeys.count * 2)
        values = [UInt64](repeating: 0, count: oldKeys.count * 2)
        mask = keys.count - 1
        count = 0
        for (k, v) in zip(oldKeys, oldValues) where k != PairTable.empty { insert(k, v) }
    }

    /// The (rank, merged id) of the pair, packed as rank << 32 | merged, or nil.
    @inline(__always)
    func get(_ left: Int32, _ right: Int32) -> UInt64? {
        let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        return keys.withUnsafeBufferPointer { k in
            var s = PairTable.slot(key, mask)
            while true {
                let x = k[s]
                if x == key { return values[s] }
                if x == PairTable.empty { return nil }
                s = (s + 1) & mask
            }
        }
    }
}
