import Dispatch
import Foundation

/// Work split into a fixed number of chunks that depends only on the problem size, never on the
/// thread count, so that partial sums combined in chunk order give the same bits however many
/// threads ran them.
struct Chunks: Sendable {
    /// Number of items split.
    let count: Int
    /// Number of chunks.
    let chunkCount: Int

    /// Splits `count` items into chunks of about `size` items (at most `maxChunks` chunks).
    init(count: Int, size: Int, maxChunks: Int = 256) {
        self.count = count
        chunkCount = max(1, min(maxChunks, (count + max(1, size) - 1) / max(1, size)))
    }

    /// The items of chunk `c`.
    func range(_ c: Int) -> Range<Int> {
        (c * count / chunkCount)..<((c + 1) * count / chunkCount)
    }
}

/// Deterministic parallel loops on `DispatchQueue.concurrentPerform`.
enum Parallel {
    /// Runs `body(c)` once for every chunk `c` in `0..<chunks`, on up to `threads` workers that
    /// take chunks in turn. `body` must write only what belongs to its chunk; which worker runs a
    /// chunk then does not change any result.
    static func forEach(_ chunks: Int, threads: Int, _ body: (Int) -> Void) {
        let workers = min(max(1, threads), chunks)
        if workers <= 1 {
            for c in 0..<chunks { body(c) }
            return
        }
        let next = ChunkCounter()
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: workers) { _ in
                while let c = next.take(below: chunks) { shared.value(c) }
            }
        }
    }

    /// Sums `term(c)` over the chunks, computed in parallel and added in chunk order.
    static func sum(_ chunks: Int, threads: Int, _ term: (Int) -> Double) -> Double {
        var partial = [Double](repeating: 0, count: chunks)
        partial.withUnsafeMutableBufferPointer { p in
            let out = UncheckedSendable(p)
            forEach(chunks, threads: threads) { c in out.value[c] = term(c) }
        }
        return partial.reduce(0, +)
    }
}

/// Hands out chunk numbers to workers under a lock.
private final class ChunkCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0

    func take(below limit: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard next < limit else { return nil }
        next += 1
        return next - 1
    }
}

/// A value shared with the workers of a parallel loop that only touch disjoint parts of it.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
