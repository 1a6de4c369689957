import Tensors

/// One `.safetensors` file: header parsed and validated at open, tensors read lazily from a
/// memory map.
///
/// Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data buffer.
/// Opening touches only the header; reading a tensor touches only its bytes.
public final class SafetensorsFile: @unchecked Sendable {
    /// The reference readers' cap on the header length.
    public static let maxHeaderLength = 100_000_000

    /// Path of the file.
    public let path: String
    /// Tensors in header order.
    public let tensors: [TensorInfo]
    /// The `__metadata__` map (empty when absent).
    public let metadata: [String: String]
    private let index: [String: Int]
    private let ranges: [Range<Int>]
    private let map: MappedFile

    /// Opens and validates `path`.
    /// - Throws: `CheckpointError.malformed` naming the file and the first problem found.
    public init(path: String) throws(CheckpointError) {
        self.path = path
        map = try MappedFile(path: path)
        let parsed = try SafetensorsHeader.parse(map.bytes(0..<map.size), file: path)
        var infos: [TensorInfo] = []
        var idx: [String: Int] = [:]
        var rs: [Range<Int>] = []
        for e in parsed.entries {
            idx[e.name] = infos.count
            infos.append(TensorInfo(name: e.name, dtype: e.dtype, shape: e.shape, file: path))
            rs.append((parsed.dataStart + e.begin)..<(parsed.dataStart + e.end))
        }
        tensors = infos; index = idx; ranges = rs; metadata = parsed.metadata
    }

    /// Information on tensor `name`, or nil.
    public func info(_ name: String) -> TensorInfo? { index[name].map { tensors[$0] } }

    /// The stored bytes of tensor `name`, valid while this object lives.
    public func rawBytes(_ name: String) throws(CheckpointError) -> UnsafeRawBufferPointer {
        guard let i = index[name] else { throw .missingTensor(file: path, name: name) }
        return map.bytes(ranges[i])
    }

    /// Decodes tensor `name` to Float32 into `destination` (exactly its element count long).
    public func read(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws(CheckpointError) {
        guard let i = index[name] else { throw .missingTensor(file: path, name: name) }
        let info = tensors[i]
        guard destination.count == info.elementCount else {
            throw .malformed(file: path, reason: "tensor '\(name)': \(info.elementCount) elements, buffer of \(destination.count)")
        }
        guard let dst = destination.baseAddress, let src = map.bytes(ranges[i]).baseAddress else { return }
        map.populate(ranges[i])
        Conversion.decode(info.dtype, from: src, count: info.elementCount, into: dst)
        map.release(ranges[i])
    }

    /// Hints the kernel to read tensor `name`'s bytes ahead.
    public func prefetch(_ name: String) { if let i = index[name] { map.willNeed(ranges[i]) } }
}

/// The validated content of a safetensors header.
public struct SafetensorsHeader: Sendable {
    /// One tensor entry: name, dtype, shape, and offsets relative to the data buffer.
    public struct Entry: Sendable { public var name: String; public var dtype: DType; public var shape: [Int]; public var begin: Int; public var end: Int }
    /// Entries in header order.
    public var entries: [Entry]
    /// `__metadata__` pairs.
    public var metadata: [String: String]
    /// File offset of the data buffer (8 + N).
    public var dataStart: Int

    /// Parses and validates a whole safetensors file image (header and data buffer).
    ///
    /// Checks, in order: length field present, N within the file and the 100 MB cap, UTF-8 JSON
    /// object without duplicate keys, each entry's dtype, shape (non-negative integers, product
    /// without overflow) and offsets (ordered, within the buffer, matching the byte size), and that
    /// the entries tile the buffer with no overlap, hole or trailing bytes.
    /// - Throws: `CheckpointError.malformed(file:reason:)`.
    public static func parse(_ file: UnsafeRawBufferPointer, file name: String) throws(CheckpointError) -> SafetensorsHeader {
        func bad(_ r: String) -> CheckpointError { .malformed(file: name, reason: r) }
        guard file.count >= 8 else {
            throw bad(file.isEmpty ? "empty file, not a safetensors file" : "file is \(file.count) bytes, too short for the 8-byte header length")
        }
        let n64 = file.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian
        guard n64 <= UInt64(SafetensorsFile.maxHeaderLength) else {
            throw bad("header length \(n64) exceeds the 100 MB limit (not a safetensors file?)")
        }
        let n = Int(n64)
        guard n <= file.count - 8 else { throw bad("header length \(n) runs past the end of the \(file.count)-byte file (truncated?)") }
        guard n >= 2 else { throw bad("header length \(n) is too short for a JSON object") }
        let headerBytes = UnsafeRawBufferPointer(rebasing: file[8..<(8 + n)])
        guard headerBytes.first == UInt8(ascii: "{") else { throw bad("header does not start with '{' (not a safetensors file?)") }
        let json: JSONValue
        do { json = try JSONParser.parse(headerBytes) } catch { throw bad("header is not valid JSON: \(error)") }
        guard let pairs = json.objectPairs else { throw bad("header is not a JSON object") }
        let bufferSize = file.count - 8 - n
        var entries: [Entry] = []
        entries.reserveCapacity(pairs.count)
        var metadata: [String: String] = [:]
        for (key, value) in pairs {
            if key == "__metadata__" {
                guard let m = value.objectPairs else { throw bad("__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v.stringValue else { throw bad("__metadata__ value for '\(k)' is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard value.objectPairs != nil else { throw bad("tensor '\(key)': entry is not an object") }
            guard let ds = value["dtype"]?.stringValue else { throw bad("tensor '\(key)': missing or non-string dtype") }
            guard let dtype = DType(rawValue: ds) else { throw bad("tensor '\(key)': unknown dtype '\(ds)'") }
            guard let sv = value["shape"]?.arrayValue else { throw bad("tensor '\(key)': missing shape") }
            var shape: [Int] = []
            var count = 1
            for d in sv {
                guard case let .int(x) = d else { throw bad("tensor '\(key)': shape \(JSONValue.array(sv).serialized()) has a non-integer entry") }
                guard x >= 0 else { throw bad("tensor '\(key)': shape \(JSONValue.array(sv).serialized()) has a negative entry") }
                let (p, o) = count.multipliedReportingOverflow(by: x)
                guard !o else { throw bad("tensor '\(key)': shape \(JSONValue.array(sv).serialized()) overflows the element count") }
                count = p
                shape.append(x)
            }
            let (bytes, o) = count.multipliedReportingOverflow(by: dtype.byteSize)
            guard !o else { throw bad("tensor '\(key)': shape \(shape) overflows the byte count") }
            guard let off = value["data_offsets"]?.arrayValue, off.count == 2,
                  case let .int(b) = off[0], case let .int(e) = off[1] else {
                throw bad("tensor '\(key)': data_offsets must be two integers")
            }
            guard b >= 0, e >= b else { throw bad("tensor '\(key)': data_offsets [\(b), \(e)] are negative or reversed") }
            guard e <= bufferSize else { throw bad("tensor '\(key)': data_offsets end \(e) is past the \(bufferSize)-byte data buffer (truncated?)") }
            guard e - b == bytes else {
                throw bad("tensor '\(key)': \(dtype.rawValue) shape \(shape) needs \(bytes) bytes but data_offsets span \(e - b)")
            }
            entries.append(Entry(name: key, dtype: dtype, shape: shape, begin: b, end: e))
        }
        let sorted = entries.sorted { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var cursor = 0
        for e in sorted {
            if e.begin < cursor { throw bad("tensor '\(e.name)': data_offsets [\(e.begin), \(e.end)] overlap another tensor") }
            if e.begin > cursor { throw bad("tensor '\(e.name)': hole in the data buffer before offset \(e.begin)") }
            cursor = e.end
        }
        if cursor != bufferSize {
            throw bad("data buffer is \(bufferSize) bytes but the tensors cover \(cursor)")
        }
        return SafetensorsHeader(entries: entries, metadata: metadata, dataStart: 8 + n)
    }
}
