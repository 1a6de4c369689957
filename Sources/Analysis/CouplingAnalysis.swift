import Checkpoints
import Foundation
import MoELayout
import Tensors

/// What to compute for each MoE layer.
public struct CouplingOptions: Sendable {
    /// ERC alphas to evaluate (the paper: 1 at n = 64, 0.5 at n = 256).
    public var alphas: [Double] = [1]
    /// The probe feature (default: the gate projection, as in the paper).
    public var feature: ProbeFeature = .gate
    /// Multiplicative noise on the proxies (on by default, as in training).
    public var noise: Bool = true
    /// Noise samples to average over.
    public var samples: Int = 1
    /// Seed of the noise; the same seed gives the same numbers on any thread count.
    public var seed: UInt64 = 0
    /// Decoder layers to analyse (nil: every MoE layer).
    public var layers: LayerSelection? = nil

    public init(alphas: [Double] = [1], feature: ProbeFeature = .gate, noise: Bool = true, samples: Int = 1, seed: UInt64 = 0, layers: LayerSelection? = nil) {
        self.alphas = alphas; self.feature = feature; self.noise = noise; self.samples = samples; self.seed = seed; self.layers = layers
    }
}

/// Mean and standard deviation over noise samples (std 0 for one sample or no noise).
public struct Estimate: Sendable, Equatable {
    public var mean: Double
    public var std: Double
    public init(_ values: [Double]) {
        let n = Double(max(values.count, 1))
        let mu = values.reduce(0, +) / n
        mean = mu
        std = values.count > 1 ? (values.map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / (n - 1)).squareRoot() : 0
    }
}

/// The ERC loss at one alpha.
public struct ERCLossAtAlpha: Sendable {
    public var alpha: Double
    public var loss: Estimate
    public var specialization: Estimate
    public var precision: Estimate
}

/// Everything measured on one MoE layer.
public struct LayerCoupling: Sendable {
    /// Decoder layer index.
    public var layer: Int
    /// Routed experts n.
    public var experts: Int
    /// `ok`, or why the layer could not be analysed.
    public var status: LayerStatus
    /// Noise bound eps_i per expert.
    public var eps: [Double] = []
    /// Router geometry (cosine similarity, norms).
    public var geometry: RouterGeometry?
    /// ERC loss per alpha.
    public var ercLosses: [ERCLossAtAlpha] = []
    /// Coupling threshold alpha* of the noise-free M.
    public var couplingAlpha: Double = .nan
    /// Mean of M's diagonal and off-diagonal entries (over samples when noisy).
    public var mDiagonalMean: Estimate = Estimate([.nan])
    public var mOffDiagonalMean: Estimate = Estimate([.nan])
    /// The noise-free activation matrix M [n, n].
    public var activation: Tensor?
    /// Seconds spent reading the layer and computing.
    public var readSeconds: Double = 0, computeSeconds: Double = 0

    public var isOK: Bool { status == .ok }

    /// An empty result for `layer` with `status` (`ok`, or why it could not be analysed).
    public init(layer: Int, experts: Int, status: LayerStatus = .ok) { self.layer = layer; self.experts = experts; self.status = status }
}

/// One checkpoint's coupling results, labelled for tables.
public struct CheckpointCoupling: Sendable {
    /// The checkpoint path as the user gave it.
    public var checkpoint: String
    /// Training step parsed from the path, if any.
    public var step: Int?
    /// Per-layer results.
    public var layers: [LayerCoupling]

    /// Results `layers` of the checkpoint at `checkpoint` (its step parsed from the path unless given).
    public init(checkpoint: String, step: Int?, layers: [LayerCoupling]) {
        self.checkpoint = checkpoint; self.step = step; self.layers = layers
    }
}

/// Runs the coupling analysis over a checkpoint, one layer at a time (memory: one layer's
/// expert weights as Float32).
public enum CouplingAnalysis {
    /// Analyses one layer from weights already in memory.
    public static func analyze(layer: Int, router: Tensor, stack: ExpertStack, options: CouplingOptions) -> LayerCoupling {
        var r = LayerCoupling(layer: layer, experts: router.rows)
        do throws(AnalysisError) {
            if router.hasNonFinite { throw .nonFinite(layer: layer, what: "router") }
            // The gate norms are needed anyway and are non-finite exactly when W_g holds NaN/Inf
            // (or overflows), which saves a separate pass over the largest tensor.
            let geometry = RouterGeometry(router: router, gate: stack.gate)
            if geometry.gateNorms.contains(where: { !$0.isFinite }) { throw .nonFinite(layer: layer, what: "an expert's gate projection") }
            for (w, name) in [(stack.up, "up projection"), (stack.down, "down projection")] {
                if let w, w.hasNonFinite { throw .nonFinite(layer: layer, what: "an expert's \(name)") }
            }
            let eps = try NoiseBound.compute(router: router, layer: layer)
            r.eps = eps
            r.geometry = geometry
            let (x, scale) = proxies(router: router, eps: eps, layer: layer, options: options)
            let all = try ActivationMatrix.compute(proxies: x, stack: stack, feature: options.feature)
            try summarize(all, experts: router.rows, scale: scale, layer: layer, options: options, into: &r)
        } catch {
            r.status = .failed(error)
        }
        return r
    }

    /// Analyses one layer whose experts' `feature` projection (gate or up) is read one expert at
    /// a time from `source` while the activation matrix is computed (`ProductNorms`): memory holds
    /// one expert per core instead of the layer's stack. Same measures as the in-memory path;
    /// the weights' NaN/Inf check comes from the same Frobenius norms, taken as they stream by
    /// (so a layer with both a zero router row and NaN weights reports the router row).
    static func analyzeStreamed(layer: Int, router: Tensor, source: ProductNorms.Source, options: CouplingOptions) -> LayerCoupling {
        var r = LayerCoupling(layer: layer, experts: router.rows)
        do throws(AnalysisError) {
            if router.hasNonFinite { throw .nonFinite(layer: layer, what: "router") }
            let eps = try NoiseBound.compute(router: router, layer: layer)
            let (x, scale) = proxies(router: router, eps: eps, layer: layer, options: options)
            let result: ProductNorms.Result
            do { result = try ProductNorms.compute(x: x, source: source) } catch {
                throw .unreadable(layer: layer, reason: "\(error)")
            }
            r.readSeconds = result.readSeconds
            let what = options.feature == .up ? "up projection" : "gate projection"
            if result.frobenius.contains(where: { !$0.isFinite }) { throw .nonFinite(layer: layer, what: "an expert's \(what)") }
            var geometry = RouterGeometry(router: router)
            if options.feature == .gate { geometry.gateNorms = result.frobenius }
            r.eps = eps
            r.geometry = geometry
            try summarize(result.norms, experts: router.rows, scale: scale, layer: layer, options: options, into: &r)
        } catch {
            r.status = .failed(error)
        }
        return r
    }

    /// X = [R; delta_1 * R; ...; delta_S * R]: the clean proxies and every noise sample, so that
    /// one product serves them all. The gate and up features are linear in R: the proxies use R
    /// scaled by a power of two to unit magnitude (returned as `scale`), so that routers of
    /// extreme (finite) magnitude neither overflow nor lose precision in Float32.
    static func proxies(router: Tensor, eps: [Double], layer: Int, options: CouplingOptions) -> (x: Tensor, scale: Double) {
        let n = router.rows, d = router.columns
        let samples = options.noise ? max(1, options.samples) : 0
        let scale = options.feature.isLinearInRouter ? RouterGeometry.powerOfTwoScale(router) : 1
        let scaled = scale == 1 ? router : Tensor(shape: router.shape, storage: router.storage.map { Float(Double($0) * scale) })
        var x = Tensor(shape: [(samples + 1) * n, d])
        x.storage.replaceSubrange(0..<(n * d), with: scaled.storage)
        let root = SeededGenerator(seed: options.seed).split(UInt64(layer))
        for s in 0..<samples {
            let delta = NoiseBound.sampleNoise(eps: eps, dimension: d, generator: root.split(UInt64(s)))
            let off = (s + 1) * n * d
            for k in 0..<(n * d) { x.storage[off + k] = scaled.storage[k] * delta.storage[k] }
        }
        return (x, scale)
    }

    /// The ERC measures of `all` = M for the rows of `proxies` (clean first, then each sample),
    /// computed with the router scaled by `scale`: M and the losses (homogeneous of degree 1 in
    /// M) are scaled back in Double; alpha* is a ratio, the same at any scale.
    static func summarize(
        _ all: Tensor, experts n: Int, scale: Double, layer: Int, options: CouplingOptions,
        into r: inout LayerCoupling
    ) throws(AnalysisError) {
        if all.hasNonFinite {
            throw .nonFinite(layer: layer, what: "M (the weights' magnitudes overflow Float32 in the \(options.feature.rawValue) feature)")
        }
        let samples = options.noise ? max(1, options.samples) : 0
        let clean = all.rows(0..<n)
        let unscale = 1 / scale
        r.activation = scale == 1 ? clean : Tensor(shape: clean.shape, storage: clean.storage.map { Float(Double($0) * unscale) })
        r.couplingAlpha = ERCLoss.couplingThreshold(clean)
        let used: [Tensor] = samples == 0 ? [clean] : (1...samples).map { all.rows(($0 * n)..<(($0 + 1) * n)) }
        r.mDiagonalMean = Estimate(used.map { m in unscale * (0..<n).reduce(0.0) { $0 + Double(m[$1, $1]) } / Double(n) })
        r.mOffDiagonalMean = Estimate(
            used.map { m in
                var s = 0.0
                for i in 0..<n { for j in 0..<n where i != j { s += Double(m[i, j]) } }
                return unscale * s / Double(n * (n - 1))
            })
        r.ercLosses = options.alphas.map { a in
            let losses = used.map { ERCLoss(activation: $0, alpha: a) }
            return ERCLossAtAlpha(
                alpha: a, loss: Estimate(losses.map { $0.total * unscale }),
                specialization: Estimate(losses.map { $0.specialization * unscale }),
                precision: Estimate(losses.map { $0.precision * unscale }))
        }
    }

    /// Whether per-expert layouts stream expert by expert (true; `MOE_INSPECT_STREAM=0` loads
    /// each layer's whole stack first, as before, for comparisons).
    static let streamLayers = ProcessInfo.processInfo.environment["MOE_INSPECT_STREAM"] != "0"

    /// Analyses every selected MoE layer of `model`, reading one layer at a time, calling
    /// `each` with each layer's result as soon as it is ready.
    public static func analyze(
        _ model: MoECheckpoint, options: CouplingOptions,
        each: (LayerCoupling) -> Void = { _ in }
    ) -> [LayerCoupling] {
        var results: [LayerCoupling] = []
        // One buffer per projection, reused from layer to layer: fresh 0.5 GB allocations per
        // layer cost more in page faults than the decoding itself.
        var buffers: [Projection: Tensor] = [:]
        func load(_ layer: MoELayer, _ p: Projection) throws(CheckpointError) -> Tensor {
            let shape = [layer.expertCount] + model.projectionShape(layer, p)
            var t = buffers.removeValue(forKey: p) ?? Tensor(shape: shape)
            if t.shape != shape { t = Tensor(shape: shape) }
            try t.storage.withUnsafeMutableBufferPointer { b throws(CheckpointError) in try model.readExpertWeights(layer, p, into: b) }
            return t
        }
        for layer in model.moeLayers where options.layers?.contains(layer.index) ?? true {
            let t0 = Date()
            var result: LayerCoupling
            // The paper's feature (and the up projection) of per-expert layouts streams expert by
            // expert; the others need the whole stack in memory.
            let streamed: ProductNorms.Source? =
                switch options.feature {
                case .gate: model.expertSource(layer, .gate)
                case .up: model.expertSource(layer, .up)
                default: nil
                }
            if let source = streamed, streamLayers {
                do {
                    let router = try model.routerWeight(layer)
                    result = analyzeStreamed(layer: layer.index, router: router, source: source, options: options)
                    result.computeSeconds = Date().timeIntervalSince(t0) - result.readSeconds
                } catch {
                    result = LayerCoupling(layer: layer.index, experts: layer.expertCount, status: .failed(.unreadable(layer: layer.index, reason: "\(error)")))
                }
                each(result)
                results.append(result)
                continue
            }
            do {
                let router = try model.routerWeight(layer)
                let f = options.feature
                let gate = f.needsGate ? try load(layer, .gate) : nil
                let up = f.needsUp ? try load(layer, .up) : nil
                let down = f.needsDown ? try load(layer, .down) : nil
                defer {
                    if let gate { buffers[.gate] = gate }
                    if let up { buffers[.up] = up }
                    if let down { buffers[.down] = down }
                }
                let t1 = Date()
                let stack = ExpertStack(
                    gate: gate, up: up, down: down, experts: layer.expertCount,
                    intermediate: layer.intermediateSize, hidden: layer.hiddenSize)
                result = analyze(layer: layer.index, router: router, stack: stack, options: options)
                result.readSeconds = t1.timeIntervalSince(t0)
                result.computeSeconds = Date().timeIntervalSince(t1)
            } catch {
                result = LayerCoupling(layer: layer.index, experts: layer.expertCount, status: .failed(.unreadable(layer: layer.index, reason: "\(error)")))
            }
            each(result)
            results.append(result)
        }
        return results
    }

    /// Analyses every selected MoE layer of the checkpoint `model` opened from `path`.
    /// - Throws: `LayoutError` when it has no MoE layer or the selection names one that is not;
    ///   a layer that cannot be analysed gets a status instead.
    public static func analyze(
        _ model: MoECheckpoint, path: String, options: CouplingOptions,
        each: (LayerCoupling) -> Void = { _ in }
    ) throws(LayoutError) -> CheckpointCoupling {
        _ = try model.moeLayers(in: options.layers)
        return CheckpointCoupling(checkpoint: path, step: step(fromPath: path), layers: analyze(model, options: options, each: each))
    }

    /// The router geometry alone (cosine similarity and norms) of every selected MoE layer:
    /// reads only the routers, so it is cheap on any checkpoint.
    /// - Throws: `LayoutError` when the checkpoint has no MoE layer or the selection names one
    ///   that is not.
    public static func routerGeometry(_ model: MoECheckpoint, layers selection: LayerSelection?) throws(LayoutError) -> [LayerCoupling] {
        try model.moeLayers(in: selection).map { layer in
            var result = LayerCoupling(layer: layer.index, experts: layer.expertCount)
            do throws(AnalysisError) {
                let router: Tensor
                do { router = try model.routerWeight(layer) } catch { throw .unreadable(layer: layer.index, reason: "\(error)") }
                if router.hasNonFinite { throw .nonFinite(layer: layer.index, what: "router") }
                let geometry = RouterGeometry(router: router)
                if let zero = geometry.routerNorms.firstIndex(of: 0) { throw .zeroRouterRow(layer: layer.index, row: zero) }
                result.geometry = geometry
            } catch {
                result.status = .failed(error)
            }
            return result
        }
    }

    /// The training step in a checkpoint path (`.../step1000/...` -> 1000), if any.
    public static func step(fromPath path: String) -> Int? {
        let parts = path.split(separator: "/").reversed()
        for p in parts {
            let s = p.lowercased()
            for prefix in ["step", "global_step", "checkpoint-", "iter_", "ckpt"] where s.hasPrefix(prefix) {
                let digits = s.dropFirst(prefix.count).drop { $0 == "_" || $0 == "-" }.prefix { $0.isNumber }
                if !digits.isEmpty, let v = Int(digits) { return v }
            }
        }
        return nil
    }
}
