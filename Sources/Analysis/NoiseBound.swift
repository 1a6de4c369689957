import Dispatch
import Tensors

/// The ERC noise bound (Lv et al., step 1): for router row i,
/// `eps_i = min_{j != i} ||R[i] - R[j]||_2 / (2 ||R[i]||_2)`,
/// the largest multiplicative noise that keeps proxy i nearer its own centroid than any other.
public enum NoiseBound {
    /// eps_i for every row of the router R [n, d], accumulated in Double (exact differences,
    /// no Gram-matrix cancellation).
    /// - Throws: `AnalysisError.zeroRouterRow` for a row of zero norm, `.tooFewExperts` for n < 2.
    public static func compute(router: Tensor, layer: Int = 0) throws(AnalysisError) -> [Double] {
        let n = router.rows, d = router.columns
        guard n >= 2 else { throw .tooFewExperts(layer: layer, count: n) }
        let norms = rowNorms(router)
        if let z = norms.firstIndex(of: 0) { throw .zeroRouterRow(layer: layer, row: z) }
        var nearest = [Double](repeating: .infinity, count: n)
        router.storage.withUnsafeBufferPointer { rp in
            nearest.withUnsafeMutableBufferPointer { out in
                let o = UnsafeShared(out.baseAddress)
                let shared = UnsafeShared(rp)
                // Training's routers (n = 8) stay on the calling thread.
                Parallel.forEach(n, work: n * n * d, threshold: 1 << 20) { i in
                    let r = shared.value
                    var best = Double.infinity
                    for j in 0..<n where j != i {
                        var s = 0.0
                        for k in 0..<d { let t = Double(r[i * d + k]) - Double(r[j * d + k]); s += t * t }
                        best = min(best, s)
                    }
                    o.value?[i] = best.squareRoot()
                }
            }
        }
        return (0..<n).map { nearest[$0] / (2 * norms[$0]) }
    }

    /// Euclidean norm of every row, in Double.
    public static func rowNorms(_ t: Tensor) -> [Double] {
        let c = t.columns
        return t.storage.withUnsafeBufferPointer { p in
            (0..<t.rows).map { i in
                var s = 0.0
                for k in 0..<c { let v = Double(p[i * c + k]); s += v * v }
                return s.squareRoot()
            }
        }
    }

    /// Multiplicative noise delta [n, d] with delta[i, k] ~ Uniform(1 - eps_i, 1 + eps_i), drawn
    /// row by row from generators split off `generator` by row, so the draw does not depend on
    /// how work is scheduled.
    public static func sampleNoise(eps: [Double], dimension d: Int, generator: SeededGenerator) -> Tensor {
        var delta = Tensor(shape: [eps.count, d])
        delta.storage.withUnsafeMutableBufferPointer { out in
            for (i, e) in eps.enumerated() {
                var g = generator.split(UInt64(i))
                let lo = 1 - e, width = 2 * e
                for k in 0..<d { out[i * d + k] = Float(lo + width * g.nextUnitDouble()) }
            }
        }
        return delta
    }
}
