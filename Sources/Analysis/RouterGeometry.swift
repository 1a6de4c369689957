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
        let n = router.rows, d = router.columns
        routerNorms = NoiseBound.rowNorms(router)
        // Rows scaled to unit length in Double first, so that the Gram product in Float32 can
        // neither overflow (|R| ~ 1e21) nor underflow (|R| ~ 1e-40).
        var unit = Tensor(shape: router.shape)
        for i in 0..<n where routerNorms[i] > 0 {
            for k in 0..<d { unit.storage[i * d + k] = Float(Double(router.storage[i * d + k]) / routerNorms[i]) }
        }
        var g = BLAS.matmul(unit, unit, transB: true)
        var sum = 0.0
        for i in 0..<n {
            for j in 0..<n {
                let nonzero = routerNorms[i] > 0 && routerNorms[j] > 0
                let c = nonzero ? Double(g[i, j]) : 0
                g[i, j] = Float(i == j ? (nonzero ? 1 : 0) : min(1, max(-1, c)))
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

    /// The power of two that brings the largest |R[i, j]| into [1, 2): multiplying by it is exact
    /// and keeps Float32 products of the router away from overflow and underflow. 1 for a
    /// router that is zero or not finite.
    public static func powerOfTwoScale(_ router: Tensor) -> Double {
        let m = router.storage.reduce(Float(0)) { max($0, abs($1)) }
        guard m > 0, m.isFinite else { return 1 }
        return Double(sign: .plus, exponent: -Int(m.exponent), significand: 1)
    }
}
