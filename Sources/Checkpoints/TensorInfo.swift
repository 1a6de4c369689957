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
