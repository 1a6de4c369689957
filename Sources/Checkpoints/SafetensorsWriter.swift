import Foundation
import Tensors

/// A tensor to be written: its name, stored dtype and shape.
public struct TensorSpec: Sendable, Equatable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    public init(name: String, dtype: DType, shape: [Int]) { self.name = name; self.dtype = dtype; self.shape = shape }
    /// Bytes the tensor occupies on disk.
    public var byteCount: Int { shape.reduce(1, *) * dtype.byteSize }
}

/// Fills the stored bytes (already in the spec's dtype, little-endian) of one tensor.
public typealias TensorBytesProducer = (TensorSpec, UnsafeMutableRawBufferPointer) throws -> Void

/// Writes safetensors files that the reference `safetensors` package reads back bit-exactly.
public enum SafetensorsWriter {
    /// Writes one file at `path` atomically, streaming one tensor at a time.
    ///
    /// Tensors are laid out as the reference writer does: by element size, largest first, then
    /// by name, so that every tensor is aligned to its element size; the header is padded with
    /// spaces to a multiple of 8 bytes.
    /// - Parameters:
    ///   - specs: the tensors; names must be unique.
    ///   - metadata: the `__metadata__` map (omitted when empty).
    ///   - produce: called once per tensor with a buffer of exactly `spec.byteCount` bytes.
    public static func write(
        _ specs: [TensorSpec], metadata: [String: String] = [:], to path: String,
        produce: TensorBytesProducer
    ) throws {
        let ordered = specs.sorted { ($0.dtype.byteSize, $1.name) > ($1.dtype.byteSize, $0.name) }
        var seen = Set<String>()
        var pairs: [(String, JSONValue)] = []
        if !metadata.isEmpty {
            pairs.append(("__metadata__", .object(metadata.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
        }
        var offset = 0
        for s in ordered {
            guard seen.insert(s.name).inserted else { throw CheckpointError.malformed(file: path, reason: "duplicate tensor name '\(s.name)'") }
            let end = offset + s.byteCount
            pairs.append(
                (
                    s.name,
                    .object([
                        ("dtype", .string(s.dtype.rawValue)),
                        ("shape", .array(s.shape.map { .int($0) })),
                        ("data_offsets", .array([.int(offset), .int(end)])),
                    ])
                ))
            offset = end
        }
        var header = Array(JSONValue.object(pairs).serialized().utf8)
        while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }
        let tmp = AtomicOutput.temporaryPath(for: path)
        do {
            let file = try SequentialFile(path: tmp, reportAs: path)
            var length = UInt64(header.count).littleEndian
            try withUnsafeBytes(of: &length) { try file.write($0) }
            try file.write(header)
            var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 64)
            defer { buffer.deallocate() }
            for s in ordered {
                if buffer.count < s.byteCount {
                    buffer.deallocate()
                    buffer = .allocate(byteCount: s.byteCount, alignment: 64)
                }
                let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<s.byteCount])
                try produce(s, slice)
                try file.write(UnsafeRawBufferPointer(slice))
            }
            try file.close()
        } catch {
            unlink(tmp)
            throw error
        }
        try AtomicOutput.commit(tmp, to: path)
    }

    /// Writes Float32 tensors held in memory, converting each to its spec's dtype.
    public static func write(_ tensors: [(TensorSpec, Tensor)], metadata: [String: String] = [:], to path: String) throws {
        let byName = Dictionary(tensors.map { ($0.0.name, $0.1) }, uniquingKeysWith: { a, _ in a })
        try write(tensors.map { $0.0 }, metadata: metadata, to: path) { spec, out in
            guard let t = byName[spec.name] else { return }
            t.storage.withUnsafeBufferPointer { p in
                if let src = p.baseAddress, let dst = out.baseAddress {
                    Conversion.encode(spec.dtype, from: src, count: p.count, into: dst)
                }
            }
        }
    }

    /// Splits `specs` (in order) into shards of at most `maxShardBytes` each (a larger tensor
    /// gets a shard of its own), as `save_pretrained(max_shard_size=...)` does.
    public static func planShards(_ specs: [TensorSpec], maxShardBytes: Int) -> [[TensorSpec]] {
        var shards: [[TensorSpec]] = []
        var current: [TensorSpec] = []
        var size = 0
        for s in specs {
            if !current.isEmpty && size + s.byteCount > maxShardBytes {
                shards.append(current); current = []; size = 0
            }
            current.append(s); size += s.byteCount
        }
        if !current.isEmpty || shards.isEmpty { shards.append(current) }
        return shards
    }

    /// Writes a Hugging Face style checkpoint into `folder` (which must exist): one
    /// `model.safetensors`, or `model-0000i-of-0000k.safetensors` shards plus
    /// `model.safetensors.index.json` when the tensors exceed `maxShardBytes`.
    /// - Returns: the file names written.
    @discardableResult
    public static func writeFolder(
        _ specs: [TensorSpec], metadata: [String: String] = ["format": "pt"],
        folder: String, maxShardBytes: Int = 5_000_000_000,
        produce: TensorBytesProducer
    ) throws -> [String] {
        let shards = planShards(specs, maxShardBytes: maxShardBytes)
        if shards.count == 1 {
            try write(specs, metadata: metadata, to: folder + "/model.safetensors", produce: produce)
            return ["model.safetensors"]
        }
        var names: [String] = []
        var weightMap: [(String, JSONValue)] = []
        let k = shards.count
        for (i, shard) in shards.enumerated() {
            let name = String(format: "model-%05d-of-%05d.safetensors", i + 1, k)
            try write(shard, metadata: metadata, to: folder + "/" + name, produce: produce)
            names.append(name)
            weightMap += shard.map { ($0.name, .string(name)) }
        }
        weightMap.sort { $0.0 < $1.0 }
        let total = specs.reduce(0) { $0 + $1.byteCount }
        let index = JSONValue.object([
            ("metadata", .object([("total_size", .int(total))])),
            ("weight_map", .object(weightMap)),
        ])
        try AtomicOutput.write(index.serialized(pretty: true) + "\n", to: folder + "/model.safetensors.index.json")
        names.append("model.safetensors.index.json")
        return names
    }
}
