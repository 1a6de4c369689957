import Foundation
import Tensors

/// The loss terms of one forward pass, each as its own number (unweighted).
public struct LossBreakdown: Sendable, Equatable {
    /// Mean next-token cross-entropy over the positions with a target.
    public var languageModel: Double
    /// transformers' `load_balancing_loss_func` over all layers (k when perfectly balanced).
    public var loadBalancing: Double
    /// Router z-loss: mean over layers and tokens of logsumexp(router logits)^2.
    public var routerZ: Double
    /// Positions that had a target.
    public var targetCount: Int

    public init(languageModel: Double = 0, loadBalancing: Double = 0, routerZ: Double = 0, targetCount: Int = 0) {
        self.languageModel = languageModel
        self.loadBalancing = loadBalancing
        self.routerZ = routerZ
        self.targetCount = targetCount
    }

    /// `lm + lbWeight * lb + zWeight * z`.
    public func total(lbWeight: Double, zWeight: Double) -> Double { languageModel + lbWeight * loadBalancing + zWeight * routerZ }
}

/// Next-token cross-entropy, as transformers' `ForCausalLMLoss` (mean over targets, ignored
/// positions have target -1).
enum CrossEntropy {
    /// Mean loss over rows with `targets[t] >= 0`; replaces `logits` [T, V] by
    /// `scale * dL/dlogits` = `scale * (softmax - onehot) / count` (zero on ignored rows).
    static func lossAndGradient(
        logits: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>, rows: Int, vocabulary V: Int,
        scale: Float, computeGradient: Bool
    ) -> (loss: Double, count: Int) {
        var count = 0
        for t in 0..<rows where targets[t] >= 0 { count += 1 }
        guard count > 0 else {
            if computeGradient { logits.update(repeating: 0, count: rows * V) }
            return (0, 0)
        }
        let chunks = Parallel.chunkCount(rows, rowCost: V)
        var partial = [Double](repeating: 0, count: chunks)
        let lg = UnsafeShared(logits), tg = UnsafeShared(UnsafeMutablePointer(mutating: targets))
        let g = scale / Float(count)
        partial.withUnsafeMutableBufferPointer { pb in
            let part = UnsafeShared(pb.baseAddress!)
            Parallel.forRows(rows, rowCost: V) { c, range in
                var acc = 0.0
                for t in range {
                    let l = lg.value + t * V, y = Int(tg.value[t])
                    if y < 0 {
                        if computeGradient { l.update(repeating: 0, count: V) }
                        continue
                    }
                    let lse = VectorMath.logSumExp(l, V)
                    acc += Double(lse - l[y])
                    if computeGradient {
                        VectorMath.expShifted(l, V, shift: lse, scale: g)
                        l[y] -= g
                    }
                }
                part.value[c] = acc
            }
        }
        return (partial.reduce(0, +) / Double(count), count)
    }
}

/// The router losses over all MoE layers of one forward pass.
enum RouterLosses {
    /// transformers' load-balancing loss over all layers' router logits concatenated along
    /// tokens: `n * sum_e f_e P_e` with `f_e` = top-k slots choosing e / rows and `P_e` = mean
    /// probability of e, rows = layers * T. Returns the loss and `c_e = n f_e / rows`, the
    /// derivative of the loss by each probability p[t, e] (f is not differentiated, as in
    /// transformers where it comes from `topk` and `histc`).
    static func loadBalancing(_ layers: [LayerActivations], tokens T: Int, experts n: Int, topK k: Int) -> (loss: Double, dProbability: [Double]) {
        var counts = [Double](repeating: 0, count: n)
        var probSum = [Double](repeating: 0, count: n)
        for a in layers {
            for i in 0..<(T * k) { counts[Int(a.topExpert.pointer[i])] += 1 }
            var colSum = [Float](repeating: 0, count: n)
            for t in 0..<T {
                let p = a.routerProbabilities.pointer + t * n
                for e in 0..<n { colSum[e] += p[e] }
            }
            for e in 0..<n { probSum[e] += Double(colSum[e]) }
        }
        let rows = Double(layers.count * T)
        var loss = 0.0
        var grad = [Double](repeating: 0, count: n)
        for e in 0..<n {
            let f = counts[e] / rows, P = probSum[e] / rows
            loss += f * P
            grad[e] = Double(n) * f / rows
        }
        return (Double(n) * loss, grad)
    }

    /// Router z-loss: mean over layers and tokens of `logsumexp(logits)^2` (the per-layer
    /// means of megablocks' `batched_router_zloss`, summed and divided by the layer count, as
    /// OLMo does). Its derivative by logit[t, e] is `2 lse_t p[t, e] / (layers * T)`.
    static func zLoss(_ layers: [LayerActivations], tokens T: Int) -> Double {
        var total = 0.0
        for a in layers {
            var s = 0.0
            for t in 0..<T { let v = Double(a.logSumExp.pointer[t]); s += v * v }
            total += s / Double(T)
        }
        return layers.isEmpty ? 0 : total / Double(layers.count)
    }
}

extension OlmoeNetwork {
    /// One forward and backward pass over a batch: the loss terms, with
    /// `scale * d(lm + lbWeight lb + zWeight z)/d(parameter)` added to `gradients` for the
    /// groups in `trainable`.
    ///
    /// - Parameters:
    ///   - workspace: holds `tokens` [batch, length] on entry.
    ///   - targets: next token for each position, -1 where there is none [batch * length].
    ///   - gradients: nil for a forward pass only (evaluation).
    ///   - precision: bf16 multiplies BF16 copies in the projections (`ws` must have them).
    func forwardBackward(
        _ ws: ModelWorkspace, targets: UnsafePointer<Int32>, lbWeight: Double, zWeight: Double, scale: Double,
        gradients: FloatBuffer?, trainable: Set<ParameterGroup>, precision: TrainingPrecision = .fp32
    ) -> LossBreakdown {
        forward(ws, precision: precision)
        let c = config, T = ws.tokenCount
        let ce = CrossEntropy.lossAndGradient(
            logits: ws.logits.pointer, targets: targets, rows: T, vocabulary: c.vocabularySize,
            scale: Float(scale), computeGradient: gradients != nil)
        let lb = RouterLosses.loadBalancing(ws.layers, tokens: T, experts: c.expertCount, topK: c.topK)
        let z = RouterLosses.zLoss(ws.layers, tokens: T)
        if let gradients {
            let lbSeed = lb.dProbability.map { Float($0 * lbWeight * scale) }
            let zScale = Float(zWeight * scale / Double(c.layerCount * T))
            backward(ws, gradients: gradients, trainable: trainable, lbPerExpert: lbSeed, zScale: zScale, precision: precision)
        }
        return LossBreakdown(languageModel: ce.loss, loadBalancing: lb.loss, routerZ: z, targetCount: ce.count)
    }
}
