import Tensors

/// Matrix products whose every bit is fixed by the inputs.
///
/// OpenBLAS changes how it splits and accumulates a GEMM with its own thread count, which moves
/// the last bits of the result; t-SNE amplifies such differences into a different map. The
/// products that feed the map (PCA reduction, PCA initialisation, exact-mode distances) therefore
/// use these kernels: each output element is accumulated in one fixed order (along the inner
/// dimension, ascending), rows are split over workers by `Chunks`.
enum Products {
    /// Columns handled per pass: four SIMD8 accumulators.
    private static let block = 32

    /// A right-hand factor B (`k x n`, row-major) with its rows padded by zeros to whole blocks.
    struct PaddedMatrix {
        let rows: Int, columns: Int, stride: Int
        let storage: [Float]

        init(_ b: UnsafePointer<Float>, rows: Int, columns: Int) {
            self.rows = rows
            self.columns = columns
            stride = (columns + Products.block - 1) / Products.block * Products.block
            var padded = [Float](repeating: 0, count: rows * stride)
            for r in 0..<rows { for c in 0..<columns { padded[r * stride + c] = b[r * columns + c] } }
            storage = padded
        }
    }

    /// Rows of A B: `out[r * n ..< (r + 1) * n] = a[r * k ..< (r + 1) * k] * B` for r in 0..<m.
    /// Columns are the outer loop, so a block of B (k x 32) stays in cache across the rows.
    static func multiplyRows(
        _ a: UnsafePointer<Float>, m: Int, _ b: UnsafePointer<Float>, _ shape: PaddedMatrix,
        into out: UnsafeMutablePointer<Float>
    ) {
        let k = shape.rows, n = shape.columns, stride = shape.stride
        var cb = 0
        while cb < stride {
            for r in 0..<m {
                let row = a + r * k
                var c0 = SIMD8<Float>(repeating: 0), c1 = c0, c2 = c0, c3 = c0
                var p = b + cb
                for kk in 0..<k {
                    let v = SIMD8<Float>(repeating: row[kk])
                    c0 += v * load8(p)
                    c1 += v * load8(p + 8)
                    c2 += v * load8(p + 16)
                    c3 += v * load8(p + 24)
                    p += stride
                }
                let o = out + r * n + cb
                if cb + block <= n {
                    store8(c0, o); store8(c1, o + 8); store8(c2, o + 16); store8(c3, o + 24)
                } else {
                    for t in 0..<(n - cb) {
                        switch t >> 3 {
                        case 0: o[t] = c0[t & 7]
                        case 1: o[t] = c1[t & 7]
                        case 2: o[t] = c2[t & 7]
                        default: o[t] = c3[t & 7]
                        }
                    }
                }
            }
            cb += block
        }
    }

    /// C = A B for row-major A (`m x k`) and B (`k x n`); returns C (`m x n`).
    static func multiply(
        _ a: UnsafePointer<Float>, m: Int, k: Int, _ b: UnsafePointer<Float>, n: Int,
        threads: Int
    ) -> [Float] {
        let padded = PaddedMatrix(b, rows: k, columns: n)
        var out = [Float](repeating: 0, count: m * n)
        let chunks = Chunks(count: m, size: 16)
        padded.storage.withUnsafeBufferPointer { bp in
            out.withUnsafeMutableBufferPointer { op in
                let shared = UnsafeShared((a, op))
                Parallel.forEach(chunks.chunkCount, threads: threads) { c in
                    let (a, op) = shared.value
                    let rows = chunks.range(c)
                    multiplyRows(
                        a + rows.lowerBound * k, m: rows.count, bp.baseAddress!, padded,
                        into: op.baseAddress! + rows.lowerBound * n)
                }
            }
        }
        return out
    }

    /// C = A B^T (`m x k`) for row-major A (`m x d`) and B (`k x d`): dot products of rows, taken
    /// over blocks of columns (so that a block of B stays in cache while A streams past once) and
    /// added block by block in order. No copy of either factor is made, which suits long rows.
    static func multiplyTransposed(
        _ a: UnsafePointer<Float>, m: Int, _ b: UnsafePointer<Float>, k: Int, d: Int,
        threads: Int
    ) -> [Float] {
        let columns = Chunks(count: d, size: max(512, (1 << 18) / max(1, k)))
        let rows = Chunks(count: m, size: max(1, 8192 / max(1, k)), maxChunks: 64)
        var partial = [Float](repeating: 0, count: columns.chunkCount * m * k)
        partial.withUnsafeMutableBufferPointer { pp in
            let shared = UnsafeShared((a, b, pp))
            Parallel.forEach(columns.chunkCount * rows.chunkCount, threads: threads) { task in
                let (a, b, pp) = shared.value
                let block = task / rows.chunkCount
                let cols = columns.range(block)
                let out = pp.baseAddress! + block * m * k
                for i in rows.range(task % rows.chunkCount) {
                    for j in 0..<k {
                        out[i * k + j] = dot(a + i * d + cols.lowerBound, b + j * d + cols.lowerBound, cols.count)
                    }
                }
            }
        }
        if columns.chunkCount == 1 { return partial }
        var out = [Float](repeating: 0, count: m * k)
        for block in 0..<columns.chunkCount {
            for e in 0..<(m * k) { out[e] += partial[block * m * k + e] }
        }
        return out
    }

    /// C = W X (`k x d`) for row-major weights W (`k x n`) and X (`n x d`), split over column
    /// blocks of X so that long rows need no copy.
    static func combineRows(
        _ w: UnsafePointer<Float>, k: Int, _ x: UnsafePointer<Float>, n: Int, d: Int,
        threads: Int
    ) -> [Float] {
        var out = [Float](repeating: 0, count: k * d)
        let chunks = Chunks(count: d, size: 512, maxChunks: 4096)
        out.withUnsafeMutableBufferPointer { op in
            let shared = UnsafeShared((w, x, op))
            Parallel.forEach(chunks.chunkCount, threads: threads) { c in
                let (w, x, op) = shared.value
                let cols = chunks.range(c)
                for row in 0..<k {
                    let o = op.baseAddress! + row * d
                    for r in 0..<n {
                        let weight = w[row * n + r]
                        let xr = x + r * d
                        for j in cols { o[j] += weight * xr[j] }
                    }
                }
            }
        }
        return out
    }

    /// The transpose (`cols x rows`) of a row-major `rows x cols` matrix.
    static func transpose(_ a: UnsafePointer<Float>, rows: Int, cols: Int) -> [Float] {
        var t = [Float](repeating: 0, count: rows * cols)
        let tile = 32
        t.withUnsafeMutableBufferPointer { tp in
            var r0 = 0
            while r0 < rows {
                var c0 = 0
                while c0 < cols {
                    for r in r0..<min(rows, r0 + tile) {
                        for c in c0..<min(cols, c0 + tile) { tp[c * rows + r] = a[r * cols + c] }
                    }
                    c0 += tile
                }
                r0 += tile
            }
        }
        return t
    }

    /// All squared Euclidean distances (`n x n`) between the rows of `x` (`n x d`), summed
    /// directly as sum_c (x_ic - x_jc)^2 (no cancellation), zero diagonal.
    static func squaredDistances(_ x: UnsafePointer<Float>, n: Int, d: Int, threads: Int) -> [Float] {
        let xt = transpose(x, rows: n, cols: d)
        var out = [Float](repeating: 0, count: n * n)
        let chunks = Chunks(count: n, size: 16)
        xt.withUnsafeBufferPointer { tp in
            out.withUnsafeMutableBufferPointer { op in
                let shared = UnsafeShared((x, op))
                Parallel.forEach(chunks.chunkCount, threads: threads) { c in
                    let (x, op) = shared.value
                    for i in chunks.range(c) {
                        let row = op.baseAddress! + i * n
                        for c in 0..<d {
                            let xi = x[i * d + c]
                            let v = SIMD8<Float>(repeating: xi)
                            let col = tp.baseAddress! + c * n
                            var j = 0
                            while j + 8 <= n {
                                let diff = v - load8(col + j)
                                store8(load8(row + j) + diff * diff, row + j)
                                j += 8
                            }
                            while j < n {
                                let diff = xi - col[j]
                                row[j] += diff * diff
                                j += 1
                            }
                        }
                        row[i] = 0
                    }
                }
            }
        }
        return out
    }
}

/// sum_c a_c b_c over `d` coordinates, in a fixed order (eight lanes, then the rest).
@inline(__always)
func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ d: Int) -> Float {
    var acc = SIMD8<Float>(repeating: 0)
    var c = 0
    while c + 8 <= d {
        acc += load8(a + c) * load8(b + c)
        c += 8
    }
    var s = acc.sum()
    while c < d {
        s += a[c] * b[c]
        c += 1
    }
    return s
}

@inline(__always) func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}
