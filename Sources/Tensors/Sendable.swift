/// Wraps a pointer (or buffer) for workers of `DispatchQueue.concurrentPerform` that touch
/// disjoint parts of the memory it points to; the caller guarantees the memory outlives them.
public struct UnsafeShared<Pointer>: @unchecked Sendable {
    /// The wrapped pointer.
    public let value: Pointer
    public init(_ value: Pointer) { self.value = value }
}
