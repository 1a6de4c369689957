import Foundation
import Tensors

/// Rotary position embeddings as transformers computes them for `rope_type: default`:
/// `inv_freq[i] = 1 / theta^(2i / headDim)` (Float32), angle = position * inv_freq, and
/// `x' = x * cos + rotate_half(x) * sin` with `rotate_half([a, b]) = [-b, a]` over the two
/// halves of each head.
struct RotaryTable: Sendable {
    /// Positions covered.
    let length: Int
    /// Half the head size.
    let half: Int
    /// cos and sin of angle [length, half].
    let cos: [Float], sin: [Float]

    init(theta: Double, headDim: Int, length: Int) {
        half = headDim / 2
        self.length = length
        var c = [Float](repeating: 0, count: length * half), s = c
        for i in 0..<half {
            let exponent = Float(2 * i) / Float(headDim)
            let invFreq: Float = 1 / Foundation.pow(Float(theta), exponent)
            for p in 0..<length {
                let angle = Float(p) * invFreq
                c[p * half + i] = Foundation.cos(angle)
                s[p * half + i] = Foundation.sin(angle)
            }
        }
        cos = c; sin = s
    }

    /// Rotates `heads` heads of every row in place; row t has position `t % sequenceLength`.
    /// `inverse` applies the transpose (the backward pass): `[a, b] -> [a c + b s, b c - a s]`.
    func apply(_ x: UnsafeMutablePointer<Float>, rows: Int, rowStride: Int, heads: Int, sequenceLength: Int, inverse: Bool) {
        let xs = UnsafeShared(x)
        let h = half
        cos.withUnsafeBufferPointer { cb in
            sin.withUnsafeBufferPointer { sb in
                let cp = UnsafeShared(UnsafeMutablePointer(mutating: cb.baseAddress!))
                let sp = UnsafeShared(UnsafeMutablePointer(mutating: sb.baseAddress!))
                Parallel.forRows(rows, rowCost: heads * 2 * h) { _, range in
                    for t in range {
                        let pos = t % sequenceLength
                        let c = cp.value + pos * h, s = sp.value + pos * h
                        for head in 0..<heads {
                            let a = xs.value + t * rowStride + head * 2 * h, b = a + h
                            if inverse {
                                for i in 0..<h {
                                    let x1 = a[i], x2 = b[i]
                                    a[i] = x1 * c[i] + x2 * s[i]
                                    b[i] = x2 * c[i] - x1 * s[i]
                                }
                            } else {
                                for i in 0..<h {
                                    let x1 = a[i], x2 = b[i]
                                    a[i] = x1 * c[i] - x2 * s[i]
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
