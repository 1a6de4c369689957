import Dispatch
import Foundation

/// A value (usually a pointer or a tuple of pointers) handed to the workers of a parallel loop
/// that touch only disjoint parts of the memory it refers to. The caller guarantees that the
/// memory outlives the loop; this is the one `@unchecked Sendable` wrapper of the package.
public struct UnsafeShared<Value>: @unchecked Sendable {
    /// The wrapped value.
    public let value: Value
    /// Wraps `value`.
    public init(_ value: Value) { self.value = value }
}

/// Work cut into a fixed number of chunks that depends only on the problem size, never on the
/// number of threads, so that partial sums combined in chunk order give the same bits however
/// many threads ran them.
public struct Chunks: Sendable {
    /// Number of items split.
    public let count: Int
    /// Number of chunks.
    public let chunkCount: Int

    /// Splits `count` items into chunks of about `size` items (at most `maxChunks` chunks).
    public init(count: Int, size: Int, maxChunks: Int = 256) {
        self.count = count
        chunkCount = max(1, min(maxChunks, (count + max(1, size) - 1) / max(1, size)))
    }

    /// Splits `rows` rows that each cost `rowCost` element operations into chunks of about
    /// 64k operations: small enough to balance two or more cores, large enough to amortise the
    /// dispatch.
    public init(rows: Int, rowCost: Int) {
        let size = max(1, min(max(rows, 1), 65_536 / max(1, rowCost)))
        count = rows
        chunkCount = max(1, (rows + size - 1) / size)
        chunkSize = size
    }

    private var chunkSize: Int? = nil

    /// The items of chunk `c`.
    public func range(_ c: Int) -> Range<Int> {
        if let s = chunkSize { return (c * s)..<min(count, (c + 1) * s) }
        return (c * count / chunkCount)..<((c + 1) * count / chunkCount)
    }
}

/// Deterministic parallel loops on `DispatchQueue.concurrentPerform`.
///
/// Every loop here hands out units of work whose boundaries depend only on the problem size;
/// bodies write only what belongs to their unit, so which thread runs a unit never changes a
/// result, and reductions add partial results in unit order.
public enum Parallel {
    /// Runs `body(i)` for every `i` in `0..<count`, concurrently when `count > 1`.
    public static func forEach(_ count: Int, _ body: @Sendable (Int) -> Void) {
        if count == 1 { body(0); return }
        if count > 1 { DispatchQueue.concurrentPerform(iterations: count, execute: body) }
    }

    /// Runs `body(i)` for every `i` in `0..<count`, across the cores only when the job is large
    /// enough (`work`, in element operations, at least `threshold`), else in order on the calling
    /// thread: waking another core costs more than a small job.
    public static func forEach(_ count: Int, work: Int, threshold: Int = 1 << 18, _ body: @Sendable (Int) -> Void) {
        if work < threshold {
            for i in 0..<max(0, count) { body(i) }
        } else {
            forEach(count, body)
        }
    }

    /// Runs `body(c)` for every chunk `c` in `0..<chunks` on at most `threads` workers that take
    /// chunks in turn.
    public static func forEach(_ chunks: Int, threads: Int, _ body: (Int) -> Void) {
        let workers = min(max(1, threads), chunks)
        if workers <= 1 {
            for c in 0..<max(0, chunks) { body(c) }
            return
        }
        let next = ChunkCounter()
        withoutActuallyEscaping(body) { body in
            let shared = UnsafeShared(body)
            DispatchQueue.concurrentPerform(iterations: workers) { _ in
                while let c = next.take(below: chunks) { shared.value(c) }
            }
        }
    }

    /// Sums `term(c)` over `0..<chunks`, computed on at most `threads` workers and added in
    /// chunk order.
    public static func sum(_ chunks: Int, threads: Int, _ term: (Int) -> Double) -> Double {
        var partial = [Double](repeating: 0, count: max(0, chunks))
        partial.withUnsafeMutableBufferPointer { p in
            let out = UnsafeShared(p)
            forEach(chunks, threads: threads) { c in out.value[c] = term(c) }
        }
        return partial.reduce(0, +)
    }

    /// Runs `body(chunk, rows)` over `rows` rows in the chunks of `Chunks(rows:rowCost:)`,
    /// concurrently when there is more than one.
    public static func forRows(_ rows: Int, rowCost: Int, _ body: @Sendable (Int, Range<Int>) -> Void) {
        guard rows > 0 else { return }
        let chunks = Chunks(rows: rows, rowCost: rowCost)
        forEach(chunks.chunkCount) { c in body(c, chunks.range(c)) }
    }

    /// The number of chunks `forRows` uses for `rows` rows of `rowCost` operations.
    public static func chunkCount(_ rows: Int, rowCost: Int) -> Int {
        Chunks(rows: rows, rowCost: rowCost).chunkCount
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
