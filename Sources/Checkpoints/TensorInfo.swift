import Tensors

/// What a checkpoint says about one tensor, without reading its data.
public struct TensorInfo: Sendable, Equatable {
    /// The tensor's name (dotted, as in Hugging Face checkpoints).
    public var name: String
    /// Element type on disk.
    public var dtype: DType
    /// Extent of each axis.
    public var shape: [Int]
    /// The file that holds it.
    public var file: String

    public init(name: String, dtype: DType, shape: [Int], file: String) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.file = file
    }

    /// Number of elements.
    public var elementCount: Int { shape.reduce(1, *) }
    /// Bytes on disk.
    public var byteCount: Int { elementCount * dtype.byteSize }
}

/// A name compared byte for byte: Swift's `String` equality follows Unicode canonical
/// equivalence, so `"caf\u{E9}"` (NFC) and `"cafe\u{301}"` (NFD) would be one key, while
/// safetensors, h5py and Python keep them apart.
public struct ExactName: Hashable, Sendable {
    /// The name.
    public let name: String
    /// Wraps `name`.
    public init(_ name: String) { self.name = name }

    public static func == (a: ExactName, b: ExactName) -> Bool { a.name.utf8.elementsEqual(b.name.utf8) }
    public func hash(into h: inout Hasher) { for b in name.utf8 { h.combine(b) } }
}
