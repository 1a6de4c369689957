import Dispatch
import Tensors

/// Geometry of a router and its experts: cosine similarity of router rows, row norms, and the
/// Frobenius norm of every expert's gate projection (the paper's parameter-norm analysis).
public struct RouterGeometry: Sendable {
    /// cos(R[i], R[j]) [n, n] (diagonal 1).
    public var cosine: Tensor
    /// Mean |cos| over the off-diagonal entries.
    public var meanAbsCosine: Double
    /// ||R[i]||_2 per expert.
    public var routerNorms: [Double]
    /// ||W_g^i||_F per expert (empty when no gate stack was given).
    public var gateNorms: [Double]

    /// Computes the geometry of router R [n, d] and, optionally, the gate stack [n, D, d].
    public init(router: Tensor, gate: Tensor? = nil) {
        let n = router.rows
        routerNorms = NoiseBound.rowNorms(router)
        var g = BLAS.matmul(router, router, transB: true)
        var sum = 0.0
        for i in 0..<n {
            for j in 0..<n {
                let denom = routerNorms[i] * routerNorms[j]
                let c = denom > 0 ? Double(g[i, j]) / denom : 0
                g[i, j] = Float(i == j ? (denom > 0 ? 1 : 0) : min(1, max(-1, c)))
                if i != j { sum += abs(Double(g[i, j])) }
            }
        }
        cosine = g
        meanAbsCosine = n > 1 ? sum / Double(n * (n - 1)) : 0
        if let gate, n > 0 {
            let per = gate.count / n
            var norms = [Double](repeating: 0, count: n)
            gate.storage.withUnsafeBufferPointer { p in
                norms.withUnsafeMutableBufferPointer { out in
                    let src = UnsafeShared(p), dst = UnsafeShared(out)
                    DispatchQueue.concurrentPerform(iterations: n) { e in
                        // The arithmetic of the streamed analysis, so both give the same bits.
                        guard let base = src.value.baseAddress else { dst.value[e] = 0; return }
                        dst.value[e] = ProductNorms.frobenius(base + e * per, count: per)
                    }
                }
            }
            gateNorms = norms
        } else {
            gateNorms = []
        }
    }
}
