/// Wraps a pointer (or buffer) for workers of `DispatchQueue.concurrentPerform` that touch
/// disjoint parts of the memory it points to; the caller guarantees the memory outlives them.
public struct UnsafeShared<Pointer>: @unchecked Sendable {
    /// The wrapped pointer.
    public let value: Pointer
    public init(_ value: Pointer) { self.value = value }
}

import Dispatch

/// Runs `body(0..<iterations)` across the cores when the job is large enough (`work`, in
/// element operations, at least `threshold`), else in order on the calling thread: waking the
/// other core costs more than a small job. Bodies must write disjoint memory.
public func forEachIteration(_ iterations: Int, work: Int, threshold: Int = 1 << 18,
                             _ body: @Sendable (Int) -> Void) {
    if work < threshold {
        for i in 0..<iterations { body(i) }
    } else {
        DispatchQueue.concurrentPerform(iterations: iterations, execute: body)
    }
}
