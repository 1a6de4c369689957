import Foundation
import Tensors

#if arch(x86_64) && canImport(_Builtin_intrinsics)
import _Builtin_intrinsics.intel
#endif

/// The update rule.
public enum OptimizerKind: String, Sendable, Codable, CaseIterable {
    /// torch.optim.AdamW: decoupled weight decay, bias-corrected moments.
    case adamw
    /// Plain SGD: `p -= lr * g`, no momentum, no weight decay.
    case sgd
}

/// AdamW exactly as `torch.optim.AdamW` (non-fused, non-amsgrad) or plain SGD, over the
/// tensors of the trainable groups of a flat parameter buffer.
///
/// AdamW, step t (1-based), per element:
///
///     p <- p (1 - lr wd)
///     m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2
///     p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
public final class Optimizer: @unchecked Sendable {
    public let kind: OptimizerKind
    public var beta1: Double, beta2: Double, epsilon: Double, weightDecay: Double
    /// First and second moments (AdamW only; empty buffers for SGD).
    public let firstMoment: FloatBuffer, secondMoment: FloatBuffer
    /// Updates taken so far.
    public var stepCount: Int = 0
    /// The element ranges updated (trainable tensors, merged when adjacent).
    let ranges: [Range<Int>]

    /// - Parameters:
    ///   - count: parameter count.
    ///   - ranges: element ranges to update; the rest stay frozen.
    public init(
        kind: OptimizerKind, count: Int, ranges: [Range<Int>], beta1: Double = 0.9, beta2: Double = 0.999,
        epsilon: Double = 1e-8, weightDecay: Double = 0.01
    ) {
        self.kind = kind
        self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon
        self.weightDecay = kind == .sgd ? 0 : weightDecay
        firstMoment = FloatBuffer(count: kind == .adamw ? count : 0)
        secondMoment = FloatBuffer(count: kind == .adamw ? count : 0)
        var merged: [Range<Int>] = []
        for r in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) where !r.isEmpty {
            if let last = merged.last, last.upperBound >= r.lowerBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound)
            } else {
                merged.append(r)
            }
        }
        self.ranges = merged
    }

    /// Applies one update with learning rate `lr` to `parameters` from `gradients`.
    public func step(parameters: FloatBuffer, gradients: FloatBuffer, learningRate lr: Double) {
        stepCount += 1
        let p = UnsafeShared(parameters.pointer), g = UnsafeShared(gradients.pointer)
        switch kind {
        case .sgd:
            let a = Float(lr)
            for r in ranges {
                Parallel.forRows(r.count, rowCost: 1) { _, sub in
                    for i in (r.lowerBound + sub.lowerBound)..<(r.lowerBound + sub.upperBound) { p.value[i] -= a * g.value[i] }
                }
            }
        case .adamw:
            let m = UnsafeShared(firstMoment.pointer), v = UnsafeShared(secondMoment.pointer)
            let t = Double(stepCount)
            let b1 = Float(beta1), b2 = Float(beta2), eps = Float(epsilon)
            let decay = Float(1 - lr * weightDecay)
            let bc1 = 1 - Foundation.pow(beta1, t), bc2 = 1 - Foundation.pow(beta2, t)
            let stepSize = Float(lr / bc1)
            let bc2Sqrt = Float(bc2.squareRoot())
            for r in ranges {
                Parallel.forRows(r.count, rowCost: 4) { _, sub in
                    AdamW.update(
                        p: p.value, g: g.value, m: m.value, v: v.value, range: (r.lowerBound + sub.lowerBound)..<(r.lowerBound + sub.upperBound),
                        decay: decay, beta1: b1, beta2: b2, bc2Sqrt: bc2Sqrt, eps: eps, stepSize: stepSize)
                }
            }
        }
    }
}

/// Global gradient-norm clipping over the trainable ranges (as
/// `torch.nn.utils.clip_grad_norm_`: scale by `max / (norm + 1e-6)` when norm > max).
enum GradientClipping {
    /// The L2 norm of the gradient over `ranges`, accumulated in Double over fixed chunks.
    static func norm(_ g: FloatBuffer, ranges: [Range<Int>]) -> Double {
        var total = 0.0
        for r in ranges {
            let chunks = Parallel.chunkCount(r.count, rowCost: 1)
            var part = [Double](repeating: 0, count: chunks)
            let gp = UnsafeShared(g.pointer)
            part.withUnsafeMutableBufferPointer { pb in
                let pp = UnsafeShared(pb.baseAddress!)
                Parallel.forRows(r.count, rowCost: 1) { c, sub in
                    // 16 Float lanes over runs of 1024 elements, each run's lanes summed into Double
                    var s: Double = 0
                    var i = r.lowerBound + sub.lowerBound
                    let end = r.lowerBound + sub.upperBound
                    while i < end {
                        let runEnd = min(end, i + 1024)
                        var acc = VectorMath.V()
                        while i + VectorMath.width <= runEnd {
                            let x = VectorMath.load(gp.value + i)
                            acc = acc + x * x
                            i += VectorMath.width
                        }
                        if i < runEnd {
                            let x = VectorMath.loadPartial(gp.value + i, runEnd - i)
                            acc = acc + x * x
                            i = runEnd
                        }
                        s += Double(VectorMath.sum(acc))
                    }
                    pp.value[c] = s
                }
            }
            total += part.reduce(0, +)
        }
        return total.squareRoot()
    }

    /// Scales the gradient so its norm is at most `maxNorm`; returns the norm before.
    static func clip(_ g: FloatBuffer, ranges: [Range<Int>], maxNorm: Double) -> Double {
        let n = norm(g, ranges: ranges)
        guard maxNorm > 0, n > maxNorm else { return n }
        let s = Float(maxNorm / (n + 1e-6))
        let gp = UnsafeShared(g.pointer)
        for r in ranges {
            Parallel.forRows(r.count, rowCost: 1) { _, sub in
                for i in (r.lowerBound + sub.lowerBound)..<(r.lowerBound + sub.upperBound) { gp.value[i] *= s }
            }
        }
        return n
    }
}

/// The AdamW element update, four lanes at a time on x86-64 (the compiler does not vectorise
/// a loop with a square root). Each lane does the same IEEE operations in the same order as
/// the scalar tail, so the bits do not depend on where a range starts.
enum AdamW {
    static func update(
        p: UnsafeMutablePointer<Float>, g: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>,
        v: UnsafeMutablePointer<Float>, range: Range<Int>, decay: Float, beta1 b1: Float, beta2 b2: Float,
        bc2Sqrt: Float, eps: Float, stepSize: Float
    ) {
        var i = range.lowerBound
        let end = range.upperBound
        let oneMinusB1 = 1 - b1, oneMinusB2 = 1 - b2
        #if arch(x86_64) && canImport(_Builtin_intrinsics)
        let vDecay = _mm_set1_ps(decay), vB2 = _mm_set1_ps(b2), v1B1 = _mm_set1_ps(oneMinusB1), v1B2 = _mm_set1_ps(oneMinusB2)
        let vBc = _mm_set1_ps(bc2Sqrt), vEps = _mm_set1_ps(eps), vStep = _mm_set1_ps(stepSize)
        while i + 4 <= end {
            let gi = _mm_loadu_ps(g + i)
            let pi = _mm_mul_ps(_mm_loadu_ps(p + i), vDecay)
            let m0 = _mm_loadu_ps(m + i)
            let mi = _mm_add_ps(m0, _mm_mul_ps(_mm_sub_ps(gi, m0), v1B1))
            let vi = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(v + i), vB2), _mm_mul_ps(_mm_mul_ps(v1B2, gi), gi))
            _mm_storeu_ps(m + i, mi)
            _mm_storeu_ps(v + i, vi)
            let denom = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vi), vBc), vEps)
            _mm_storeu_ps(p + i, _mm_sub_ps(pi, _mm_mul_ps(vStep, _mm_div_ps(mi, denom))))
            i += 4
        }
        #endif
        while i < end {
            let gi = g[i]
            p[i] *= decay
            // torch: exp_avg.lerp_(grad, 1 - beta1); exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
            m[i] = m[i] + (gi - m[i]) * oneMinusB1
            v[i] = v[i] * b2 + oneMinusB2 * gi * gi
            let denom = v[i].squareRoot() / bc2Sqrt + eps
            p[i] -= stepSize * (m[i] / denom)
            i += 1
        }
    }
}
