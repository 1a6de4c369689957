import Analysis
import Tensors

/// The ERC loss of every MoE layer added to training (Lv et al., ICLR 2026), computed by the
/// analysis engine (`Analysis.ERCGradient`): per layer and step, the noise bound eps of the
/// router rows, fresh multiplicative noise delta ~ U(1 - eps, 1 + eps) (both held out of the
/// gradient), the activation matrix of the proxies `delta * R` against the gate projections,
/// and the hinge loss; its gradient reaches R and W_g.
struct ERCRegularizer {
    let alpha: Double
    let noise: Bool

    /// What one evaluation over all layers gave.
    struct Result {
        /// Sum over layers of the ERC loss.
        var loss: Double = 0
        /// Mean over layers and experts of eps.
        var epsMean: Double = 0
        /// Per layer: loss, mean eps, min eps.
        var layers: [(loss: Double, epsMean: Double, epsMin: Double)] = []
    }

    /// Evaluates the loss of every layer; when `gradients` is given, adds
    /// `weight * dL/dR` and `weight * dL/dW_g` to it (router and gate groups in `trainable` only).
    /// Noise for layer l comes from `generator.split(l)`; the caller advances `generator`.
    func apply(model: OlmoeModel, generator: SeededGenerator, weight: Double, gradients: FloatBuffer?,
               trainable: Set<ParameterGroup>) throws(TrainingError) -> Result {
        let c = model.config, d = c.hiddenSize, D = c.intermediateSize, n = c.expertCount
        let W = model.parameters.pointer
        var result = Result()
        var epsTotal = 0.0
        for (l, o) in model.layout.layers.enumerated() {
            let router = Tensor(shape: [n, d], storage: Array(UnsafeBufferPointer(start: W + o.router, count: n * d)))
            var gate = Tensor(shape: [n, D, d])
            gate.storage.withUnsafeMutableBufferPointer { g in
                for e in 0..<n { (g.baseAddress! + e * D * d).update(from: W + o.gateUp + e * 2 * D * d, count: D * d) }
            }
            let eps: [Double]
            let erc: ERCGradient
            do {
                eps = try NoiseBound.compute(router: router, layer: l)
                let delta = noise ? NoiseBound.sampleNoise(eps: eps, dimension: d, generator: generator.split(UInt64(l))) : nil
                erc = try ERCGradient(router: router, gate: gate, delta: delta, alpha: alpha)
            } catch {
                throw .invalidOption("ERC loss of layer \(l): \(error.description)")
            }
            let meanEps = eps.reduce(0, +) / Double(max(1, eps.count))
            result.layers.append((erc.loss.total, meanEps, eps.min() ?? .nan))
            result.loss += erc.loss.total
            epsTotal += meanEps
            guard let g = gradients?.pointer, weight != 0 else { continue }
            let w = Float(weight)
            if trainable.contains(.router) {
                let dst = g + o.router
                for i in 0..<(n * d) { dst[i] += w * erc.router.storage[i] }
            }
            if trainable.contains(.gateProjection) {
                erc.gate.storage.withUnsafeBufferPointer { src in
                    for e in 0..<n {
                        let dst = g + o.gateUp + e * 2 * D * d, s = src.baseAddress! + e * D * d
                        for i in 0..<(D * d) { dst[i] += w * s[i] }
                    }
                }
            }
        }
        result.epsMean = epsTotal / Double(max(1, c.layerCount))
        return result
    }
}
