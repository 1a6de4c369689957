import Dispatch

/// A dense Float32 tensor in row-major order.
///
/// The storage is a plain Swift array; `shape` gives the extent of each axis, the last axis
/// varying fastest. A 0-rank tensor holds one element.
public struct Tensor: Sendable, Equatable {
    /// Extent of each axis, outermost first.
    public var shape: [Int]
    /// The elements, row-major; `storage.count == shape.reduce(1, *)`.
    public var storage: [Float]

    /// Creates a tensor from its shape and row-major elements.
    /// - Precondition: the element count matches the shape (callers validate input first).
    public init(shape: [Int], storage: [Float]) {
        precondition(storage.count == shape.reduce(1, *), "Tensor: \(storage.count) elements for shape \(shape)")
        self.shape = shape
        self.storage = storage
    }

    /// A tensor of the given shape filled with `value`.
    public init(shape: [Int], repeating value: Float = 0) {
        self.shape = shape
        self.storage = [Float](repeating: value, count: shape.reduce(1, *))
    }

    /// Number of elements.
    public var count: Int { storage.count }
    /// Number of axes.
    public var rank: Int { shape.count }

    /// Rows of a 2-D view: the first axis; for rank > 2 the product of all but the last axis.
    public var rows: Int { shape.count <= 1 ? 1 : shape.dropLast().reduce(1, *) }
    /// Columns of a 2-D view: the last axis.
    public var columns: Int { shape.last ?? 1 }

    /// Element at a 2-D position of the row-major matrix view.
    @inlinable public subscript(row: Int, column: Int) -> Float {
        get { storage[row * columns + column] }
        set { storage[row * columns + column] = newValue }
    }

    /// The same elements under another shape with the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, storage: storage)
    }

    /// Rows `range` of the 2-D view as a new tensor `[range.count, columns]`.
    public func rows(_ range: Range<Int>) -> Tensor {
        let c = columns
        return Tensor(shape: [range.count, c], storage: Array(storage[(range.lowerBound * c)..<(range.upperBound * c)]))
    }

    /// True when any element is NaN or infinite. Branch-free (x * 0 is NaN exactly for NaN and
    /// infinities) so that it vectorises, and split across cores for large tensors.
    public var hasNonFinite: Bool {
        storage.withUnsafeBufferPointer { p in
            let chunk = 1 << 20
            let chunks = (p.count + chunk - 1) / chunk
            guard chunks > 1 else { return Tensor.nonFinite(p) }
            let flags = UnsafeMutableBufferPointer<Bool>.allocate(capacity: chunks)
            defer { flags.deallocate() }
            let shared = UnsafeShared(p), out = UnsafeShared(flags)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let lo = c * chunk, hi = min(shared.value.count, lo + chunk)
                out.value[c] = Tensor.nonFinite(UnsafeBufferPointer(rebasing: shared.value[lo..<hi]))
            }
            return flags.contains(true)
        }
    }

    @inline(__always) static func nonFinite(_ p: UnsafeBufferPointer<Float>) -> Bool {
        var acc: Float = 0
        for v in p { acc += v * 0 }
        return acc.isNaN
    }

    /// Euclidean (Frobenius) norm of all elements, accumulated in Double.
    public var frobeniusNorm: Double {
        storage.withUnsafeBufferPointer { p in
            var s = 0.0
            for v in p { s += Double(v) * Double(v) }
            return s.squareRoot()
        }
    }
}
