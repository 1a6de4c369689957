import Tensors

/// One tensor saved with `torch.save` (a stored zip: `<prefix>/data.pkl` rebuilds the tensor
/// from a storage whose raw little-endian bytes are `<prefix>/data/<key>`), located without
/// copying: its dtype, shape and the byte range of its elements inside the archive.
public struct TorchSavedTensor: Sendable, Equatable {
    /// Element type (from the storage class).
    public var dtype: DType
    /// Shape of the saved tensor.
    public var shape: [Int]
    /// Byte range of the elements (row-major) relative to the archive start.
    public var data: Range<Int>

    /// The globals a tensor's `data.pkl` may refer to; any other is refused.
    public static let allowedGlobals: Set<String> = {
        var s: Set<String> = ["torch._utils._rebuild_tensor_v2", "collections.OrderedDict"]
        for k in storageTypes.keys { s.insert("torch." + k) }
        return s
    }()

    /// torch's typed storage classes and the element types they hold.
    public static let storageTypes: [String: DType] = [
        "FloatStorage": .f32, "BFloat16Storage": .bf16, "HalfStorage": .f16, "DoubleStorage": .f64,
        "LongStorage": .i64, "IntStorage": .i32, "ShortStorage": .i16, "CharStorage": .i8, "ByteStorage": .u8,
        "BoolStorage": .bool, "UInt16Storage": .u16, "UInt32Storage": .u32, "UInt64Storage": .u64,
        "Float8_e4m3fnStorage": .f8e4m3, "Float8_e5m2Storage": .f8e5m2,
    ]

    /// Reads the archive in `bytes` (in memory); `what` names it in errors.
    public init(_ bytes: UnsafeRawBufferPointer, what: String) throws(CheckpointError) {
        try self.init(ArchiveBytes(memory: Array(bytes)), what: what)
    }

    /// Reads the archive `source` (its directory, `data.pkl` and `byteorder`; not the elements);
    /// `what` names it in errors (file and offset).
    /// - Throws: `CheckpointError.malformed(file: what, ...)`.
    public init(_ source: ArchiveBytes, what: String) throws(CheckpointError) {
        func bad(_ r: String) -> CheckpointError { .malformed(file: what, reason: "torch.save archive: \(r)") }
        let zip = try StoredZip(source, what: what)
        let pickles = zip.entries.filter { $0.name.hasSuffix("/data.pkl") && !$0.name.dropLast(9).contains("/") }
        guard pickles.count == 1, let pkl = pickles.first else {
            throw bad(pickles.isEmpty ? "no <archive>/data.pkl entry" : "several data.pkl entries")
        }
        let prefix = String(pkl.name.dropLast("data.pkl".count))
        guard pkl.data.count <= 1 << 20 else { throw bad("data.pkl of \(pkl.data.count) bytes is too large for one tensor") }
        let pklBytes = try source.bytes(pkl.data.lowerBound, pkl.data.count, what: what)
        guard StoredZip.crc32(pklBytes) == pkl.crc32 else { throw bad("data.pkl fails its CRC check (damaged)") }
        if let bo = zip.entry(prefix + "byteorder") {
            guard bo.data.count <= 16, try source.bytes(bo.data.lowerBound, bo.data.count, what: what).elementsEqual("little".utf8) else {
                throw bad("byte order is not little-endian")
            }
        }
        let doc = try PickleReader.parse(pklBytes, allowed: Self.allowedGlobals, file: what + " data.pkl")
        guard let call = doc.object(doc.root), call.type == "torch._utils._rebuild_tensor_v2",
            let args = doc.sequence(call.arguments), args.count >= 6
        else {
            throw bad("data.pkl does not rebuild one tensor")
        }
        guard case let .persistentID(pid)? = doc.node(args[0]), let ref = doc.sequence(pid), ref.count == 5,
            ref[0] == .string("storage"), let cls = doc.globalName(ref[1]), case let .string(key) = ref[2],
            case let .int(numel) = ref[4], numel >= 0
        else {
            throw bad("data.pkl's storage reference is not ('storage', type, key, location, size)")
        }
        guard let dtype = Self.storageTypes[String(cls.dropFirst("torch.".count))] else { throw bad("unknown storage class \(cls)") }
        guard case let .int(storageOffset) = args[1], storageOffset >= 0 else { throw bad("storage offset is not a non-negative integer") }
        func ints(_ v: PickleValue, _ what: String) throws(CheckpointError) -> [Int] {
            guard let t = doc.sequence(v), t.count <= 16 else { throw bad("\(what) is not a tuple of at most 16 integers") }
            var out: [Int] = []
            for x in t {
                guard case let .int(i) = x, i >= 0 else { throw bad("\(what) holds a value that is not a non-negative integer") }
                out.append(i)
            }
            return out
        }
        let shape = try ints(args[2], "size"), stride = try ints(args[3], "stride")
        guard stride.count == shape.count else { throw bad("size \(shape) and stride \(stride) differ in length") }
        var count = 1
        var expected = 1
        for a in (0..<shape.count).reversed() {
            guard shape[a] == 1 || stride[a] == expected else { throw bad("tensor of size \(shape) has strides \(stride), not contiguous") }
            let (p, o) = expected.multipliedReportingOverflow(by: shape[a])
            guard !o, p <= 1 << 50 else { throw bad("size \(shape) is too large") }
            expected = p
        }
        count = expected
        guard storageOffset <= numel, count <= numel - storageOffset else {
            throw bad("elements [\(storageOffset), +\(count)) lie outside the \(numel)-element storage")
        }
        guard let storage = zip.entry(prefix + "data/" + key) else { throw bad("no storage record '\(prefix)data/\(key)'") }
        guard storage.data.count == numel * dtype.byteSize else {
            throw bad("storage record '\(key)' holds \(storage.data.count) bytes, \(numel) \(dtype.rawValue) elements need \(numel * dtype.byteSize)")
        }
        let start = storage.data.lowerBound + storageOffset * dtype.byteSize
        self.dtype = dtype
        self.shape = shape
        self.data = start..<(start + count * dtype.byteSize)
    }
}
