import Foundation
import Tensors

/// An OLMoE causal language model with its parameters in one flat Float32 buffer, computing
/// exactly what transformers' `OlmoeForCausalLM` computes, forward and (by hand) backward.
///
/// Parameter names, shapes and meaning are those of the Hugging Face checkpoint; see
/// `ParameterLayout` for the order in memory.
public final class OlmoeNetwork: @unchecked Sendable {
    /// The hyper-parameters.
    public let config: OlmoeConfig
    /// Names and offsets of every tensor.
    public let layout: ParameterLayout
    /// All parameters.
    public let parameters: FloatBuffer
    private var rotary: RotaryTable?

    /// A model with all parameters zero.
    public init(config: OlmoeConfig) {
        self.config = config
        layout = ParameterLayout(config)
        parameters = FloatBuffer(count: layout.count)
    }

    /// Initialises as transformers does for a new model: normal(0, initializer_range) for
    /// embeddings, projections, router and experts, ones for RMSNorm weights, and a zero
    /// embedding row for the padding id.
    public func initialize(generator: inout SeededGenerator) {
        let std = config.initializerRange
        for t in layout.tensors {
            let p = UnsafeMutableBufferPointer(start: parameters.pointer + t.offset, count: t.count)
            if t.group == .norm { p.update(repeating: 1); continue }
            var g = generator.split(UInt64(t.offset))
            g.fillNormal(p, std: std)
        }
        if let pad = config.padTokenId {
            (parameters.pointer + layout.embedding + pad * config.hiddenSize).update(repeating: 0, count: config.hiddenSize)
        }
        _ = generator.next()
    }

    /// A copy of parameter `name` as a tensor of its checkpoint shape.
    public func tensor(named name: String) -> Tensor? {
        guard let t = layout.tensor(named: name) else { return nil }
        return Tensor(shape: t.shape, storage: Array(UnsafeBufferPointer(start: parameters.pointer + t.offset, count: t.count)))
    }

    func rotaryTable(length: Int) -> RotaryTable {
        if let r = rotary, r.length >= length { return r }
        let r = RotaryTable(theta: config.ropeTheta, headDim: config.headDim, length: length)
        rotary = r
        return r
    }

    // MARK: - Forward

    /// The BF16 copies a pass in `precision` multiplies (nil: Float32 products).
    private func shadows(_ ws: ModelWorkspace, _ precision: TrainingPrecision) -> BF16Shadows? {
        guard precision == .bf16 else { return nil }
        guard let h = ws.bf16 else { preconditionFailure("a bf16 pass needs a workspace made with BF16 shadows") }
        return h
    }

    /// Forward pass over `ws.tokens` ([batch, length], already checked against the
    /// vocabulary), keeping what the backward pass needs; logits land in `ws.logits` [T, V].
    /// With `precision` bf16 the projections' products take BF16 copies of their operands.
    func forward(_ ws: ModelWorkspace, precision: TrainingPrecision = .fp32) {
        let c = config, T = ws.tokenCount, d = c.hiddenSize, kv = c.keyValueDim, V = c.vocabularySize
        let S = d + 2 * kv, W = parameters.pointer
        let h = shadows(ws, precision)
        h?.round(parameters)
        let rope = rotaryTable(length: ws.length)
        // embedding
        let emb = UnsafeShared(W + layout.embedding), tok = UnsafeShared(ws.tokens.pointer), x0 = UnsafeShared(ws.stream.pointer)
        Parallel.forRows(T, rowCost: d) { _, range in
            for t in range { (x0.value + t * d).update(from: emb.value + Int(tok.value[t]) * d, count: d) }
        }
        let attention = CausalAttention(
            batch: ws.batch, length: ws.length, heads: c.headCount, keyValueHeads: c.keyValueHeadCount,
            headDim: c.headDim, qkvStride: S, keyOffset: d, valueOffset: d + kv)
        let moe = SparseMoE(c, tokens: T)
        for l in 0..<c.layerCount {
            let o = layout.layers[l], a = ws.layers[l]
            let x = ws.stream.pointer + l * T * d, next = ws.stream.pointer + (l + 1) * T * d
            RMSNorm.forward(
                x: x, xStride: d, rows: T, dim: d, weight: W + o.inputNorm, eps: c.rmsNormEpsilon,
                y: a.normedInput.pointer, yStride: d, rstd: a.rstdInput.pointer)
            h?.round(a.normedInput)
            ParallelGEMM.gemm(
                transB: true, m: T, n: S, k: d, a: a.normedInput.pointer, lda: d, b: W + o.qkv, ldb: d, c: a.qkvRaw.pointer, ldc: S,
                bf16: h)
            RMSNorm.forward(
                x: a.qkvRaw.pointer, xStride: S, rows: T, dim: d, weight: W + o.qNorm, eps: c.rmsNormEpsilon,
                y: a.qkNormed.pointer, yStride: d + kv, rstd: a.rstdQuery.pointer)
            RMSNorm.forward(
                x: a.qkvRaw.pointer + d, xStride: S, rows: T, dim: kv, weight: W + o.kNorm, eps: c.rmsNormEpsilon,
                y: a.qkNormed.pointer + d, yStride: d + kv, rstd: a.rstdKey.pointer)
            assembleQKV(a, rows: T, d: d, kv: kv)
            rope.apply(a.qkv.pointer, rows: T, rowStride: S, heads: c.headCount, sequenceLength: ws.length, inverse: false)
            rope.apply(a.qkv.pointer + d, rows: T, rowStride: S, heads: c.keyValueHeadCount, sequenceLength: ws.length, inverse: false)
            h?.round(a.qkv)
            attention.forward(
                qkv: a.qkv.pointer, probabilities: a.probabilities.pointer, output: a.attention.pointer,
                bf16: h.map { CausalAttention.BF16Operands(qkv: $0.shadow(of: a.qkv.pointer)!, products: $0.products) })
            a.residualMid.pointer.update(from: x, count: T * d)
            h?.round(a.attention)
            ParallelGEMM.gemm(
                transB: true, m: T, n: d, k: d, a: a.attention.pointer, lda: d, b: W + o.output, ldb: d,
                beta: 1, c: a.residualMid.pointer, ldc: d, bf16: h)
            RMSNorm.forward(
                x: a.residualMid.pointer, xStride: d, rows: T, dim: d, weight: W + o.postNorm, eps: c.rmsNormEpsilon,
                y: a.normedPost.pointer, yStride: d, rstd: a.rstdPost.pointer)
            moe.route(input: a.normedPost.pointer, router: W + o.router, a)
            moe.forwardExperts(input: a.normedPost.pointer, gateUp: W + o.gateUp, down: W + o.down, a, output: next, bf16: h)
            let nx = UnsafeShared(next), mid = UnsafeShared(a.residualMid.pointer)
            Parallel.forRows(T, rowCost: d) { _, range in
                for i in (range.lowerBound * d)..<(range.upperBound * d) { nx.value[i] = mid.value[i] + nx.value[i] }
            }
        }
        let last = ws.stream.pointer + c.layerCount * T * d
        RMSNorm.forward(
            x: last, xStride: d, rows: T, dim: d, weight: W + layout.finalNorm, eps: c.rmsNormEpsilon,
            y: ws.normedFinal.pointer, yStride: d, rstd: ws.rstdFinal.pointer)
        h?.round(ws.normedFinal)
        ParallelGEMM.gemm(
            transB: true, m: T, n: V, k: d, a: ws.normedFinal.pointer, lda: d, b: W + layout.lmHead, ldb: d, c: ws.logits.pointer, ldc: V,
            bf16: h)
    }

    /// q, k from their norms and v raw, each clamped to [-clip, clip] when `clip_qkv` is set.
    private func assembleQKV(_ a: LayerActivations, rows: Int, d: Int, kv: Int) {
        let S = d + 2 * kv
        let qk = UnsafeShared(a.qkNormed.pointer), raw = UnsafeShared(a.qkvRaw.pointer), out = UnsafeShared(a.qkv.pointer)
        let clip = config.clipQKV
        Parallel.forRows(rows, rowCost: S) { _, range in
            for t in range {
                let o = out.value + t * S
                o.update(from: qk.value + t * (d + kv), count: d + kv)
                (o + d + kv).update(from: raw.value + t * S + d + kv, count: kv)
                if let c = clip { for j in 0..<S { o[j] = min(max(o[j], -c), c) } }
            }
        }
    }

    // MARK: - Backward

    /// Backward pass after `forward`, with `ws.logits` holding dL/dlogits. Adds parameter
    /// gradients to `gradients` (same layout as `parameters`) for the groups in `trainable`;
    /// `lbPerExpert` and `zScale` seed the router losses' gradients (see `SparseMoE.backwardRouter`).
    /// `precision` must be the forward pass's.
    func backward(
        _ ws: ModelWorkspace, gradients: FloatBuffer, trainable: Set<ParameterGroup>, lbPerExpert: [Float], zScale: Float,
        precision: TrainingPrecision = .fp32
    ) {
        let c = config, T = ws.tokenCount, d = c.hiddenSize, kv = c.keyValueDim, V = c.vocabularySize
        let S = d + 2 * kv, W = parameters.pointer, G = gradients.pointer
        let h = shadows(ws, precision)
        let rope = rotaryTable(length: ws.length)
        func grad(_ group: ParameterGroup, _ offset: Int) -> UnsafeMutablePointer<Float>? { trainable.contains(group) ? G + offset : nil }
        let headGroup: ParameterGroup = c.tieWordEmbeddings ? .embedding : .lmHead
        // weight gradient and input gradient in one concurrent pass (independent)
        var calls = [ParallelGEMM.Call(m: T, n: d, k: V, a: ws.logits.pointer, lda: V, b: W + layout.lmHead, ldb: d, c: ws.dNormed.pointer, ldc: d)]
        if let g = grad(headGroup, layout.lmHead) {
            calls.insert(
                ParallelGEMM.Call(transA: true, m: V, n: d, k: T, a: ws.logits.pointer, lda: V, b: ws.normedFinal.pointer, ldb: d, beta: 1, c: g, ldc: d), at: 0
            )
        }
        h?.round(ws.logits)
        ParallelGEMM.batch(calls, bf16: h)
        RMSNorm.backward(
            dy: ws.dNormed.pointer, dyStride: d, x: ws.stream.pointer + c.layerCount * T * d, xStride: d,
            rstd: ws.rstdFinal.pointer, weight: W + layout.finalNorm, rows: T, dim: d,
            dx: ws.dStream.pointer, dxStride: d, accumulate: false,
            dWeight: grad(.norm, layout.finalNorm), partials: ws.partials.pointer)
        let attention = CausalAttention(
            batch: ws.batch, length: ws.length, heads: c.headCount, keyValueHeads: c.keyValueHeadCount,
            headDim: c.headDim, qkvStride: S, keyOffset: d, valueOffset: d + kv)
        let moe = SparseMoE(c, tokens: T)
        for l in stride(from: c.layerCount - 1, through: 0, by: -1) {
            let o = layout.layers[l], a = ws.layers[l]
            let x = ws.stream.pointer + l * T * d
            // MoE block: dStream holds dL/d(layer output) = dL/d(MoE output) = residual part
            moe.backwardExperts(
                dOutput: ws.dStream.pointer, gateUp: W + o.gateUp, down: W + o.down, a,
                dTopWeight: ws.dTopWeight.pointer, dInput: ws.dNormed.pointer,
                dGateUp: (trainable.contains(.gateProjection) || trainable.contains(.upProjection)) ? G + o.gateUp : nil,
                dDown: grad(.downProjection, o.down), bf16: h)
            moe.backwardRouter(
                a, dTopWeight: ws.dTopWeight.pointer, lbPerExpert: lbPerExpert, zScale: zScale,
                dLogits: ws.dRouterLogits.pointer)
            let n = c.expertCount
            // weight gradient and input gradient in one concurrent pass (independent)
            var routerCalls = [
                ParallelGEMM.Call(m: T, n: d, k: n, a: ws.dRouterLogits.pointer, lda: n, b: W + o.router, ldb: d, beta: 1, c: ws.dNormed.pointer, ldc: d)
            ]
            if let g = grad(.router, o.router) {
                routerCalls.insert(
                    ParallelGEMM.Call(
                        transA: true, m: n, n: d, k: T, a: ws.dRouterLogits.pointer, lda: n, b: a.normedPost.pointer, ldb: d, beta: 1, c: g, ldc: d), at: 0)
            }
            ParallelGEMM.batch(routerCalls)
            RMSNorm.backward(
                dy: ws.dNormed.pointer, dyStride: d, x: a.residualMid.pointer, xStride: d, rstd: a.rstdPost.pointer,
                weight: W + o.postNorm, rows: T, dim: d, dx: ws.dStream.pointer, dxStride: d, accumulate: true,
                dWeight: grad(.norm, o.postNorm), partials: ws.partials.pointer)
            // attention block: dStream now holds dL/d(residual after attention)
            // weight gradient and input gradient in one concurrent pass (independent)
            var outputCalls = [ParallelGEMM.Call(m: T, n: d, k: d, a: ws.dStream.pointer, lda: d, b: W + o.output, ldb: d, c: ws.dAttention.pointer, ldc: d)]
            if let g = grad(.attention, o.output) {
                outputCalls.insert(
                    ParallelGEMM.Call(transA: true, m: d, n: d, k: T, a: ws.dStream.pointer, lda: d, b: a.attention.pointer, ldb: d, beta: 1, c: g, ldc: d),
                    at: 0)
            }
            h?.round(ws.dStream)
            ParallelGEMM.batch(outputCalls, bf16: h)
            h?.round(ws.dAttention)
            attention.backward(
                qkv: a.qkv.pointer, probabilities: a.probabilities.pointer, dOutput: ws.dAttention.pointer,
                dqkv: ws.dQKV.pointer, scratch: ws.attentionScratch.pointer,
                bf16: h.map {
                    CausalAttention.BF16Operands(
                        qkv: $0.shadow(of: a.qkv.pointer)!, dOutput: $0.shadow(of: ws.dAttention.pointer)!,
                        products: $0.products)
                })
            rope.apply(ws.dQKV.pointer, rows: T, rowStride: S, heads: c.headCount, sequenceLength: ws.length, inverse: true)
            rope.apply(ws.dQKV.pointer + d, rows: T, rowStride: S, heads: c.keyValueHeadCount, sequenceLength: ws.length, inverse: true)
            if let clip = config.clipQKV { clipBackward(a, dqkv: ws.dQKV.pointer, rows: T, d: d, kv: kv, clip: clip) }
            RMSNorm.backward(
                dy: ws.dQKV.pointer, dyStride: S, x: a.qkvRaw.pointer, xStride: S, rstd: a.rstdQuery.pointer,
                weight: W + o.qNorm, rows: T, dim: d, dx: ws.dQKV.pointer, dxStride: S, accumulate: false,
                dWeight: grad(.norm, o.qNorm), partials: ws.partials.pointer)
            RMSNorm.backward(
                dy: ws.dQKV.pointer + d, dyStride: S, x: a.qkvRaw.pointer + d, xStride: S, rstd: a.rstdKey.pointer,
                weight: W + o.kNorm, rows: T, dim: kv, dx: ws.dQKV.pointer + d, dxStride: S, accumulate: false,
                dWeight: grad(.norm, o.kNorm), partials: ws.partials.pointer)
            // weight gradient and input gradient in one concurrent pass (independent)
            var qkvCalls = [ParallelGEMM.Call(m: T, n: d, k: S, a: ws.dQKV.pointer, lda: S, b: W + o.qkv, ldb: d, c: ws.dNormed.pointer, ldc: d)]
            if let g = grad(.attention, o.qkv) {
                qkvCalls.insert(
                    ParallelGEMM.Call(transA: true, m: S, n: d, k: T, a: ws.dQKV.pointer, lda: S, b: a.normedInput.pointer, ldb: d, beta: 1, c: g, ldc: d),
                    at: 0)
            }
            h?.round(ws.dQKV)
            ParallelGEMM.batch(qkvCalls, bf16: h)
            RMSNorm.backward(
                dy: ws.dNormed.pointer, dyStride: d, x: x, xStride: d, rstd: a.rstdInput.pointer,
                weight: W + o.inputNorm, rows: T, dim: d, dx: ws.dStream.pointer, dxStride: d, accumulate: true,
                dWeight: grad(.norm, o.inputNorm), partials: ws.partials.pointer)
        }
        if trainable.contains(.embedding) {
            let g = G + layout.embedding, dx = ws.dStream.pointer
            for t in 0..<T {
                let id = Int(ws.tokens.pointer[t])
                if id == config.padTokenId { continue }  // nn.Embedding(padding_idx=) gives that row no gradient
                let row = g + id * d, src = dx + t * d
                for j in 0..<d { row[j] += src[j] }
            }
        }
    }

    /// Zeroes the gradient of q, k, v elements that `clip_qkv` clamped (torch's clamp passes
    /// the gradient where -clip <= x <= clip).
    private func clipBackward(_ a: LayerActivations, dqkv: UnsafeMutablePointer<Float>, rows: Int, d: Int, kv: Int, clip: Float) {
        let S = d + 2 * kv
        let qk = UnsafeShared(a.qkNormed.pointer), raw = UnsafeShared(a.qkvRaw.pointer), g = UnsafeShared(dqkv)
        Parallel.forRows(rows, rowCost: S) { _, range in
            for t in range {
                let gr = g.value + t * S, q = qk.value + t * (d + kv), v = raw.value + t * S + d + kv
                for j in 0..<(d + kv) where !(q[j] >= -clip && q[j] <= clip) { gr[j] = 0 }
                for j in 0..<kv where !(v[j] >= -clip && v[j] <= clip) { gr[d + kv + j] = 0 }
            }
        }
    }
}
