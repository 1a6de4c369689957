import Foundation
import Tensors

/// Root-mean-square normalisation as transformers' `*RMSNorm`:
/// `y = w * (x / sqrt(mean(x^2) + eps))` per row, in Float32.
enum RMSNorm {
    /// Normalises `rows` rows of `dim` elements (row strides `xStride`, `yStride`); `y` may alias `x`.
    static func forward(
        x: UnsafePointer<Float>, xStride: Int, rows: Int, dim: Int, weight: UnsafePointer<Float>,
        eps: Float, y: UnsafeMutablePointer<Float>, yStride: Int
    ) {
        let xs = UnsafeShared(x), ys = UnsafeShared(y), w = UnsafeShared(weight)
        Parallel.forRows(rows, rowCost: dim) { _, range in
            for t in range {
                let xr = xs.value + t * xStride, yr = ys.value + t * yStride
                let ss = VectorMath.dot(xr, xr, dim)
                let r = 1 / (ss / Float(dim) + eps).squareRoot()
                for j in 0..<dim { yr[j] = w.value[j] * (xr[j] * r) }
            }
        }
    }
}

/// Rotary position embeddings: angle = position * inv_freq[i] (Float32, as transformers
/// computes it; `inv_freq` from the `RopeSpec`, scaled or not), cos and sin times the scaling's
/// attention factor, and each pair `(a, b) -> (a cos - b sin, b cos + a sin)`. The pairs are the
/// two halves of the rotated dimensions (`rotate_half`), or adjacent elements (DeepSeek's
/// interleaved layout).
struct RotaryTable: Sendable {
    let length: Int, half: Int
    let cos: [Float], sin: [Float]

    /// The table of `spec` for windows of `length` positions (dynamic and longrope scaling
    /// depend on it).
    init(_ spec: RopeSpec, length: Int) {
        half = spec.dim / 2
        self.length = length
        let (invFreq, attentionFactor) = spec.frequencies(sequenceLength: length)
        var c = [Float](repeating: 0, count: length * half), s = c
        for i in 0..<half {
            for p in 0..<length {
                let angle = Float(p) * invFreq[i]
                c[p * half + i] = Foundation.cos(angle) * attentionFactor
                s[p * half + i] = Foundation.sin(angle) * attentionFactor
            }
        }
        cos = c; sin = s
    }

    /// Rotates, in place, `heads` heads of every row: head h's rotated dimensions start at
    /// `x + t * rowStride + h * headStride + offset`. Row t has position `t % sequenceLength`.
    func apply(
        _ x: UnsafeMutablePointer<Float>, rows: Int, rowStride: Int, heads: Int, headStride: Int, offset: Int,
        sequenceLength: Int, interleaved: Bool
    ) {
        let xs = UnsafeShared(x), h = half
        cos.withUnsafeBufferPointer { cb in
            sin.withUnsafeBufferPointer { sb in
                guard let cbase = cb.baseAddress, let sbase = sb.baseAddress else { return }
                let cp = UnsafeShared(cbase), sp = UnsafeShared(sbase)
                Parallel.forRows(rows, rowCost: heads * 2 * h) { _, range in
                    for t in range {
                        let pos = t % sequenceLength
                        let c = cp.value + pos * h, s = sp.value + pos * h
                        for head in 0..<heads {
                            let base = xs.value + t * rowStride + head * headStride + offset
                            if interleaved {
                                for i in 0..<h {
                                    let x1 = base[2 * i], x2 = base[2 * i + 1]
                                    base[2 * i] = x1 * c[i] - x2 * s[i]
                                    base[2 * i + 1] = x2 * c[i] + x1 * s[i]
                                }
                            } else {
                                let b = base + h
                                for i in 0..<h {
                                    let x1 = base[i], x2 = b[i]
                                    base[i] = x1 * c[i] - x2 * s[i]
                                    b[i] = x2 * c[i] + x1 * s[i]
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
