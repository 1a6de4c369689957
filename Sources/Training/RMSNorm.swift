import Tensors

/// Root-mean-square normalisation as transformers' `OlmoeRMSNorm`:
/// `y = w * (x * r)`, `r = 1 / sqrt(mean(x^2) + eps)` per row, in Float32.
enum RMSNorm {
    /// Normalises `rows` rows of `dim` elements (row strides `xStride`, `yStride`), writing the
    /// reciprocal RMS of each row to `rstd` for the backward pass. `y` may alias `x`.
    static func forward(
        x: UnsafePointer<Float>, xStride: Int, rows: Int, dim: Int, weight: UnsafePointer<Float>,
        eps: Float, y: UnsafeMutablePointer<Float>, yStride: Int, rstd: UnsafeMutablePointer<Float>
    ) {
        let xs = UnsafeShared(UnsafeMutablePointer(mutating: x)), ys = UnsafeShared(y), rs = UnsafeShared(rstd)
        let w = UnsafeShared(UnsafeMutablePointer(mutating: weight))
        Parallel.forRows(rows, rowCost: dim) { _, range in
            for t in range {
                let xr = xs.value + t * xStride, yr = ys.value + t * yStride
                let ss = VectorMath.dot(xr, xr, dim)
                let r = 1 / (ss / Float(dim) + eps).squareRoot()
                rs.value[t] = r
                for j in 0..<dim { yr[j] = w.value[j] * (xr[j] * r) }
            }
        }
    }

    /// Gradients of `forward`: `dx` (overwritten, or added to when `accumulate`; may alias `dy` when not accumulating) and, when
    /// `dWeight` is given, `dWeight += sum_t dy * x * r`.
    ///
    ///     dx = r * g - x * r^3 * (g . x) / dim,   g = w * dy
    ///
    /// The weight gradient is summed over fixed chunks of rows into `partials` (room for
    /// `Parallel.chunkCount(rows, dim) * dim` floats) and the chunks added in order.
    static func backward(
        dy: UnsafePointer<Float>, dyStride: Int, x: UnsafePointer<Float>, xStride: Int,
        rstd: UnsafePointer<Float>, weight: UnsafePointer<Float>, rows: Int, dim: Int,
        dx: UnsafeMutablePointer<Float>, dxStride: Int, accumulate: Bool,
        dWeight: UnsafeMutablePointer<Float>?, partials: UnsafeMutablePointer<Float>
    ) {
        let dys = UnsafeShared(UnsafeMutablePointer(mutating: dy)), xs = UnsafeShared(UnsafeMutablePointer(mutating: x))
        let rs = UnsafeShared(UnsafeMutablePointer(mutating: rstd)), w = UnsafeShared(UnsafeMutablePointer(mutating: weight))
        let dxs = UnsafeShared(dx), part = UnsafeShared(partials)
        let wantWeight = dWeight != nil
        let chunks = Parallel.chunkCount(rows, rowCost: dim)
        Parallel.forRows(rows, rowCost: dim) { c, range in
            let pw = part.value + c * dim
            if wantWeight { pw.update(repeating: 0, count: dim) }
            for t in range {
                let g = dys.value + t * dyStride, xr = xs.value + t * xStride, o = dxs.value + t * dxStride
                let r = rs.value[t]
                let dot = VectorMath.dot3(w.value, g, xr, dim)
                let k = r * r * r * dot / Float(dim)
                // weight partials first: `dx` may alias `dy`
                if wantWeight { for j in 0..<dim { pw[j] += g[j] * (xr[j] * r) } }
                if accumulate {
                    for j in 0..<dim { o[j] += r * (w.value[j] * g[j]) - xr[j] * k }
                } else {
                    for j in 0..<dim { o[j] = r * (w.value[j] * g[j]) - xr[j] * k }
                }
            }
        }
        if let dWeight {
            for c in 0..<chunks {
                let pw = partials + c * dim
                for j in 0..<dim { dWeight[j] += pw[j] }
            }
        }
    }
}
