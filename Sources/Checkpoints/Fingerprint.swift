import Foundation

/// SHA-256 (FIPS 180-4), for fingerprints of inputs recorded in reports.
public struct SHA256 {
    private var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
    private var buffer: [UInt8] = []
    private var length: UInt64 = 0

    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    /// A fresh hash.
    public init() {}

    /// Feeds `bytes`.
    public mutating func update(_ bytes: [UInt8]) {
        length &+= UInt64(bytes.count)
        var i = 0
        if !buffer.isEmpty {
            while i < bytes.count && buffer.count < 64 { buffer.append(bytes[i]); i += 1 }
            if buffer.count == 64 {
                let block = buffer; block.withUnsafeBufferPointer { if let b = $0.baseAddress { compress(b) } }; buffer.removeAll(keepingCapacity: true)
            }
        }
        bytes.withUnsafeBufferPointer { p in
            guard let base = p.baseAddress else { return }
            while i + 64 <= p.count { compress(base + i); i += 64 }
        }
        while i < bytes.count { buffer.append(bytes[i]); i += 1 }
    }

    /// Feeds `text` as UTF-8.
    public mutating func update(_ text: String) { update(Array(text.utf8)) }

    /// Feeds `value` as 8 little-endian bytes.
    public mutating func update(_ value: UInt64) { update((0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }) }

    private mutating func compress(_ block: UnsafePointer<UInt8>) {
        var w = [UInt32](repeating: 0, count: 64)
        for i in 0..<16 {
            w[i] = UInt32(block[4 * i]) << 24 | UInt32(block[4 * i + 1]) << 16 | UInt32(block[4 * i + 2]) << 8 | UInt32(block[4 * i + 3])
        }
        func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
        for i in 16..<64 {
            let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
        }
        var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7]
        for i in 0..<64 {
            let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
            let ch = (e & f) ^ (~e & g)
            let t1 = hh &+ s1 &+ ch &+ Self.k[i] &+ w[i]
            let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
            let maj = (a & b) ^ (a & c) ^ (b & c)
            let t2 = s0 &+ maj
            hh = g; g = f; f = e; e = d &+ t1; d = c; c = b; b = a; a = t1 &+ t2
        }
        h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d; h[4] &+= e; h[5] &+= f; h[6] &+= g; h[7] &+= hh
    }

    /// The digest as 64 lowercase hex digits (the hash is consumed).
    public mutating func hexDigest() -> String {
        let bits = length &* 8
        var tail = buffer
        tail.append(0x80)
        while tail.count % 64 != 56 { tail.append(0) }
        for i in (0..<8).reversed() { tail.append(UInt8(truncatingIfNeeded: bits >> (8 * UInt64(i)))) }
        tail.withUnsafeBufferPointer { p in
            guard let base = p.baseAddress else { return }
            var i = 0
            while i + 64 <= p.count { compress(base + i); i += 64 }
        }
        buffer.removeAll()
        return h.map { String(format: "%08x", $0) }.joined()
    }
}

/// A fingerprint of a checkpoint's files, recorded in reports so that a reader can tell which
/// checkpoint a figure was made from.
public struct Fingerprint: Sendable {
    /// Total bytes of the files.
    public var bytes: Int
    /// SHA-256 in hex (see `describe`).
    public var sha256: String
    /// Whether every byte was hashed (all files at most `fullHashLimit`), or only samples of the larger ones.
    public var isComplete: Bool

    /// Files up to this size are hashed whole.
    public static let fullHashLimit = 64 << 20
    /// Blocks sampled from a larger file.
    public static let sampleBlocks = 64, sampleBlockSize = 64 << 10

    /// What is hashed, in words, for the page.
    public static let describe =
        "SHA-256 over each file's name, size and bytes, files in name order; a file over 64 MiB contributes its first 1 MiB (the safetensors header and more) and 64 blocks of 64 KiB spread evenly over it instead of all its bytes"

    /// The fingerprint of `files` (the files of one checkpoint).
    /// - Throws: `CheckpointError.io` naming a file that cannot be read.
    public static func of(_ files: [String]) throws(CheckpointError) -> Fingerprint {
        var hash = SHA256()
        var total = 0
        var complete = true
        for path in files.sorted() {
            let f = try ReadOnlyFile(path: path)
            let size = f.size
            total += size
            hash.update((path as NSString).lastPathComponent)
            hash.update(UInt64(size))
            if size <= fullHashLimit {
                var at = 0
                while at < size {
                    let n = min(1 << 20, size - at)
                    hash.update(try f.read(at: at, count: n))
                    at += n
                }
            } else {
                complete = false
                hash.update(try f.read(at: 0, count: 1 << 20))
                for k in 0..<sampleBlocks {
                    let at = Int(Double(size - sampleBlockSize) * Double(k) / Double(sampleBlocks - 1))
                    hash.update(try f.read(at: at, count: sampleBlockSize))
                }
            }
        }
        return Fingerprint(bytes: total, sha256: hash.hexDigest(), isComplete: complete)
    }
}
