import Foundation
import Tensors

/// Activations and sizes shared by the attention blocks of one forward pass.
struct AttentionContext {
    /// Windows and their length: T = batch * length tokens.
    let batch: Int, length: Int
    let hidden: Int
    let rope: RotaryTable
    let ropeSpec: RopeSpec
    let rmsNormEpsilon: Float
    /// Reused buffers.
    let scratch: Scratch
    var tokens: Int { batch * length }
}

extension StandardAttentionWeights {
    /// `output` [T, d] = attention(`input` [T, d]) for grouped-query attention.
    func forward(
        input h: UnsafePointer<Float>, spec a: StandardAttentionSpec, window: Int?, context c: AttentionContext,
        output: UnsafeMutablePointer<Float>
    ) {
        let T = c.tokens, d = c.hidden, hd = a.headDim, qd = a.heads * hd, kd = a.keyValueHeads * hd
        let S = c.scratch
        let q = S(.query, T * qd), k = S(.key, T * kd), v = S(.value, T * kd), o = S(.output, T * qd)
        withPointers([query, key, value, self.output]) { w in
            ParallelGEMM.batch([
                .init(transB: true, m: T, n: qd, k: d, a: h, lda: d, b: w[0], ldb: d, c: q, ldc: qd),
                .init(transB: true, m: T, n: kd, k: d, a: h, lda: d, b: w[1], ldb: d, c: k, ldc: kd),
                .init(transB: true, m: T, n: kd, k: d, a: h, lda: d, b: w[2], ldb: d, c: v, ldc: kd),
            ])
        }
        for (b, buf, cols) in [(queryBias, q, qd), (keyBias, k, kd), (valueBias, v, kd)] {
            if let b { b.storage.withUnsafeBufferPointer { bp in if let p = bp.baseAddress { addBias(buf, rows: T, cols: cols, stride: cols, bias: p) } } }
        }
        if let qn = queryNorm, let kn = keyNorm {
            withPointers([qn, kn]) { w in
                switch a.qkNorm {
                case .wholeProjection:
                    RMSNorm.forward(x: q, xStride: qd, rows: T, dim: qd, weight: w[0], eps: c.rmsNormEpsilon, y: q, yStride: qd)
                    RMSNorm.forward(x: k, xStride: kd, rows: T, dim: kd, weight: w[1], eps: c.rmsNormEpsilon, y: k, yStride: kd)
                case .perHead:
                    RMSNorm.forward(x: q, xStride: hd, rows: T * a.heads, dim: hd, weight: w[0], eps: c.rmsNormEpsilon, y: q, yStride: hd)
                    RMSNorm.forward(x: k, xStride: hd, rows: T * a.keyValueHeads, dim: hd, weight: w[1], eps: c.rmsNormEpsilon, y: k, yStride: hd)
                case .none: break
                }
            }
        }
        if let clip = a.clip {
            for (buf, n) in [(q, T * qd), (k, T * kd), (v, T * kd)] {
                let p = UnsafeShared(buf)
                Parallel.forRows(n, rowCost: 1) { _, r in for i in r { p.value[i] = min(max(p.value[i], -clip), clip) } }
            }
        }
        c.rope.apply(q, rows: T, rowStride: qd, heads: a.heads, headStride: hd, offset: 0, sequenceLength: c.length, interleaved: c.ropeSpec.interleaved)
        c.rope.apply(
            k, rows: T, rowStride: kd, heads: a.keyValueHeads, headStride: hd, offset: 0, sequenceLength: c.length, interleaved: c.ropeSpec.interleaved)
        let attention = CausalAttention(
            batch: c.batch, length: c.length, heads: a.heads, keyValueHeads: a.keyValueHeads,
            queryKeyDim: hd, valueDim: hd, scale: Float(Foundation.pow(Double(hd), -0.5)), window: window)
        attention.forward(
            query: q, qStride: qd, key: k, kStride: kd, value: v, vStride: kd, output: o, outStride: qd, scratch: S(.scores, attention.scratchCount))
        withPointers([self.output]) { w in
            ParallelGEMM.gemm(transB: true, m: T, n: d, k: qd, a: o, lda: qd, b: w[0], ldb: qd, c: output, ldc: d)
        }
        if let ob = outputBias {
            ob.storage.withUnsafeBufferPointer { bp in if let p = bp.baseAddress { addBias(output, rows: T, cols: d, stride: d, bias: p) } }
        }
    }

}

extension LatentAttentionWeights {
    /// transformers builds `q_a_layernorm` and `kv_a_layernorm` with the RMSNorm's default epsilon.
    static let latentNormEpsilon: Float = 1e-6

    /// `output` [T, d] = multi-head latent attention(`input` [T, d]).
    func forward(
        input h: UnsafePointer<Float>, spec a: LatentAttentionSpec, context c: AttentionContext,
        output: UnsafeMutablePointer<Float>
    ) {
        let T = c.tokens, d = c.hidden, H = a.heads, dqk = a.queryKeyDim, nope = a.noPositionDim, rope = a.ropeDim, dv = a.valueDim
        let r = a.keyValueRank, qd = H * dqk, kvw = H * (nope + dv)
        let eps = LatentAttentionWeights.latentNormEpsilon
        let S = c.scratch
        let q = S(.query, T * qd)
        if let rq = a.queryRank, let down = queryDown, let norm = queryNorm, let upW = queryUp {
            let qa = S(.queryLatent, T * rq)
            withPointers([down, norm, upW]) { w in
                ParallelGEMM.gemm(transB: true, m: T, n: rq, k: d, a: h, lda: d, b: w[0], ldb: d, c: qa, ldc: rq)
                if let b = queryDownBias {
                    b.storage.withUnsafeBufferPointer { bp in if let p = bp.baseAddress { addBias(qa, rows: T, cols: rq, stride: rq, bias: p) } }
                }
                RMSNorm.forward(x: qa, xStride: rq, rows: T, dim: rq, weight: w[1], eps: eps, y: qa, yStride: rq)
                ParallelGEMM.gemm(transB: true, m: T, n: qd, k: rq, a: qa, lda: rq, b: w[2], ldb: rq, c: q, ldc: qd)
            }
        } else if let full = query {
            withPointers([full]) { w in ParallelGEMM.gemm(transB: true, m: T, n: qd, k: d, a: h, lda: d, b: w[0], ldb: d, c: q, ldc: qd) }
        }
        let ckv = S(.keyValueLatent, T * (r + rope)), latent = S(.latent, T * r), kv = S(.keyValue, T * kvw)
        withPointers([keyValueDown, keyValueNorm, keyValueUp]) { w in
            ParallelGEMM.gemm(transB: true, m: T, n: r + rope, k: d, a: h, lda: d, b: w[0], ldb: d, c: ckv, ldc: r + rope)
            if let b = keyValueDownBias {
                b.storage.withUnsafeBufferPointer { bp in if let p = bp.baseAddress { addBias(ckv, rows: T, cols: r + rope, stride: r + rope, bias: p) } }
            }
            RMSNorm.forward(x: ckv, xStride: r + rope, rows: T, dim: r, weight: w[1], eps: eps, y: latent, yStride: r)
            ParallelGEMM.gemm(transB: true, m: T, n: kvw, k: r, a: latent, lda: r, b: w[2], ldb: r, c: kv, ldc: kvw)
        }
        // decoupled RoPE: the last `rope` dimensions of each query head, and the one shared key
        c.rope.apply(q, rows: T, rowStride: qd, heads: H, headStride: dqk, offset: nope, sequenceLength: c.length, interleaved: c.ropeSpec.interleaved)
        c.rope.apply(ckv, rows: T, rowStride: r + rope, heads: 1, headStride: 0, offset: r, sequenceLength: c.length, interleaved: c.ropeSpec.interleaved)
        let k = S(.key, T * qd), v = S(.value, T * H * dv), o = S(.output, T * H * dv)
        let kp = UnsafeShared(k), vp = UnsafeShared(v), kvp = UnsafeShared(kv), cp = UnsafeShared(ckv)
        Parallel.forRows(T, rowCost: kvw) { _, range in
            for t in range {
                for head in 0..<H {
                    let src = kvp.value + t * kvw + head * (nope + dv), kr = kp.value + t * qd + head * dqk
                    kr.update(from: src, count: nope)
                    (kr + nope).update(from: cp.value + t * (r + rope) + r, count: rope)
                    (vp.value + t * H * dv + head * dv).update(from: src + nope, count: dv)
                }
            }
        }
        let attention = CausalAttention(
            batch: c.batch, length: c.length, heads: H, keyValueHeads: H, queryKeyDim: dqk, valueDim: dv,
            scale: a.softmaxScale, window: nil)
        attention.forward(
            query: q, qStride: qd, key: k, kStride: qd, value: v, vStride: H * dv, output: o, outStride: H * dv, scratch: S(.scores, attention.scratchCount))
        withPointers([self.output]) { w in
            ParallelGEMM.gemm(transB: true, m: T, n: d, k: H * dv, a: o, lda: H * dv, b: w[0], ldb: H * dv, c: output, ldc: d)
        }
        if let ob = outputBias {
            ob.storage.withUnsafeBufferPointer { bp in if let p = bp.baseAddress { addBias(output, rows: T, cols: d, stride: d, bias: p) } }
        }
    }
}
