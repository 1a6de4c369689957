import Foundation

/// What a tokenization looks like: sizes, unknowns, the most frequent tokens.
public struct TokenStatistics: Sendable {
    /// Number of tokens.
    public let tokens: Int
    /// Number of bytes of text they encode.
    public let bytes: Int
    /// Tokens that are the model's unknown token.
    public let unknowns: Int
    /// Tokens that are `<0xNN>` byte-fallback tokens.
    public let byteFallbacks: Int
    /// Distinct ids used.
    public let distinct: Int
    /// The most frequent ids with their counts, most frequent first (ties by id).
    public let top: [(id: Int32, count: Int)]

    /// Bytes of text per token (0 for no tokens).
    public var bytesPerToken: Double { tokens == 0 ? 0 : Double(bytes) / Double(tokens) }

    /// Counts `ids` (the encoding of `bytes` bytes of text) with `tokenizer`'s vocabulary.
    public init(ids: [Int32], bytes: Int, tokenizer: Tokenizer, top k: Int = 20) {
        tokens = ids.count
        self.bytes = bytes
        var counts = [Int](repeating: 0, count: max(tokenizer.vocabularySize, 1))
        for id in ids where id >= 0 && Int(id) < counts.count { counts[Int(id)] += 1 }
        unknowns = tokenizer.unknownId.map { counts[Int($0)] } ?? 0
        var fallback = 0
        for b in 0..<256 {
            if let id = tokenizer.id(for: String(format: "<0x%02X>", b)), Int(id) < counts.count { fallback += counts[Int(id)] }
        }
        byteFallbacks = tokenizer.usesByteFallback ? fallback : 0
        distinct = counts.reduce(0) { $0 + ($1 > 0 ? 1 : 0) }
        top = counts.enumerated().filter { $0.element > 0 }
            .sorted { $0.element != $1.element ? $0.element > $1.element : $0.offset < $1.offset }
            .prefix(k).map { (Int32($0.offset), $0.element) }
    }
}

/// NumPy `.npy` output of token ids.
public enum TokenArrayFile {
    /// The bytes of a version 1.0 `.npy` file holding `ids` as a 1-D little-endian int32 array.
    public static func npy(_ ids: [Int32]) -> Data {
        var header = "{'descr': '<i4', 'fortran_order': False, 'shape': (\(ids.count),), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var d = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        let n = UInt16(header.utf8.count)
        d.append(contentsOf: [UInt8(n & 0xFF), UInt8(n >> 8)])
        d.append(contentsOf: Array(header.utf8))
        ids.withUnsafeBufferPointer { b in
            for v in b { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        }
        return d
    }
}
