import Checkpoints
import Foundation
import Tensors
import Tokenizers

/// Element types of token files.
public enum TokenDType: String, Sendable, Codable, CaseIterable {
    case uint8, uint16, uint32, int32, int64

    var byteSize: Int {
        switch self {
        case .uint8: return 1
        case .uint16: return 2
        case .uint32, .int32: return 4
        case .int64: return 8
        }
    }

    /// NumPy's `descr` for this type (little-endian).
    var numpyDescr: [String] {
        switch self {
        case .uint8: return ["|u1", "<u1"]
        case .uint16: return ["<u2"]
        case .uint32: return ["<u4"]
        case .int32: return ["<i4"]
        case .int64: return ["<i8"]
        }
    }
}

/// How training rows are taken from the token stream.
public enum DataOrder: String, Sendable, Codable, CaseIterable {
    /// Row i (counted over steps and rows) is window i mod W.
    case sequential
    /// Each pass over the W windows visits them in a seeded random permutation.
    case random
}

/// A 1-D stream of token ids read from a file, cut into non-overlapping windows of L + 1
/// tokens: `.npy` (uint16, uint32, int32, int64, as OLMo writes them), raw `.bin` of a given
/// dtype, or `.txt` encoded by the checkpoint's tokenizer (read as bytes only when there is no
/// tokenizer and the vocabulary is byte-sized). The file is read into memory once (never mapped,
/// so that a file cut short by another process is an error, not a signal); every token is
/// checked against the vocabulary once, when loaded.
public final class TokenData: @unchecked Sendable {
    /// The file.
    public let path: String
    /// Number of tokens.
    public let count: Int
    /// Element type.
    public let dtype: TokenDType
    /// The `tokenizer.json` that encoded a `.txt` file (nil: token ids or bytes).
    public let tokenizerSource: String?
    private let data: Data
    private let offset: Int

    /// The largest vocabulary whose ids a `.txt` file's bytes may stand for, without a tokenizer.
    public static let byteVocabularyLimit = 512

    /// Opens `path`. `.npy` files carry their dtype; `.txt` is encoded by `tokenizer`, or read as
    /// bytes when there is none and the vocabulary has at most `byteVocabularyLimit` ids;
    /// anything else is raw little-endian `binaryDType` (default uint16).
    /// - Throws: `TrainingError.data` for unreadable or malformed files, `.text` for text the
    ///   tokenizer refuses (not UTF-8), and `.tokenOutOfVocabulary` naming the first token >=
    ///   `vocabularySize` (or negative).
    public init(path: String, vocabularySize: Int, binaryDType: TokenDType? = nil, tokenizer: Tokenizer? = nil) throws(TrainingError) {
        self.path = path
        if path.lowercased().hasSuffix(".txt"), let tokenizer {
            if let b = binaryDType {
                throw .data(file: path, reason: ".txt files are encoded by \(tokenizer.source); \(Setting.dataDType) \(b.rawValue) does not apply")
            }
            guard tokenizer.vocabularySize <= vocabularySize else {
                throw .data(
                    file: path,
                    reason:
                        "the tokenizer \(tokenizer.source) has \(tokenizer.vocabularySize) ids, more than the model's vocabulary of \(vocabularySize); it is not this model's tokenizer"
                )
            }
            let ids: [Int32]
            do throws(TokenizerError) { ids = try tokenizer.encodeFile(path) } catch { throw .text(error) }
            data = ids.map(\.littleEndian).withUnsafeBufferPointer { Data(buffer: $0) }
            (dtype, offset, count) = (.int32, 0, ids.count)
            tokenizerSource = tokenizer.source
            guard count > 0 else { throw .data(file: path, reason: "holds no tokens") }
            try checkVocabulary(vocabularySize)
            return
        }
        tokenizerSource = nil
        let d: Data
        do throws(CheckpointError) {
            let f = try ReadOnlyFile(path: path)
            let limit = Int(min(UInt64(Int.max), ProcessInfo.processInfo.physicalMemory / 2))
            guard f.size <= limit else {
                throw CheckpointError.io(file: path, reason: "is \(f.size) bytes, more than half of this machine's memory; cut it into smaller files")
            }
            d = Data(try f.read(at: 0, count: f.size))
        } catch { throw .files(error) }
        data = d
        let lower = path.lowercased()
        if lower.hasSuffix(".npy") {
            (dtype, offset, count) = try TokenData.parseNpy(d, path: path)
        } else if lower.hasSuffix(".txt") {
            if let b = binaryDType, b != .uint8 { throw .data(file: path, reason: ".txt files are read as bytes; \(Setting.dataDType) \(b.rawValue) does not apply") }
            // Bytes are token ids only for a byte-level vocabulary; a 50k vocabulary would
            // silently train on the first 256 ids.
            guard vocabularySize <= TokenData.byteVocabularyLimit else {
                throw .data(
                    file: path,
                    reason:
                        "text needs the model's tokenizer: there is no tokenizer.json beside the checkpoint, and the vocabulary of \(vocabularySize) ids is not byte-sized; pass a \(Setting.tokenizer) file, or token ids (.npy, .bin)"
                )
            }
            (dtype, offset, count) = (.uint8, 0, d.count)
        } else {
            let t = binaryDType ?? .uint16
            guard d.count % t.byteSize == 0 else {
                throw .data(file: path, reason: "\(d.count) bytes is not a whole number of \(t.rawValue) tokens (\(t.byteSize) bytes each)")
            }
            (dtype, offset, count) = (t, 0, d.count / t.byteSize)
        }
        guard count > 0 else { throw .data(file: path, reason: "holds no tokens") }
        try checkVocabulary(vocabularySize)
    }

    /// Parses a NumPy `.npy` header strictly, as NumPy does: versions 1 to 3, a Python dict
    /// literal with exactly the keys `descr` (a string), `fortran_order` (`False`) and `shape`
    /// (a 1-tuple of a non-negative integer), and data bytes for every element it promises.
    /// - Returns: the element type, the offset of the data and the number of tokens.
    public static func parseNpy(_ d: Data, path: String) throws(TrainingError) -> (TokenDType, Int, Int) {
        func bad(_ r: SettingMessage) -> TrainingError { .data(file: path, reason: r) }
        let bytes = [UInt8](d.prefix(12))
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
        guard bytes.count >= 10, Array(bytes.prefix(6)) == magic else { throw bad("not a .npy file (bad magic)") }
        let major = bytes[6]
        let headerLength: Int, start: Int
        if major == 1 {
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            start = 10
        } else if major == 2 || major == 3 {
            guard bytes.count >= 12 else { throw bad("truncated .npy header") }
            headerLength = (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
            start = 12
        } else {
            throw bad(".npy version \(major) is not supported")
        }
        guard d.count - start >= headerLength else { throw bad("truncated .npy header") }
        let header = [UInt8](d[(d.startIndex + start)..<(d.startIndex + start + headerLength)])
        let dict: NpyHeader
        do { dict = try NpyHeader(header) } catch { throw bad(".npy header: \(error.reason)") }
        guard let dt = TokenDType.allCases.first(where: { $0.numpyDescr.contains(dict.descr) }) else {
            throw bad(".npy dtype '\(dict.descr)' is not a token type (uint8, uint16, uint32, int32, int64, little-endian)")
        }
        guard !dict.fortranOrder else { throw bad(".npy arrays in Fortran order are not supported") }
        guard dict.shape.count == 1 else {
            throw bad(".npy array has shape (\(dict.shape.map(String.init).joined(separator: ", "))); a 1-D token array is needed")
        }
        let n = dict.shape[0]
        let dataStart = start + headerLength
        let (bytesNeeded, overflow) = n.multipliedReportingOverflow(by: dt.byteSize)
        guard !overflow, d.count - dataStart >= bytesNeeded else {
            throw bad(".npy holds \(d.count - dataStart) data bytes, the header promises \(n) tokens of \(dt.byteSize) bytes")
        }
        return (dt, dataStart, n)
    }

    /// Token `i` as a 64-bit integer.
    @inline(__always) func token(_ raw: UnsafeRawPointer, _ i: Int) -> Int64 {
        switch dtype {
        case .uint8: return Int64(raw.load(fromByteOffset: offset + i, as: UInt8.self))
        case .uint16: return Int64(raw.loadUnaligned(fromByteOffset: offset + 2 * i, as: UInt16.self).littleEndian)
        case .uint32: return Int64(raw.loadUnaligned(fromByteOffset: offset + 4 * i, as: UInt32.self).littleEndian)
        case .int32: return Int64(raw.loadUnaligned(fromByteOffset: offset + 4 * i, as: Int32.self).littleEndian)
        case .int64: return raw.loadUnaligned(fromByteOffset: offset + 8 * i, as: Int64.self).littleEndian
        }
    }

    private func checkVocabulary(_ V: Int) throws(TrainingError) {
        let bad: (Int, Int64)? = data.withUnsafeBytes { (b: UnsafeRawBufferPointer) -> (Int, Int64)? in
            guard let raw = b.baseAddress else { return nil }
            for i in 0..<count {
                let t = token(raw, i)
                if t < 0 || t >= Int64(V) { return (i, t) }
            }
            return nil
        }
        if let (i, t) = bad { throw .tokenOutOfVocabulary(file: path, position: i, token: t, vocabularySize: V) }
    }

    /// A 64-bit FNV-1a hash of the tokens' bytes, recorded with a run so that resume can tell
    /// a different data file of the same length.
    public var contentHash: String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        data.withUnsafeBytes { (b: UnsafeRawBufferPointer) in
            for byte in b[offset..<(offset + count * dtype.byteSize)] { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
        }
        return String(h, radix: 16)
    }

    /// Number of whole windows of `length + 1` tokens.
    public func windowCount(length: Int) -> Int { count / (length + 1) }

    /// Copies window `w` (tokens `w (L+1) ..< (w+1)(L+1)`) into `destination`.
    public func copyWindow(_ w: Int, length: Int, into destination: UnsafeMutablePointer<Int32>) {
        let start = w * (length + 1)
        data.withUnsafeBytes { (b: UnsafeRawBufferPointer) in
            guard let raw = b.baseAddress else { return }
            for i in 0...length { destination[i] = Int32(truncatingIfNeeded: token(raw, start + i)) }
        }
    }
}

/// Which window each training row reads: row `i` (counted over steps, micro-batches and rows,
/// i = (step * accumulation + micro) * batch + b) reads window `i mod W` in sequential order,
/// or position `i mod W` of the seeded permutation of pass `i / W` in random order.
public struct WindowSampler: Sendable {
    public let order: DataOrder
    public let windows: Int
    public let seed: UInt64
    private var permutationPass = -1
    private var permutation: [Int] = []

    public init(order: DataOrder, windows: Int, seed: UInt64) {
        self.order = order
        self.windows = windows
        self.seed = seed
    }

    /// The window of row `i`.
    public mutating func window(forRow i: Int) -> Int {
        let pos = i % windows
        guard order == .random else { return pos }
        let pass = i / windows
        if pass != permutationPass {
            var g = SeededGenerator(seed: seed ^ 0x5EED_DA7A).split(UInt64(pass))
            permutation = Array(0..<windows)
            for j in stride(from: windows - 1, to: 0, by: -1) {
                let k = Int(g.next() % UInt64(j + 1))
                permutation.swapAt(j, k)
            }
            permutationPass = pass
        }
        return permutation[pos]
    }
}

/// The header dict of a `.npy` file, parsed as the Python literal it is.
struct NpyHeader {
    struct Failure: Error { let reason: String }
    var descr: String
    var fortranOrder: Bool
    var shape: [Int]

    /// Parses `{'descr': '<u2', 'fortran_order': False, 'shape': (N,), }` followed by spaces and
    /// a newline; keys in any order, each exactly once, nothing else.
    init(_ bytes: [UInt8]) throws(Failure) {
        var i = 0
        func fail(_ r: String) -> Failure { Failure(reason: r) }
        func space() { while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 { i += 1 } }
        func expect(_ c: UInt8, _ what: String) throws(Failure) {
            space()
            guard i < bytes.count, bytes[i] == c else { throw fail("expected \(what) at byte \(i)") }
            i += 1
        }
        func string() throws(Failure) -> String {
            space()
            guard i < bytes.count, bytes[i] == 0x27 || bytes[i] == 0x22 else { throw fail("expected a quoted string at byte \(i)") }
            let q = bytes[i]; i += 1
            let s0 = i
            while i < bytes.count, bytes[i] != q { guard bytes[i] != 0x5C, bytes[i] >= 0x20 else { throw fail("unsupported character in a string") }; i += 1 }
            guard i < bytes.count else { throw fail("unterminated string") }
            defer { i += 1 }
            return String(decoding: bytes[s0..<i], as: UTF8.self)
        }
        func word() -> String {
            space()
            let s0 = i
            while i < bytes.count, (bytes[i] >= 0x41 && bytes[i] <= 0x5A) || (bytes[i] >= 0x61 && bytes[i] <= 0x7A) { i += 1 }
            return String(decoding: bytes[s0..<i], as: UTF8.self)
        }
        func integer() throws(Failure) -> Int {
            space()
            let s0 = i
            while i < bytes.count, bytes[i] >= 0x30 && bytes[i] <= 0x39 { i += 1 }
            guard i > s0, i - s0 <= 19, let v = Int(String(decoding: bytes[s0..<i], as: UTF8.self)) else {
                throw fail("expected a dimension (a non-negative 64-bit integer) at byte \(s0)")
            }
            if i < bytes.count, bytes[i] == 0x4C { i += 1 }  // Python 2's long suffix
            return v
        }
        var descr: String?, fortran: Bool?, shape: [Int]?
        try expect(0x7B, "'{'")
        while true {
            space()
            if i < bytes.count, bytes[i] == 0x7D { i += 1; break }
            let key = try string()
            try expect(0x3A, "':'")
            switch key {
            case "descr":
                guard descr == nil else { throw fail("key 'descr' appears twice") }
                descr = try string()
            case "fortran_order":
                guard fortran == nil else { throw fail("key 'fortran_order' appears twice") }
                switch word() {
                case "True": fortran = true
                case "False": fortran = false
                default: throw fail("'fortran_order' must be True or False")
                }
            case "shape":
                guard shape == nil else { throw fail("key 'shape' appears twice") }
                try expect(0x28, "'(' opening the shape")
                var dims: [Int] = []
                while true {
                    space()
                    if i < bytes.count, bytes[i] == 0x29 { i += 1; break }
                    dims.append(try integer())
                    space()
                    if i < bytes.count, bytes[i] == 0x2C { i += 1; continue }
                    try expect(0x29, "')' closing the shape")
                    break
                }
                guard dims.count <= 32 else { throw fail("shape has \(dims.count) dimensions") }
                shape = dims
            default:
                throw fail("unexpected key '\(key)'")
            }
            space()
            if i < bytes.count, bytes[i] == 0x2C { i += 1; continue }
            try expect(0x7D, "'}'")
            break
        }
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x00 { i += 1 }
        guard i == bytes.count else { throw fail("unexpected text after the header dict") }
        guard let descr, let fortran, let shape else { throw fail("the header must have the keys 'descr', 'fortran_order' and 'shape'") }
        self.descr = descr; fortranOrder = fortran; self.shape = shape
    }
}
