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
    func apply(
        model: OlmoeNetwork, generator: SeededGenerator, weight: Double, gradients: FloatBuffer?,
        trainable: Set<ParameterGroup>
    ) throws(TrainingError) -> Result {
        let c = model.config
        let layerCount = c.layerCount
        // layers are independent (disjoint gradient regions, noise split per layer): run them
        // concurrently, each writing its own slot
        var slots = [LayerOutcome](repeating: .pending, count: layerCount)
        slots.withUnsafeMutableBufferPointer { buf in
            let out = UnsafeShared(buf.baseAddress!)
            Parallel.forEach(layerCount) { l in
                out.value[l] = layer(l, model: model, generator: generator, weight: weight, gradients: gradients, trainable: trainable)
            }
        }
        var result = Result()
        var epsTotal = 0.0
        for s in slots {
            switch s {
            case let .done(loss, mean, minimum):
                result.layers.append((loss, mean, minimum))
                result.loss += loss
                epsTotal += mean
            case let .failed(e): throw e
            case .pending: throw .invalidOption("ERC loss: a layer was not evaluated")
            }
        }
        result.epsMean = epsTotal / Double(max(1, layerCount))
        return result
    }

    enum LayerOutcome {
        case pending
        case done(loss: Double, epsMean: Double, epsMin: Double)
        case failed(TrainingError)
    }

    /// One layer: loss, eps, and (when asked) its gradient added into `gradients`.
    private func layer(
        _ l: Int, model: OlmoeNetwork, generator: SeededGenerator, weight: Double, gradients: FloatBuffer?,
        trainable: Set<ParameterGroup>
    ) -> LayerOutcome {
        let c = model.config, d = c.hiddenSize, D = c.intermediateSize, n = c.expertCount
        let W = model.parameters.pointer, o = model.layout.layers[l]
        let router = Tensor(shape: [n, d], storage: Array(UnsafeBufferPointer(start: W + o.router, count: n * d)))
        // W_g is read in place (expert e's rows at gateUp + e * 2 D d) and the gradients are
        // accumulated straight into the gradient buffer: ERC is memory-bound at this size.
        let eps: [Double]
        let loss: ERCLoss
        do {
            eps = try NoiseBound.compute(router: router, layer: l)
            let delta = noise ? NoiseBound.sampleNoise(eps: eps, dimension: d, generator: generator.split(UInt64(l))) : nil
            let g = weight != 0 ? gradients?.pointer : nil
            loss = try ERCGradient.accumulate(
                router: router, gate: W + o.gateUp, expertStride: 2 * D * d, intermediate: D,
                delta: delta, alpha: alpha, weight: Float(weight),
                routerGradient: trainable.contains(.router) ? g.map { $0 + o.router } : nil,
                gateGradient: trainable.contains(.gateProjection) ? g.map { $0 + o.gateUp } : nil)
        } catch {
            return .failed(.invalidOption("ERC loss of layer \(l): \(error.description)"))
        }
        let meanEps = eps.reduce(0, +) / Double(max(1, eps.count))
        return .done(loss: loss.total, epsMean: meanEps, epsMin: eps.min() ?? .nan)
    }
}
