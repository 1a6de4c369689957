import Tensors

/// A fixed-size block of Int32 (token ids, expert indices, row maps), owned like `FloatBuffer`.
final class Int32Buffer: @unchecked Sendable {
    let count: Int
    let pointer: UnsafeMutablePointer<Int32>
    init(count: Int) {
        self.count = count
        pointer = .allocate(capacity: max(1, count))
        pointer.initialize(repeating: 0, count: max(1, count))
    }
    deinit { pointer.deallocate() }
}

/// What one decoder layer keeps from the forward pass for the backward pass, for a batch of
/// T = batch * length tokens. Allocated once per batch shape and reused every step.
final class LayerActivations: @unchecked Sendable {
    // attention half
    /// Reciprocal RMS of the input-layernorm rows [T].
    let rstdInput: FloatBuffer
    /// Input-layernorm output [T, d].
    let normedInput: FloatBuffer
    /// Raw q, k, v projections [T, d + 2 kv].
    let qkvRaw: FloatBuffer
    /// q and k after their RMSNorms, before clipping [T, d + kv].
    let qkNormed: FloatBuffer
    /// Reciprocal RMS of the q-norm and k-norm rows [T] each.
    let rstdQuery: FloatBuffer, rstdKey: FloatBuffer
    /// q, k (clipped, rotated) and v (clipped) as attention consumes them [T, d + 2 kv].
    let qkv: FloatBuffer
    /// Attention probabilities [batch, heads, length, length].
    let probabilities: FloatBuffer
    /// Attention output before o_proj [T, d].
    let attention: FloatBuffer
    /// Residual stream after attention [T, d].
    let residualMid: FloatBuffer
    // MoE half
    /// Reciprocal RMS of the post-attention-layernorm rows [T].
    let rstdPost: FloatBuffer
    /// Post-attention-layernorm output [T, d].
    let normedPost: FloatBuffer
    /// Router logits and probabilities [T, n]; log-sum-exp of each row [T].
    let routerLogits: FloatBuffer, routerProbabilities: FloatBuffer, logSumExp: FloatBuffer
    /// Chosen experts [T, k] and their weights (after renormalisation when configured) [T, k].
    let topExpert: Int32Buffer, topWeight: FloatBuffer
    /// Dispatch: first row of each expert [n + 1], token of each row [T k], row of each (token, slot) [T k].
    let expertStart: Int32Buffer, rowToken: Int32Buffer, rowOfSlot: Int32Buffer
    /// Gathered expert inputs [T k, d], gate|up pre-activations [T k, 2D], SwiGLU output [T k, D],
    /// expert outputs [T k, d].
    let expertInput: FloatBuffer, gateUp: FloatBuffer, swiglu: FloatBuffer, expertOutput: FloatBuffer

    init(_ c: OlmoeConfig, batch: Int, length: Int) {
        let T = batch * length, d = c.hiddenSize, kv = c.keyValueDim, n = c.expertCount, k = c.topK, D = c.intermediateSize
        rstdInput = FloatBuffer(count: T)
        normedInput = FloatBuffer(count: T * d)
        qkvRaw = FloatBuffer(count: T * (d + 2 * kv))
        qkNormed = FloatBuffer(count: T * (d + kv))
        rstdQuery = FloatBuffer(count: T)
        rstdKey = FloatBuffer(count: T)
        qkv = FloatBuffer(count: T * (d + 2 * kv))
        probabilities = FloatBuffer(count: batch * c.headCount * length * length)
        attention = FloatBuffer(count: T * d)
        residualMid = FloatBuffer(count: T * d)
        rstdPost = FloatBuffer(count: T)
        normedPost = FloatBuffer(count: T * d)
        routerLogits = FloatBuffer(count: T * n)
        routerProbabilities = FloatBuffer(count: T * n)
        logSumExp = FloatBuffer(count: T)
        topExpert = Int32Buffer(count: T * k)
        topWeight = FloatBuffer(count: T * k)
        expertStart = Int32Buffer(count: n + 1)
        rowToken = Int32Buffer(count: T * k)
        rowOfSlot = Int32Buffer(count: T * k)
        expertInput = FloatBuffer(count: T * k * d)
        gateUp = FloatBuffer(count: T * k * 2 * D)
        swiglu = FloatBuffer(count: T * k * D)
        expertOutput = FloatBuffer(count: T * k * d)
    }
}

/// Everything a forward + backward pass over one batch shape needs, allocated once.
final class ModelWorkspace: @unchecked Sendable {
    let batch: Int, length: Int
    var tokenCount: Int { batch * length }
    /// Input token ids [T].
    let tokens: Int32Buffer
    /// Residual stream at the input of each layer and after the last [layers + 1, T, d].
    let stream: FloatBuffer
    let layers: [LayerActivations]
    /// Final-norm reciprocal RMS [T] and output [T, d].
    let rstdFinal: FloatBuffer, normedFinal: FloatBuffer
    /// Logits [T, V]; the backward pass overwrites them with their gradient.
    let logits: FloatBuffer
    // backward scratch
    let dStream: FloatBuffer, dNormed: FloatBuffer, dQKV: FloatBuffer, dAttention: FloatBuffer
    let dRouterLogits: FloatBuffer, dTopWeight: FloatBuffer, attentionScratch: FloatBuffer
    let partials: FloatBuffer
    /// BF16 copies of the products' operands for `--precision bf16` (nil: Float32 only).
    let bf16: BF16Shadows?

    /// - Parameter bf16: the parameters whose BF16 copy bf16 passes multiply, and the products
    ///   that do it; nil for a workspace of Float32 passes only.
    init(_ c: OlmoeConfig, batch: Int, length: Int, bf16: (parameters: FloatBuffer, products: BF16Products)? = nil) {
        self.batch = batch
        self.length = length
        let T = batch * length, d = c.hiddenSize, kv = c.keyValueDim
        tokens = Int32Buffer(count: T)
        stream = FloatBuffer(count: (c.layerCount + 1) * T * d)
        layers = (0..<c.layerCount).map { _ in LayerActivations(c, batch: batch, length: length) }
        rstdFinal = FloatBuffer(count: T)
        normedFinal = FloatBuffer(count: T * d)
        logits = FloatBuffer(count: T * c.vocabularySize)
        dStream = FloatBuffer(count: T * d)
        dNormed = FloatBuffer(count: T * d)
        dQKV = FloatBuffer(count: T * (d + 2 * kv))
        dAttention = FloatBuffer(count: T * d)
        dRouterLogits = FloatBuffer(count: T * c.expertCount)
        dTopWeight = FloatBuffer(count: T * c.topK)
        attentionScratch = FloatBuffer(count: batch * c.keyValueHeadCount * length * length)
        let widths = [d, kv, c.expertCount]
        partials = FloatBuffer(count: widths.map { Parallel.chunkCount(T, rowCost: $0) * $0 }.max() ?? 1)
        if let (parameters, products) = bf16 {
            let shadows = BF16Shadows(products: products)
            shadows.add(parameters)
            // kept from the forward pass for the weight gradients
            for a in layers { for b in [a.normedInput, a.qkv, a.attention, a.expertInput, a.swiglu] { shadows.add(b) } }
            // gradients used within one layer's backward pass: one copy serves every layer
            let dGateUp = shadows.allocate(layers[0].gateUp.count), dExpertOutput = shadows.allocate(layers[0].expertOutput.count)
            for a in layers {
                shadows.add(a.gateUp, sharing: dGateUp)
                shadows.add(a.expertOutput, sharing: dExpertOutput)
            }
            for b in [normedFinal, logits, dStream, dQKV, dAttention] { shadows.add(b) }
            self.bf16 = shadows
        } else {
            self.bf16 = nil
        }
    }
}
