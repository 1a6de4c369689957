import Checkpoints
import Foundation
import MoELayout
import Tensors

/// What the forward pass hands out at each MoE layer, while that layer's weights are in memory.
public struct MoELayerRouting: Sendable {
    /// Decoder layer index.
    public let layer: Int
    /// Tokens T (all windows, in window order).
    public let tokens: Int
    /// Routed experts n, experts per token k, hidden size d.
    public let experts: Int, topK: Int, hidden: Int
    /// x_t: the MoE input of every token (after the pre-MoE norm) [T, d]; nil when the caller
    /// did not ask for it (`forward(keepMoEInput: false)`: a copy of T d floats per layer saved).
    public let input: Tensor?
    /// Router logits `x_t R^T` [T, n].
    public let logits: Tensor
    /// Router scores [T, n]: softmax probabilities, or DeepSeek-V3's sigmoid scores.
    public let scores: Tensor
    /// How the scores were made from the logits.
    public let scoring: RouterSpec.Scoring
    /// The k experts chosen for each token [T * k], best first.
    public let topExperts: [Int32]
    /// Their weights [T * k], as the layer combines the experts' outputs.
    public let topWeights: [Float]
    /// The layer's router and routed experts' weights (shared experts are not routed).
    public let weights: MoEWeights
}

/// What a forward pass returns besides the routing.
public struct ForwardOutput: Sendable {
    /// The final hidden states after the final norm [T, d], when asked for.
    public var finalHidden: Tensor?
    /// LM-head logits [rows, V] of the asked-for token rows, in the order asked.
    public var logits: Tensor?
}

/// A forward-only causal language model over a checkpoint, streaming: one decoder layer's weights
/// in memory at a time (read, decoded to Float32, run over every window, dropped), the
/// activations [T, d] of all windows held.
///
/// The family comes from the config's `model_type` (OLMoE, Mixtral, Qwen2-MoE, Qwen3-MoE,
/// DeepSeek-V2/V3, FlexOlmo; see the family files), or is FlexOlmo for an OLMo-core run
/// checkpoint (`OLMoCore.swift`); the MoE tensors from the checkpoint's layout, which a user's
/// layout file may describe. Results match transformers' Float32 forward to rounding.
public final class CausalModel: @unchecked Sendable {
    /// The checkpoint seen as an MoE model (where the routers and experts are).
    public let layout: MoECheckpoint
    /// What the model computes.
    public let architecture: Architecture

    /// Prepares the model of `layout`'s checkpoint (reads only its config).
    /// - Throws: `ModelsError` when the config is missing, of an unknown family, or inconsistent
    ///   with the checkpoint's MoE layers.
    public init(_ layout: MoECheckpoint) throws(ModelsError) {
        self.layout = layout
        let ck = layout.checkpoint
        var arch: Architecture
        let source: String
        if let run = layout.olmoCoreConfig {
            source = run.source
            arch = try OLMoCoreModel.architecture(run, dtype: layout.moeLayers.first?.dtype ?? .f32)
            storedName = OLMoCoreModel.storedName
        } else {
            guard let config = ck.config else { throw .config(file: ck.path, reason: "no config.json: the forward pass needs the model's hyper-parameters") }
            source = ck.configSource ?? ck.path
            arch = try CausalModel.huggingFaceArchitecture(config, type: config.modelType ?? layout.family, source: source)
            storedName = { $0 }
        }
        try arch.validate(source: source)
        // the config and the checkpoint must agree on which layers are MoE
        let moeInCheckpoint = Set(layout.moeLayers.map(\.index))
        for l in 0..<arch.layerCount {
            let isMoE: Bool
            if case .moe = arch.feedForward[l] { isMoE = true } else { isMoE = false }
            if isMoE != moeInCheckpoint.contains(l) {
                let problem = layout.problems.first { $0.hasPrefix("layer \(l):") }
                throw .weights(
                    file: ck.path,
                    reason:
                        "layer \(l) is \(isMoE ? "an MoE layer" : "dense") in the config but \(isMoE ? "has no readable MoE block" : "has a router") in the checkpoint"
                        + (problem.map { " (\($0))" } ?? ""))
            }
        }
        if let extra = moeInCheckpoint.first(where: { $0 >= arch.layerCount }) {
            throw .weights(file: ck.path, reason: "the checkpoint has an MoE layer \(extra) beyond the config's \(arch.layerCount) layers")
        }
        architecture = arch
    }

    /// The checkpoint's name of a Hugging Face tensor name (OLMo-core's names for its run checkpoints).
    let storedName: @Sendable (String) -> String

    /// The architecture of a Hugging Face config of `type`.
    static func huggingFaceArchitecture(_ config: ModelConfig, type: String, source: String) throws(ModelsError) -> Architecture {
        let arch: Architecture
        switch type {
        case "olmoe": arch = try decodeConfig(OlmoeConfiguration.self, from: config, source: source).architecture(source: source)
        case "mixtral": arch = try decodeConfig(MixtralConfiguration.self, from: config, source: source).architecture(source: source)
        case "qwen2_moe": arch = try decodeConfig(Qwen2MoeConfiguration.self, from: config, source: source).architecture(source: source)
        case "qwen3_moe": arch = try decodeConfig(Qwen3MoeConfiguration.self, from: config, source: source).architecture(source: source)
        case "deepseek_v2", "deepseek_v3": arch = try decodeConfig(DeepseekConfiguration.self, from: config, source: source).architecture(source: source)
        case "flex_olmo": arch = try decodeConfig(FlexOlmoConfiguration.self, from: config, source: source).architecture(source: source)
        default:
            throw .unsupported(
                file: source,
                reason: "model_type '\(type)' has no forward pass here (olmoe, mixtral, qwen2_moe, qwen3_moe, deepseek_v2, deepseek_v3, flex_olmo)")
        }
        return arch
    }

    /// The MoE layers of the checkpoint by decoder index.
    var moeLayerByIndex: [Int: MoELayer] { Dictionary(uniqueKeysWithValues: layout.moeLayers.map { ($0.index, $0) }) }

    /// Runs `tokens` (consecutive windows of `windowLength` tokens, each its own causal sequence
    /// starting at position 0) through the model.
    ///
    /// - Parameters:
    ///   - tokens: token ids, a whole number of windows, each below the vocabulary size.
    ///   - windowLength: tokens per window.
    ///   - logitRows: token rows whose LM-head logits to return (empty: none; the head is not read).
    ///   - keepFinalHidden: return the final hidden states [T, d] (after the final norm).
    ///   - chunkTokens: tokens (whole windows, at least one) run through attention and the
    ///     feed-forward at a time: scratch memory follows this, not T; results depend on it only through rounding.
    ///   - keepMoEInput: hand out each MoE layer's input x_t (`MoELayerRouting.input`).
    ///   - layerDone: called after each decoder layer with its index and the seconds it took.
    ///   - onMoELayer: called at each MoE layer, after routing and before the experts run.
    /// - Throws: `ModelsError` for bad tokens or unreadable weights.
    public func forward(
        tokens: [Int32], windowLength: Int, logitRows: [Int] = [], keepFinalHidden: Bool = false,
        chunkTokens: Int = CausalModel.defaultChunkTokens, keepMoEInput: Bool = true,
        layerDone: (Int, Double) -> Void = { _, _ in },
        onMoELayer: (MoELayerRouting) -> Void
    ) throws(ModelsError) -> ForwardOutput {
        let a = architecture, d = a.hiddenSize, V = a.vocabularySize
        guard windowLength > 0, !tokens.isEmpty, tokens.count % windowLength == 0 else {
            throw .input(reason: "\(tokens.count) tokens are not a positive whole number of windows of \(windowLength)")
        }
        if let bad = tokens.firstIndex(where: { $0 < 0 || Int($0) >= V }) {
            throw .input(reason: "token \(tokens[bad]) at position \(bad) is outside the vocabulary of \(V)")
        }
        for r in logitRows where r < 0 || r >= tokens.count { throw .input(reason: "logit row \(r) is outside the \(tokens.count) tokens") }
        let T = tokens.count, batch = T / windowLength
        // residual stream, MoE input, its copy for the hook, router logits and scores: all T tokens
        let widest = a.feedForward.map { if case let .moe(m) = $0 { return m.experts } else { return 0 } }.max() ?? 0
        let activationBytes = Double(T) * Double(3 * d + 2 * widest) * 4
        let memory = Double(ProcessInfo.processInfo.physicalMemory)
        guard activationBytes < 0.5 * memory else {
            let need = String(
                format: "%d tokens need %.1f GB of activations, more than half of this machine's %.1f GB", T, activationBytes / 1e9, memory / 1e9)
            throw .input(reason: "\(need): run fewer tokens (\(Setting.maxTokens))")
        }
        let reader = WeightReader(checkpoint: layout.checkpoint, storedName: storedName)
        let path = layout.checkpoint.path
        BLAS.setThreads(1)  // the kernels split work across the cores themselves, in fixed blocks

        // embedding rows
        let x = FloatBuffer(count: T * d)
        do {
            let table = try reader.read("model.embed_tokens.weight", [V, d])
            table.storage.withUnsafeBufferPointer { e in
                guard let eb = e.baseAddress else { return }
                for t in 0..<T { (x.pointer + t * d).update(from: eb + Int(tokens[t]) * d, count: d) }
            }
        }
        let rope = RotaryTable(a.rope, length: windowLength)
        // scratch covers one chunk of whole windows; only x and h span all T tokens
        let chunkWindows = max(1, chunkTokens / windowLength)
        let chunks = stride(from: 0, to: batch, by: chunkWindows).map { w0 in (w0 * windowLength)..<(min(batch, w0 + chunkWindows) * windowLength) }
        let h = FloatBuffer(count: T * d), y = FloatBuffer(count: min(T, chunkWindows * windowLength) * d)
        let moeLayers = moeLayerByIndex
        let scratch = Scratch()
        var expertBuffers: [Projection: Tensor] = [:]
        for l in 0..<a.layerCount {
            let t0 = Date()
            let p = "model.layers.\(l)."
            // before the sublayers: h = RMSNorm(x) is their input; after: h = x, and their outputs are normalised
            let after = a.normPlacement == .afterSublayer
            let attentionNorm = try reader.read(p + (after ? "post_attention_layernorm.weight" : "input_layernorm.weight"), [d])
            let feedForwardNorm = try reader.read(p + (after ? "post_feedforward_layernorm.weight" : "post_attention_layernorm.weight"), [d])
            /// The sublayer's input h from the residual stream x.
            func sublayerInput(_ norm: Tensor) {
                if after { h.pointer.update(from: x.pointer, count: T * d); return }
                withPointers([norm]) { w in
                    RMSNorm.forward(x: x.pointer, xStride: d, rows: T, dim: d, weight: w[0], eps: a.rmsNormEpsilon, y: h.pointer, yStride: d)
                }
            }
            /// x += the sublayer's output y of `rows` (normalised first when the norms come after).
            let outputNorm: Tensor? = after ? feedForwardNorm : nil
            func addOutput(_ rows: Range<Int>, norm: Tensor?) {
                if let norm {
                    withPointers([norm]) { w in
                        RMSNorm.forward(x: y.pointer, xStride: d, rows: rows.count, dim: d, weight: w[0], eps: a.rmsNormEpsilon, y: y.pointer, yStride: d)
                    }
                }
                addInPlace(x.pointer + rows.lowerBound * d, y.pointer, count: rows.count * d)
            }
            sublayerInput(attentionNorm)
            let attention: (Range<Int>) -> Void
            switch a.attention {
            case let .standard(spec):
                let w = try StandardAttentionWeights(reader, prefix: p + "self_attn.", spec: spec, hidden: d)
                attention = { rows in
                    let c = AttentionContext(
                        batch: rows.count / windowLength, length: windowLength, hidden: d, rope: rope, ropeSpec: a.rope, rmsNormEpsilon: a.rmsNormEpsilon,
                        scratch: scratch)
                    w.forward(input: h.pointer + rows.lowerBound * d, spec: spec, window: a.slidingWindow[l], context: c, output: y.pointer)
                }
            case let .latent(spec):
                let w = try LatentAttentionWeights(reader, prefix: p + "self_attn.", spec: spec, hidden: d)
                attention = { rows in
                    let c = AttentionContext(
                        batch: rows.count / windowLength, length: windowLength, hidden: d, rope: rope, ropeSpec: a.rope, rmsNormEpsilon: a.rmsNormEpsilon,
                        scratch: scratch)
                    w.forward(input: h.pointer + rows.lowerBound * d, spec: spec, context: c, output: y.pointer)
                }
            }
            for rows in chunks {
                attention(rows)
                addOutput(rows, norm: after ? attentionNorm : nil)
            }
            sublayerInput(feedForwardNorm)
            switch a.feedForward[l] {
            case let .dense(D):
                let w = try SwiGLUWeights(
                    reader, gate: p + "mlp.gate_proj.weight", up: p + "mlp.up_proj.weight", down: p + "mlp.down_proj.weight",
                    hidden: d, intermediate: D)
                withPointers([w.gate, w.up, w.down]) { wp in
                    for rows in chunks {
                        FeedForward.swiglu(
                            input: h.pointer + rows.lowerBound * d, rows: rows.count, hidden: d, intermediate: D,
                            gate: wp[0], up: wp[1], down: wp[2], output: y.pointer, scratch: scratch)
                        addOutput(rows, norm: outputNorm)
                    }
                }
            case let .moe(spec):
                guard let layer = moeLayers[l] else { throw .weights(file: path, reason: "layer \(l): no MoE block in the checkpoint") }
                let w = try MoEWeights(layout, layer: layer, spec: spec, hidden: d, reuse: &expertBuffers)
                defer { expertBuffers = [.gate: w.gate, .up: w.up, .down: w.down] }
                runMoE(
                    w, spec: spec, layer: l, input: h, keepInput: keepMoEInput, tokens: T, chunks: chunks, output: y, scratch: scratch, onMoELayer: onMoELayer,
                    addOutput: { addOutput($0, norm: outputNorm) })
            }
            releaseFreedMemory()
            layerDone(l, Date().timeIntervalSince(t0))
        }
        var out = ForwardOutput()
        guard keepFinalHidden || !logitRows.isEmpty else { return out }
        let finalNorm = try reader.read("model.norm.weight", [d])
        withPointers([finalNorm]) { w in
            RMSNorm.forward(x: x.pointer, xStride: d, rows: T, dim: d, weight: w[0], eps: a.rmsNormEpsilon, y: h.pointer, yStride: d)
        }
        if keepFinalHidden { out.finalHidden = Tensor(shape: [T, d], storage: h.array) }
        if !logitRows.isEmpty {
            let headName = a.tieWordEmbeddings || !reader.contains("lm_head.weight") ? "model.embed_tokens.weight" : "lm_head.weight"
            let head = try reader.read(headName, [V, d])
            let rows = FloatBuffer(count: logitRows.count * d)
            for (i, r) in logitRows.enumerated() { (rows.pointer + i * d).update(from: h.pointer + r * d, count: d) }
            var logits = Tensor(shape: [logitRows.count, V])
            withPointers([head]) { hp in
                logits.storage.withUnsafeMutableBufferPointer { lb in
                    guard let c = lb.baseAddress else { return }
                    ParallelGEMM.gemm(transB: true, m: logitRows.count, n: V, k: d, a: rows.pointer, lda: d, b: hp[0], ldb: d, c: c, ldc: V)
                }
            }
            out.logits = logits
        }
        return out
    }

    /// Tokens per chunk of the attention and feed-forward passes by default.
    public static let defaultChunkTokens = 4096

    /// One sparse MoE block: route every token, hand the routing out, then run routed and shared
    /// experts chunk by chunk into `y`, handing each chunk's rows to `addOutput` (which adds them
    /// to the residual stream).
    private func runMoE(
        _ w: MoEWeights, spec: MoESpec, layer l: Int, input h: FloatBuffer, keepInput: Bool, tokens T: Int, chunks: [Range<Int>],
        output y: FloatBuffer, scratch: Scratch, onMoELayer: (MoELayerRouting) -> Void, addOutput: (Range<Int>) -> Void
    ) {
        let d = architecture.hiddenSize, n = spec.experts, k = spec.router.topK, D = spec.intermediate
        let routing = RouterActivations(tokens: T, experts: n, topK: k)
        withPointers([w.router] + (w.correctionBias.map { [$0] } ?? [])) { rp in
            Router.route(input: h.pointer, hidden: d, router: rp[0], bias: rp.count > 1 ? rp[1] : nil, spec: spec.router, into: routing)
        }
        onMoELayer(
            MoELayerRouting(
                layer: l, tokens: T, experts: n, topK: k, hidden: d,
                input: keepInput ? Tensor(shape: [T, d], storage: h.array) : nil,
                logits: Tensor(shape: [T, n], storage: routing.logits.array),
                scores: Tensor(shape: [T, n], storage: routing.scores.array),
                scoring: spec.router.scoring,
                topExperts: Array(UnsafeBufferPointer(start: routing.topExperts, count: T * k)),
                topWeights: routing.topWeights.array, weights: w))
        for rows in chunks {
            let r0 = rows.lowerBound, m = rows.count, hin = h.pointer + r0 * d
            withPointers([w.gate, w.up, w.down]) { ep in
                RoutedExperts.forward(
                    input: hin, tokens: m, hidden: d, intermediate: D, experts: n, topK: k,
                    topExperts: routing.topExperts + r0 * k, topWeights: routing.topWeights.pointer + r0 * k,
                    gate: ep[0], up: ep[1], down: ep[2], output: y.pointer, scratch: scratch)
            }
            if let s = w.shared {
                let sh = scratch(.shared, m * d)
                withPointers([s.gate, s.up, s.down]) { sp in
                    FeedForward.swiglu(
                        input: hin, rows: m, hidden: d, intermediate: s.intermediate, gate: sp[0], up: sp[1], down: sp[2],
                        output: sh, scratch: scratch)
                }
                if let g = w.sharedGate {
                    // Qwen2-MoE: routed + sigmoid(x . w) * shared
                    let hp = UnsafeShared(hin), shp = UnsafeShared(sh)
                    g.storage.withUnsafeBufferPointer { gb in
                        guard let base = gb.baseAddress else { return }
                        let gp = UnsafeShared(base)
                        Parallel.forRows(m, rowCost: 2 * d) { _, range in
                            for t in range {
                                let z = VectorMath.dot(hp.value + t * d, gp.value, d)
                                let gate = 1 / (1 + Foundation.exp(-z))
                                for j in 0..<d { shp.value[t * d + j] *= gate }
                            }
                        }
                    }
                }
                addInPlace(y.pointer, sh, count: m * d)
            }
            addOutput(rows)
        }
    }
}

/// Hands memory freed by the last layer back to the system (glibc keeps freed blocks in its
/// per-thread arenas, which the worker threads of every layer fill again): the resident set
/// then follows one layer's needs instead of growing.
func releaseFreedMemory() {
    #if os(Linux)
    _ = glibcMallocTrim(0)
    #endif
}

#if os(Linux)
/// glibc's `int malloc_trim(size_t pad)`, which the Glibc module does not export.
@_silgen_name("malloc_trim")
private func glibcMallocTrim(_ pad: Int) -> Int32
#endif

/// `a += b` elementwise.
func addInPlace(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
    let ap = UnsafeShared(a), bp = UnsafeShared(b)
    Parallel.forRows(count, rowCost: 1) { _, r in for i in r { ap.value[i] += bp.value[i] } }
}
