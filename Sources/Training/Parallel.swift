import Dispatch

/// Work splitting for the element-wise passes of training.
///
/// Work is cut into chunks whose boundaries depend only on the problem size, never on the
/// number of threads, so that every reduction adds the same partial sums in the same order and
/// results do not depend on scheduling.
enum Parallel {
    /// Rows per chunk for row-wise passes: small enough to balance 2+ cores, large enough to
    /// amortise dispatch.
    static func chunkRows(rows: Int, rowCost: Int) -> Int {
        // aim at ~64k elements of work per chunk
        max(1, min(rows, 65_536 / max(1, rowCost)))
    }

    /// Runs `body(chunkIndex, rowRange)` over `rows` rows in fixed chunks, concurrently when
    /// there is more than one chunk.
    static func forRows(_ rows: Int, rowCost: Int, _ body: @Sendable (Int, Range<Int>) -> Void) {
        let chunk = chunkRows(rows: rows, rowCost: rowCost)
        let chunks = (rows + chunk - 1) / chunk
        if chunks <= 1 {
            if rows > 0 { body(0, 0..<rows) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            body(c, (c * chunk)..<min(rows, (c + 1) * chunk))
        }
    }

    /// Number of chunks `forRows` uses for `rows` rows.
    static func chunkCount(_ rows: Int, rowCost: Int) -> Int {
        let chunk = chunkRows(rows: rows, rowCost: rowCost)
        return (rows + chunk - 1) / chunk
    }

    /// Runs `body(i)` for i in 0..<count concurrently (each i independent).
    static func forEach(_ count: Int, _ body: @Sendable (Int) -> Void) {
        if count == 1 { body(0); return }
        if count > 1 { DispatchQueue.concurrentPerform(iterations: count, execute: body) }
    }
}
