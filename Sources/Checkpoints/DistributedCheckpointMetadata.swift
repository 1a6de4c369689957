import Tensors

/// The `.metadata` file of a torch distributed checkpoint (`torch.distributed.checkpoint`), as
/// OLMo-core writes it: a pickle (protocol 4) of torch's `Metadata`, read without Python.
///
/// `state_dict_metadata` gives, per key, its size, dtype and the chunks it was saved in (each with
/// its offsets into the whole tensor); `storage_data` gives, per (key, chunk offsets), the
/// `.distcp` file, the byte offset and length of the chunk's `torch.save` archive.
public struct DistributedCheckpointMetadata: Sendable {
    /// One saved chunk of a tensor and where its archive is.
    public struct Chunk: Sendable, Equatable {
        /// Offsets of the chunk along each axis of the whole tensor.
        public var offsets: [Int]
        /// Extent of the chunk along each axis.
        public var sizes: [Int]
        /// The `.distcp` file (relative to the checkpoint folder).
        public var file: String
        /// Byte offset and length of the chunk's `torch.save` archive in that file.
        public var byteOffset: Int
        public var byteLength: Int
        /// Elements in the chunk.
        public var elementCount: Int { sizes.reduce(1, *) }
    }

    /// A tensor entry of the state dict.
    public struct TensorEntry: Sendable, Equatable {
        /// The state-dict key, e.g. `model.blocks.0.feed_forward_moe.router.weight`.
        public var key: String
        /// Element type.
        public var dtype: DType
        /// Shape of the whole tensor.
        public var shape: [Int]
        /// Its chunks, validated to tile the tensor exactly.
        public var chunks: [Chunk]
    }

    /// Tensor entries, in the pickle's order.
    public var tensors: [TensorEntry]
    /// Keys saved as pickled bytes (never read: they may hold arbitrary Python objects).
    public var byteKeys: [String]

    /// The classes a `.metadata` pickle may refer to; any other is refused.
    public static let allowedGlobals: Set<String> = {
        var s: Set<String> = [
            "torch.distributed.checkpoint.metadata.Metadata",
            "torch.distributed.checkpoint.metadata.TensorStorageMetadata",
            "torch.distributed.checkpoint.metadata.TensorProperties",
            "torch.distributed.checkpoint.metadata.ChunkStorageMetadata",
            "torch.distributed.checkpoint.metadata.BytesStorageMetadata",
            "torch.distributed.checkpoint.metadata.MetadataIndex",
            "torch.distributed.checkpoint.metadata.StorageMeta",
            "torch.distributed.checkpoint.metadata._MEM_FORMAT_ENCODING",
            "torch.Size",
            "torch.serialization._get_layout",
            "olmo_core.distributed.checkpoint.filesystem._StorageInfo",
        ]
        for d in torchDTypes.keys { s.insert("torch." + d) }
        return s
    }()

    /// torch dtype names and the element types they store.
    public static let torchDTypes: [String: DType] = [
        "float32": .f32, "float": .f32, "bfloat16": .bf16, "float16": .f16, "half": .f16, "float64": .f64, "double": .f64,
        "int64": .i64, "long": .i64, "int32": .i32, "int": .i32, "int16": .i16, "short": .i16, "int8": .i8,
        "uint8": .u8, "uint16": .u16, "uint32": .u32, "uint64": .u64, "bool": .bool,
        "float8_e4m3fn": .f8e4m3, "float8_e5m2": .f8e5m2,
    ]

    /// Parses a `.metadata` file's bytes; `file` names it in errors.
    public init(_ bytes: [UInt8], file: String) throws(CheckpointError) {
        let r = bytes.withUnsafeBytes { b -> Result<DistributedCheckpointMetadata, CheckpointError> in
            do throws(CheckpointError) { return .success(try DistributedCheckpointMetadata(b, file: file)) } catch { return .failure(error) }
        }
        self = try r.get()
    }

    /// Parses a `.metadata` file's bytes; `file` names it in errors.
    /// - Throws: `CheckpointError.malformed(file:...)` for anything but the expected structure.
    public init(_ bytes: UnsafeRawBufferPointer, file: String) throws(CheckpointError) {
        let doc = try PickleReader.parse(bytes, allowed: Self.allowedGlobals, file: file)
        var d = Decoder(doc: doc, file: file, budget: 16 * bytes.count + 1024)
        (tensors, byteKeys) = try d.metadata()
    }

    private struct Decoder {
        let doc: PickleDocument
        let file: String
        var budget: Int

        func bad(_ r: String) -> CheckpointError { .malformed(file: file, reason: r) }

        /// Charges the work of looking at `n` values, so that values referred to many times cannot
        /// make decoding take more than linear time in the file size.
        mutating func spend(_ n: Int = 1) throws(CheckpointError) {
            budget -= n
            guard budget >= 0 else { throw bad("refers to the same values too many times to be a checkpoint index") }
        }

        func object(_ v: PickleValue, _ type: String, _ what: String) throws(CheckpointError) -> PickledObject {
            guard let o = doc.object(v) else { throw bad("\(what) is not an object") }
            guard o.type == type else { throw bad("\(what) is a \(o.type), expected \(type)") }
            return o
        }

        /// The attribute dict set by `BUILD` (a dict, or a (dict, slots dict) pair).
        mutating func attributes(_ o: PickledObject, _ what: String) throws(CheckpointError) -> [String: PickleValue] {
            guard let state = o.state else { return [:] }
            var out: [String: PickleValue] = [:]
            var parts: [PickleValue] = [state]
            if let t = doc.sequence(state), case .tuple? = doc.node(state), t.count == 2 { parts = t }
            for part in parts {
                if part == .none { continue }
                guard let pairs = doc.pairs(part) else { throw bad("\(what): state is not a dict") }
                try spend(pairs.count)
                for (k, v) in pairs {
                    guard case let .string(s) = k else { throw bad("\(what): attribute name is not a string") }
                    out[s] = v
                }
            }
            return out
        }

        mutating func size(_ v: PickleValue, _ what: String) throws(CheckpointError) -> [Int] {
            let o = try object(v, "torch.Size", what)
            guard let args = doc.sequence(o.arguments), args.count == 1, let dims = doc.sequence(args[0]) else {
                throw bad("\(what): torch.Size without a tuple of sizes")
            }
            guard dims.count <= 16 else { throw bad("\(what): \(dims.count) dimensions") }
            try spend(dims.count)
            var out: [Int] = []
            for x in dims {
                guard case let .int(i) = x, i >= 0 else { throw bad("\(what): size entry is not a non-negative integer") }
                out.append(i)
            }
            return out
        }

        mutating func metadata() throws(CheckpointError) -> ([TensorEntry], [String]) {
            let root = try object(doc.root, "torch.distributed.checkpoint.metadata.Metadata", "the pickle")
            let attrs = try attributes(root, "Metadata")
            guard let sdm = attrs["state_dict_metadata"], let entries = doc.pairs(sdm) else {
                throw bad("Metadata has no state_dict_metadata dict")
            }
            guard let sd = attrs["storage_data"], let storage = doc.pairs(sd) else {
                throw bad("Metadata has no storage_data dict (written by a storage writer other than OLMo-core's?)")
            }
            // (key, chunk offsets) -> where the chunk's archive is.
            var location: [String: [[Int]: (String, Int, Int)]] = [:]
            try spend(storage.count)
            for (k, v) in storage {
                let idx = try object(k, "torch.distributed.checkpoint.metadata.MetadataIndex", "a storage_data key")
                let ia = try attributes(idx, "MetadataIndex")
                guard case let .string(fqn)? = ia["fqn"] else { throw bad("MetadataIndex without a fqn") }
                var offsets: [Int] = []
                if let o = ia["offset"], o != .none { offsets = try size(o, "MetadataIndex '\(fqn)' offset") }
                let info = try object(v, "olmo_core.distributed.checkpoint.filesystem._StorageInfo", "storage_data['\(fqn)']")
                let sa = try attributes(info, "_StorageInfo")
                guard case let .string(rel)? = sa["relative_path"], case let .int(off)? = sa["offset"], case let .int(len)? = sa["length"] else {
                    throw bad("storage_data['\(fqn)'] lacks relative_path, offset or length")
                }
                guard off >= 0, len >= 0 else { throw bad("storage_data['\(fqn)'] has a negative offset or length") }
                guard !rel.isEmpty, !rel.contains("/"), rel != "..", rel != "." else {
                    throw bad("storage_data['\(fqn)'] names file '\(rel)', which is not a file in this folder")
                }
                guard location[fqn]?[offsets] == nil else { throw bad("storage_data lists chunk \(offsets) of '\(fqn)' twice") }
                location[fqn, default: [:]][offsets] = (rel, off, len)
            }
            var tensors: [TensorEntry] = []
            var bytesKeys: [String] = []
            var seen = Set<String>()
            try spend(entries.count)
            for (k, v) in entries {
                guard case let .string(key) = k else { throw bad("state_dict_metadata key is not a string") }
                guard seen.insert(key).inserted else { throw bad("state_dict_metadata lists '\(key)' twice") }
                guard let o = doc.object(v) else { throw bad("state_dict_metadata['\(key)'] is not an object") }
                if o.type == "torch.distributed.checkpoint.metadata.BytesStorageMetadata" { bytesKeys.append(key); continue }
                guard o.type == "torch.distributed.checkpoint.metadata.TensorStorageMetadata" else {
                    throw bad("state_dict_metadata['\(key)'] is a \(o.type)")
                }
                let a = try attributes(o, "TensorStorageMetadata '\(key)'")
                guard let pv = a["properties"], let sv = a["size"], let cv = a["chunks"] else {
                    throw bad("TensorStorageMetadata '\(key)' lacks properties, size or chunks")
                }
                let dtype = try self.dtype(pv, key)
                let shape = try size(sv, "size of '\(key)'")
                guard let chunkValues = doc.sequence(cv) else { throw bad("chunks of '\(key)' are not a list") }
                try spend(chunkValues.count)
                var chunks: [Chunk] = []
                for c in chunkValues {
                    let co = try object(c, "torch.distributed.checkpoint.metadata.ChunkStorageMetadata", "a chunk of '\(key)'")
                    let ca = try attributes(co, "ChunkStorageMetadata of '\(key)'")
                    guard let ov = ca["offsets"], let zv = ca["sizes"] else { throw bad("a chunk of '\(key)' lacks offsets or sizes") }
                    let offsets = try size(ov, "chunk offsets of '\(key)'"), sizes = try size(zv, "chunk sizes of '\(key)'")
                    guard let (file, off, len) = location[key]?[offsets] else {
                        throw bad("chunk \(offsets) of '\(key)' has no storage_data entry (which .distcp file holds it is unknown)")
                    }
                    chunks.append(Chunk(offsets: offsets, sizes: sizes, file: file, byteOffset: off, byteLength: len))
                }
                try DistributedCheckpointMetadata.validateTiling(key: key, shape: shape, chunks: chunks, file: file)
                tensors.append(TensorEntry(key: key, dtype: dtype, shape: shape, chunks: chunks))
            }
            return (tensors, bytesKeys)
        }

        mutating func dtype(_ v: PickleValue, _ key: String) throws(CheckpointError) -> DType {
            let o = try object(v, "torch.distributed.checkpoint.metadata.TensorProperties", "properties of '\(key)'")
            // TensorProperties pickles its state as a tuple (dtype, layout, requires_grad, memory_format, pin_memory);
            // accept a dict with "dtype" too.
            var dv: PickleValue?
            if let s = o.state, case .tuple? = doc.node(s), let t = doc.sequence(s), let first = t.first {
                dv = first
            } else {
                dv = try attributes(o, "TensorProperties of '\(key)'")["dtype"]
            }
            guard let dv, let g = doc.globalName(dv), g.hasPrefix("torch."), let t = DistributedCheckpointMetadata.torchDTypes[String(g.dropFirst(6))] else {
                throw bad("properties of '\(key)' name no known torch dtype")
            }
            return t
        }
    }

    /// Checks that `chunks` lie inside `shape`, do not overlap, and cover it exactly.
    static func validateTiling(key: String, shape: [Int], chunks: [Chunk], file: String) throws(CheckpointError) {
        func bad(_ r: String) -> CheckpointError { .malformed(file: file, reason: "tensor '\(key)' \(shape): \(r)") }
        var total = 1
        for s in shape {
            let (p, o) = total.multipliedReportingOverflow(by: s)
            guard !o, p <= 1 << 50 else { throw bad("too many elements") }
            total = p
        }
        var covered = 0
        for c in chunks {
            guard c.offsets.count == shape.count, c.sizes.count == shape.count else { throw bad("chunk \(c.offsets) has \(c.offsets.count) dimensions") }
            for a in 0..<shape.count {
                guard c.offsets[a] <= shape[a], c.sizes[a] <= shape[a] - c.offsets[a] else {
                    throw bad("chunk at \(c.offsets) of size \(c.sizes) lies outside the tensor")
                }
            }
            covered += c.elementCount
            guard covered <= total else { throw bad("chunks hold more elements than the tensor (overlapping chunks)") }
        }
        // Overlap test: sweep along axis 0, testing only chunks whose axis-0 ranges meet.
        if shape.count > 0 {
            let order = chunks.indices.filter { chunks[$0].elementCount > 0 }.sorted { chunks[$0].offsets[0] < chunks[$1].offsets[0] }
            var active: [Int] = []
            for i in order {
                let c = chunks[i]
                active.removeAll { chunks[$0].offsets[0] + chunks[$0].sizes[0] <= c.offsets[0] }
                for j in active {
                    let d = chunks[j]
                    let meets = (0..<shape.count).allSatisfy { a in
                        c.offsets[a] < d.offsets[a] + d.sizes[a] && d.offsets[a] < c.offsets[a] + c.sizes[a]
                    }
                    if meets { throw bad("chunks at \(d.offsets) and \(c.offsets) overlap") }
                }
                active.append(i)
            }
        } else if chunks.count > 1 {
            throw bad("a scalar saved in \(chunks.count) chunks")
        }
        guard covered == total else { throw bad("chunks cover \(covered) of its \(total) elements") }
    }
}
