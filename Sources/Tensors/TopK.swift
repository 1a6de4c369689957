/// The k largest of n values by repeated maximum: largest first, the lower index first on ties,
/// O(n k) with no allocation (k is small). The router's choice and the routing statistics'
/// top-k of softmax(logits) both use it, so they order ties alike.
package enum TopK {
    /// Calls `chosen(slot, index)` for slots 0..<min(k, n), best first. `taken` holds n flags
    /// (scratch: overwritten).
    @inlinable package static func select<T: Comparable>(
        _ values: UnsafePointer<T>, count n: Int, k: Int, taken: UnsafeMutablePointer<Bool>, _ chosen: (Int, Int) -> Void
    ) {
        for e in 0..<n { taken[e] = false }
        for slot in 0..<min(k, n) {
            var best = -1
            for e in 0..<n where !taken[e] && (best < 0 || values[e] > values[best]) { best = e }
            taken[best] = true
            chosen(slot, best)
        }
    }
}
