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
    static func multiplyRows(_ a: UnsafePointer<Float>, m: Int, _ b: UnsafePointer<Float>, _ shape: PaddedMatrix,
                             into out: UnsafeMutablePointer<Float>) {
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
    static func multiply(_ a: UnsafePointer<Float>, m: Int, k: Int, _ b: UnsafePointer<Float>, n: Int,
                         threads: Int) -> [Float] {
        let padded = PaddedMatrix(b, rows: k, columns: n)
        var out = [Float](repeating: 0, count: m * n)
        let chunks = Chunks(count: m, size: 16)
        padded.storage.withUnsafeBufferPointer { bp in
            out.withUnsafeMutableBufferPointer { op in
                let shared = UncheckedSendable((a, op))
                Parallel.forEach(chunks.chunkCount, threads: threads) { c in
                    let (a, op) = shared.value
                    let rows = chunks.range(c)
                    multiplyRows(a + rows.lowerBound * k, m: rows.count, bp.baseAddress!, padded,
                                 into: op.baseAddress! + rows.lowerBound * n)
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
                let shared = UncheckedSendable((x, op))
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

@inline(__always) func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}
