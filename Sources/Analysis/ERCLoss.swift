import Tensors

/// The Expert-Router Coupling loss of an activation matrix M [n, n] (Lv et al., ICLR 2026):
///
///     L = (1/n^2) sum_i sum_{j != i} [ max(M[i,j] - alpha M[i,i], 0)     (specialization)
///                                     + max(M[j,i] - alpha M[i,i], 0) ]  (precision)
///
/// The specialization part is the hinge of each row against alpha times its diagonal (proxy i
/// must excite expert i most); the precision part is the hinge of each column against alpha
/// times its diagonal (expert i must respond most to its own proxy).
public struct ERCLoss: Sendable, Equatable {
    /// Specialization (row) hinge sum / n^2.
    public var specialization: Double
    /// Precision (column) hinge sum / n^2.
    public var precision: Double
    /// The loss: specialization + precision.
    public var total: Double { specialization + precision }

    public init(specialization: Double, precision: Double) { self.specialization = specialization; self.precision = precision }

    /// The loss of M for one alpha.
    public init(activation m: Tensor, alpha: Double) {
        let n = m.rows
        var spec = 0.0, prec = 0.0
        for i in 0..<n {
            let diag = alpha * Double(m[i, i])
            for j in 0..<n where j != i {
                spec += max(Double(m[i, j]) - diag, 0)
                prec += max(Double(m[j, i]) - diag, 0)
            }
        }
        let s = Double(n * n)
        specialization = spec / s
        precision = prec / s
    }

    /// The coupling threshold alpha*: the smallest alpha at which the loss of M is zero,
    /// `max_{i, j != i} max(M[i,j], M[j,i]) / M[i,i]` (infinite when a diagonal entry is 0).
    public static func couplingThreshold(_ m: Tensor) -> Double {
        let n = m.rows
        var worst = 0.0
        for i in 0..<n {
            var top = 0.0
            for j in 0..<n where j != i { top = max(top, Double(m[i, j]), Double(m[j, i])) }
            let diag = Double(m[i, i])
            worst = max(worst, diag > 0 ? top / diag : (top > 0 ? .infinity : 0))
        }
        return worst
    }

    /// dL/dM [n, n]: +1/n^2 on each active off-diagonal hinge term and -alpha/n^2 on its diagonal.
    public static func gradient(activation m: Tensor, alpha: Double) -> Tensor {
        let n = m.rows
        var g = Tensor(shape: [n, n])
        let s = 1 / Double(n * n)
        for i in 0..<n {
            let diag = alpha * Double(m[i, i])
            var dDiag = 0.0
            for j in 0..<n where j != i {
                if Double(m[i, j]) - diag > 0 { g[i, j] += Float(s); dDiag -= alpha * s }
                if Double(m[j, i]) - diag > 0 { g[j, i] += Float(s); dDiag -= alpha * s }
            }
            g[i, i] += Float(dDiag)
        }
        return g
    }
}

/// The ERC loss of one layer with its gradient with respect to the router R and every expert's
/// gate projection W_g (gate feature; the noise delta is held fixed, as in the paper where it is
/// detached).
public struct ERCGradient: Sendable {
    /// The loss at this point.
    public var loss: ERCLoss
    /// The activation matrix M [n, n] the loss was computed from.
    public var activation: Tensor
    /// dL/dR [n, d].
    public var router: Tensor
    /// dL/dW_g [n, D, d].
    public var gate: Tensor

    /// Computes loss and gradients.
    ///
    /// With proxies `X = delta * R` and `P = X W^T` ([n, n*D], W the stacked gates [n*D, d]),
    /// `M[i,j] = ||P[i, jD..(j+1)D]||`, so `dP = (dL/dM)[i,j] * P_ij / M[i,j]`,
    /// `dW = dP^T X`, `dX = dP W` and `dR = delta * dX`. Three GEMMs of the forward's size.
    /// - Parameters:
    ///   - router: R [n, d].
    ///   - gate: W_g stacked [n, D, d].
    ///   - delta: the noise [n, d], or nil for none (delta = 1).
    ///   - alpha: the ERC alpha.
    public init(router: Tensor, gate: Tensor, delta: Tensor?, alpha: Double) throws(AnalysisError) {
        let n = router.rows, d = router.columns
        guard n >= 2 else { throw .tooFewExperts(layer: 0, count: n) }
        guard d > 0, gate.count % (n * d) == 0, gate.count > 0 else {
            throw .invalid("gate projections of \(gate.count) elements do not fit n = \(n), d = \(d)")
        }
        let D = gate.count / (n * d)
        var x = router
        if let delta {
            guard delta.shape == router.shape else { throw .invalid("noise shape \(delta.shape) differs from the router's \(router.shape)") }
            for k in x.storage.indices { x.storage[k] *= delta.storage[k] }
        }
        // P = X W^T (every element written by the GEMM, so no zero fill)
        var p = [Float](unsafeUninitializedCapacity: n * n * D) { _, count in count = n * n * D }
        x.storage.withUnsafeBufferPointer { xp in
            gate.storage.withUnsafeBufferPointer { wp in
                p.withUnsafeMutableBufferPointer { pp in
                    BLAS.gemm(transB: true, m: n, n: n * D, k: d, a: xp.baseAddress!, lda: d, b: wp.baseAddress!, ldb: d, c: pp.baseAddress!, ldc: n * D)
                }
            }
        }
        var m = Tensor(shape: [n, n])
        ActivationMatrix.norms(p, m: n, experts: n, D: D, into: &m, column: 0)
        let loss = ERCLoss(activation: m, alpha: alpha)
        let gm = ERCLoss.gradient(activation: m, alpha: alpha)
        // dP in place of P.
        p.withUnsafeMutableBufferPointer { pb in
            guard let base = pb.baseAddress else { return }
            for i in 0..<n {
                for j in 0..<n {
                    let mij = m[i, j]
                    let scale: Float = mij > 0 ? gm[i, j] / mij : 0
                    let row = base + i * n * D + j * D
                    for k in 0..<D { row[k] *= scale }
                }
            }
        }
        var dW = Tensor(shape: [n, D, d], storage: [Float](unsafeUninitializedCapacity: n * D * d) { _, c in c = n * D * d })
        var dX = Tensor(shape: [n, d], storage: [Float](unsafeUninitializedCapacity: n * d) { _, c in c = n * d })
        p.withUnsafeBufferPointer { dp in
            x.storage.withUnsafeBufferPointer { xp in
                dW.storage.withUnsafeMutableBufferPointer { wb in
                    // dW [n*D, d] = dP^T [n*D, n] x X [n, d]
                    BLAS.gemm(transA: true, m: n * D, n: d, k: n, a: dp.baseAddress!, lda: n * D, b: xp.baseAddress!, ldb: d, c: wb.baseAddress!, ldc: d)
                }
            }
            gate.storage.withUnsafeBufferPointer { wp in
                dX.storage.withUnsafeMutableBufferPointer { xb in
                    // dX [n, d] = dP [n, n*D] x W [n*D, d]
                    BLAS.gemm(m: n, n: d, k: n * D, a: dp.baseAddress!, lda: n * D, b: wp.baseAddress!, ldb: d, c: xb.baseAddress!, ldc: d)
                }
            }
        }
        if let delta { for k in dX.storage.indices { dX.storage[k] *= delta.storage[k] } }
        self.loss = loss
        self.activation = m
        self.router = dX
        self.gate = dW
    }
}

extension ERCGradient {
    /// The ERC loss of one layer whose expert gate projections are read in place (expert e's
    /// [D, d] rows at `gate + e * expertStride`), with `weight * dL/dR` and `weight * dL/dW_g`
    /// added straight into the caller's gradient buffers (same strides), as training needs:
    /// no copy of W_g and no temporary dW. Same mathematics as `init(router:gate:delta:alpha:)`.
    /// - Returns: the loss (specialization and precision parts).
    public static func accumulate(
        router: Tensor, gate: UnsafePointer<Float>, expertStride: Int, intermediate D: Int,
        delta: Tensor?, alpha: Double, weight: Float,
        routerGradient: UnsafeMutablePointer<Float>?, gateGradient: UnsafeMutablePointer<Float>?
    ) throws(AnalysisError) -> ERCLoss {
        let n = router.rows, d = router.columns
        guard n >= 2 else { throw .tooFewExperts(layer: 0, count: n) }
        guard d > 0, D > 0, expertStride >= D * d else { throw .invalid("gate projections of \(D) x \(d) do not fit a stride of \(expertStride)") }
        var x = router
        if let delta {
            guard delta.shape == router.shape else { throw .invalid("noise shape \(delta.shape) differs from the router's \(router.shape)") }
            for k in x.storage.indices { x.storage[k] *= delta.storage[k] }
        }
        let width = n * D
        var p = [Float](unsafeUninitializedCapacity: n * width) { _, c in c = n * width }
        var m = Tensor(shape: [n, n])
        let loss: ERCLoss = x.storage.withUnsafeBufferPointer { xb in
            p.withUnsafeMutableBufferPointer { pb in
                guard let xp = xb.baseAddress, let pp = pb.baseAddress else { return ERCLoss(specialization: 0, precision: 0) }
                // P[:, eD..(e+1)D] = X W_e^T
                for e in 0..<n {
                    BLAS.gemm(transB: true, m: n, n: D, k: d, a: xp, lda: d, b: gate + e * expertStride, ldb: d, c: pp + e * D, ldc: width)
                }
                for i in 0..<n {
                    for j in 0..<n {
                        var s = 0.0
                        let row = pp + i * width + j * D
                        for k in 0..<D { s += Double(row[k]) * Double(row[k]) }
                        m[i, j] = Float(s.squareRoot())
                    }
                }
                let l = ERCLoss(activation: m, alpha: alpha)
                let gm = ERCLoss.gradient(activation: m, alpha: alpha)
                for i in 0..<n {
                    for j in 0..<n {
                        let mij = m[i, j]
                        let scale: Float = mij > 0 ? gm[i, j] / mij : 0
                        let row = pp + i * width + j * D
                        for k in 0..<D { row[k] *= scale }
                    }
                }
                if let gg = gateGradient {
                    // dW_e += weight * dP_e^T X
                    for e in 0..<n {
                        BLAS.gemm(
                            transA: true, m: D, n: d, k: n, alpha: weight, a: pp + e * D, lda: width, b: xp, ldb: d,
                            beta: 1, c: gg + e * expertStride, ldc: d)
                    }
                }
                if let rg = routerGradient {
                    // dX = sum_e dP_e W_e, then dR = delta * dX
                    var dx = [Float](repeating: 0, count: n * d)
                    dx.withUnsafeMutableBufferPointer { db in
                        guard let dp = db.baseAddress else { return }
                        for e in 0..<n {
                            BLAS.gemm(m: n, n: d, k: D, a: pp + e * D, lda: width, b: gate + e * expertStride, ldb: d, beta: 1, c: dp, ldc: d)
                        }
                        for k in 0..<(n * d) { rg[k] += weight * dp[k] * (delta?.storage[k] ?? 1) }
                    }
                }
                return l
            }
        }
        return loss
    }
}
