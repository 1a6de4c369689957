import Foundation
import Tensors

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
/// dtype, or `.txt` read as bytes. The file is memory-mapped; every token is checked against
/// the vocabulary once, when loaded.
public final class TokenData: @unchecked Sendable {
    /// The file.
    public let path: String
    /// Number of tokens.
    public let count: Int
    /// Element type.
    public let dtype: TokenDType
    private let data: Data
    private let offset: Int

    /// Opens `path`. `.npy` files carry their dtype; `.txt` is bytes; anything else is raw
    /// little-endian `binaryDType` (default uint16).
    /// - Throws: `TrainingError.data` for unreadable or malformed files and
    ///   `.tokenOutOfVocabulary` naming the first token >= `vocabularySize` (or negative).
    public init(path: String, vocabularySize: Int, binaryDType: TokenDType? = nil) throws(TrainingError) {
        self.path = path
        let d: Data
        do { d = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw .data(file: path, reason: "cannot read: \(error.localizedDescription)")
        }
        data = d
        let lower = path.lowercased()
        if lower.hasSuffix(".npy") {
            (dtype, offset, count) = try TokenData.parseNpy(d, path: path)
        } else if lower.hasSuffix(".txt") {
            if let b = binaryDType, b != .uint8 { throw .data(file: path, reason: ".txt files are read as bytes; --data-dtype \(b.rawValue) does not apply") }
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

    /// Parses a NumPy `.npy` header: version 1-3, C order, 1-D, one of the token dtypes.
    static func parseNpy(_ d: Data, path: String) throws(TrainingError) -> (TokenDType, Int, Int) {
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
        guard d.count >= 10, Array(d.prefix(6)) == magic else { throw .data(file: path, reason: "not a .npy file (bad magic)") }
        let major = d[d.startIndex + 6]
        let headerLength: Int, start: Int
        if major == 1 {
            headerLength = Int(d[d.startIndex + 8]) | Int(d[d.startIndex + 9]) << 8
            start = 10
        } else if major == 2 || major == 3 {
            guard d.count >= 12 else { throw .data(file: path, reason: "truncated .npy header") }
            headerLength = (0..<4).reduce(0) { $0 | Int(d[d.startIndex + 8 + $1]) << (8 * $1) }
            start = 12
        } else { throw .data(file: path, reason: ".npy version \(major) is not supported") }
        guard d.count >= start + headerLength else { throw .data(file: path, reason: "truncated .npy header") }
        let header = String(decoding: d[(d.startIndex + start)..<(d.startIndex + start + headerLength)], as: UTF8.self)
        func value(_ key: String) -> String? {
            guard let r = header.range(of: "'\(key)':") else { return nil }
            let rest = header[r.upperBound...].drop(while: { $0 == " " })
            if rest.first == "(" { return rest.firstIndex(of: ")").map { String(rest[rest.startIndex...$0]) } }
            if rest.first == "'" {
                let body = rest.dropFirst()
                return body.firstIndex(of: "'").map { String(body[body.startIndex..<$0]) }
            }
            return String(rest.prefix(while: { $0 != "," && $0 != "}" })).trimmingCharacters(in: .whitespaces)
        }
        guard let descr = value("descr"), let dt = TokenDType.allCases.first(where: { $0.numpyDescr.contains(descr) }) else {
            throw .data(file: path, reason: ".npy dtype '\(value("descr") ?? "?")' is not a token type (uint8, uint16, uint32, int32, int64, little-endian)")
        }
        guard value("fortran_order") == "False" else { throw .data(file: path, reason: ".npy arrays in Fortran order are not supported") }
        guard let shape = value("shape") else { throw .data(file: path, reason: ".npy header has no shape") }
        let dims = shape.trimmingCharacters(in: CharacterSet(charactersIn: "()")).split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard dims.count == 1, let n = Int(dims[0]) else { throw .data(file: path, reason: ".npy array has shape \(shape); a 1-D token array is needed") }
        let dataStart = start + headerLength
        guard d.count - dataStart >= n * dt.byteSize else { throw .data(file: path, reason: ".npy holds \(d.count - dataStart) data bytes, the header promises \(n * dt.byteSize)") }
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
