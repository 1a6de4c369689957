/// A fixed-size, 64-byte aligned block of Float32 owned by this object: training's parameters,
/// gradients, optimizer moments and activations, and the forward pass's activations and scratch,
/// live in these so that hot loops work on raw pointers with no copy-on-write checks and no
/// allocation.
public final class FloatBuffer: @unchecked Sendable {
    /// Number of elements.
    public let count: Int
    /// The first element; valid for `count` elements while this object lives.
    public let pointer: UnsafeMutablePointer<Float>

    /// A buffer of `count` elements, zero-filled unless `zeroed` is false (scratch that is
    /// always written before it is read).
    public init(count: Int, zeroed: Bool = true) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(1, count))
        if zeroed { pointer.initialize(repeating: 0, count: max(1, count)) }
    }

    /// A buffer holding a copy of `values`.
    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { p in
            if let b = p.baseAddress { pointer.update(from: b, count: values.count) }
        }
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    /// The elements as a buffer pointer.
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }

    /// Sets every element to zero.
    public func zero() {
        let p = UnsafeShared(pointer)
        Parallel.forRows(count, rowCost: 1) { _, r in (p.value + r.lowerBound).update(repeating: 0, count: r.count) }
    }

    /// Copies all elements of `other` (same count) into this buffer.
    public func copy(from other: FloatBuffer) {
        precondition(other.count == count, "FloatBuffer.copy: sizes differ")
        pointer.update(from: other.pointer, count: count)
    }

    /// The elements as an array (for tests and saving).
    public var array: [Float] { Array(buffer) }
}
