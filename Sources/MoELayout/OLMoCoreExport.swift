import Checkpoints
import Foundation
import Tensors

/// Writes an OLMo-core checkpoint as a Hugging Face folder, as OLMo-core's own export does
/// (`olmo_core.nn.hf`): `model_type: flex_olmo` (its MoE models use `moe_reordered_norm` blocks,
/// which normalise after attention and after the MoE), per-expert tensor names, the router
/// unflattened to [n, d], and a config translated from the run's `config.json`.
public enum OLMoCoreExport {
    /// Why an export cannot be made.
    public struct Unsupported: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// The Hugging Face `config.json` (FlexOlmo) for a run, with weights of `dtype`.
    /// - Throws: `Unsupported` for model features FlexOlmo cannot express.
    public static func huggingFaceConfig(_ c: OLMoCoreModelConfig, dtype: DType) throws(Unsupported) -> JSONValue {
        func no(_ r: String) -> Unsupported {
            Unsupported(description: "\(c.source): \(r); no Hugging Face model expresses it (OLMo-core exports moe_reordered_norm MoE blocks as flex_olmo)")
        }
        guard c.blockName == "moe_reordered_norm" else { throw no("block type '\(c.blockName)'") }
        let block = c.model["block"]
        let attention = block?["sequence_mixer"] ?? block?["attention"]
        if let n = attention?["name"]?.stringValue, n != "default" { throw no("attention type '\(n)'") }
        if attention?["use_head_qk_norm"]?.boolValue == true { throw no("per-head QK norm") }
        guard attention?["qk_norm"] != nil else { throw no("attention without QK norm") }
        if let r = attention?["rope"]?["name"]?.stringValue, r != "default" { throw no("RoPE type '\(r)'") }
        if let f = attention?["rope"]?["partial_rotary_factor"]?.doubleValue, f != 1 { throw no("partial rotary factor \(f)") }
        guard let theta = c.ropeTheta else { throw no("attention without RoPE") }
        if let n = block?["layer_norm"]?["name"]?.stringValue, n != "rms" { throw no("layer norm '\(n)'") }
        guard c.gatingFunction == "softmax" else { throw no("router gating '\(c.gatingFunction)'") }
        if block?["feed_forward_moe"]?["shared_mlp"] != nil { throw no("a shared MLP beside the experts") }
        let tokenizer = c.experiment["dataset"]?["tokenizer"]
        func token(_ k: String) -> JSONValue { tokenizer?[k]?.intValue.map { .int($0) } ?? .null }
        let maxPositions = c.experiment["train_module"]?["max_sequence_length"]?.intValue ?? -1
        let dtypeName: String
        switch dtype {
        case .bf16: dtypeName = "bfloat16"
        case .f16: dtypeName = "float16"
        case .f64: dtypeName = "float64"
        default: dtypeName = "float32"
        }
        return .object([
            ("architectures", .array([.string("FlexOlmoForCausalLM")])),
            ("model_type", .string("flex_olmo")),
            ("vocab_size", .int(c.vocabSize)),
            ("hidden_size", .int(c.hiddenSize)),
            ("intermediate_size", .int(c.intermediateSize)),
            ("num_hidden_layers", .int(c.layerCount)),
            ("num_attention_heads", .int(c.headCount)),
            ("num_key_value_heads", .int(c.keyValueHeadCount)),
            ("hidden_act", .string("silu")),
            ("max_position_embeddings", .int(maxPositions)),
            ("attention_bias", .bool(attention?["bias"]?.boolValue ?? false)),
            ("attention_dropout", .number(0)),
            ("rope_parameters", .object([("rope_theta", .number(theta)), ("rope_type", .string("default"))])),
            ("rms_norm_eps", .number(c.normEpsilon ?? 1e-6)),
            ("num_experts", .int(c.expertCount)),
            ("num_experts_per_tok", .int(c.topK)),
            ("norm_topk_prob", .bool(false)),
            ("output_router_logits", .bool(false)),
            ("router_aux_loss_coef", .number(block?["feed_forward_moe"]?["lb_loss_weight"]?.doubleValue ?? 0.01)),
            ("tie_word_embeddings", .bool(c.tieWordEmbeddings)),
            ("initializer_range", .number(c.model["init_std"]?.doubleValue ?? 0.02)),
            ("use_cache", .bool(true)),
            ("bos_token_id", token("bos_token_id")),
            ("eos_token_id", token("eos_token_id")),
            ("pad_token_id", token("pad_token_id")),
            ("dtype", .string(dtypeName)),
        ])
    }

    /// Where one output tensor comes from.
    enum Source {
        case whole(String)
        case router(MoELayer)
        case expert(MoELayer, Int, Projection)
    }

    /// The Hugging Face name of a non-MoE OLMo-core tensor, or nil.
    static func huggingFaceName(_ n: String) -> String? {
        switch n {
        case "embeddings.weight": return "model.embed_tokens.weight"
        case "lm_head.norm.weight": return "model.norm.weight"
        case "lm_head.w_out.weight": return "lm_head.weight"
        default: break
        }
        guard n.hasPrefix("blocks.") else { return nil }
        let rest = n.dropFirst("blocks.".count)
        guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]) else { return nil }
        let tail = String(rest[rest.index(after: dot)...])
        let map = [
            "attention.w_q.weight": "self_attn.q_proj.weight", "attention.w_k.weight": "self_attn.k_proj.weight",
            "attention.w_v.weight": "self_attn.v_proj.weight", "attention.w_out.weight": "self_attn.o_proj.weight",
            "attention.q_norm.weight": "self_attn.q_norm.weight", "attention.k_norm.weight": "self_attn.k_norm.weight",
            "attention_norm.weight": "post_attention_layernorm.weight", "feed_forward_norm.weight": "post_feedforward_layernorm.weight",
        ]
        return map[tail].map { "model.layers.\(layer).\($0)" }
    }

    /// Writes `model` (an OLMo-core checkpoint in any form) into the Hugging Face folder `output`.
    /// - Parameters:
    ///   - dtype: cast floating-point tensors to it (default: keep each tensor's dtype).
    ///   - overwrite: replace an existing output, only once the new one is complete.
    ///   - progress: called with each output tensor name as it is written.
    public static func write(
        _ model: MoECheckpoint, to output: String, dtype: DType? = nil, overwrite: Bool = false,
        maxShardBytes: Int = 5_000_000_000, progress: (String) -> Void = { _ in }
    ) throws {
        let ck = model.checkpoint
        guard let config = model.olmoCoreConfig else {
            throw Unsupported(description: "\(ck.path): not an OLMo-core checkpoint")
        }
        if let p = model.problems.first { throw Unsupported(description: "\(ck.path): \(p)") }
        let fm = FileManager.default
        if fm.fileExists(atPath: output) && !overwrite {
            throw CheckpointError.io(file: output, reason: "already exists; choose another output or pass \(Setting.overwrite)")
        }
        let moe = Dictionary(uniqueKeysWithValues: model.moeLayers.map { ($0.index, $0) })
        var specs: [TensorSpec] = []
        var sources: [String: Source] = [:]
        var stored: [String: DType] = [:]
        func add(_ name: String, _ type: DType, _ shape: [Int], _ s: Source) {
            let out = dtype.map { type.isFloatingPoint ? $0 : type } ?? type
            specs.append(TensorSpec(name: name, dtype: out, shape: shape))
            sources[name] = s
            stored[name] = type
        }
        for t in ck.tensors {
            if let l = OLMoCoreLayout.spec.router.match(t.name)?.layer, let layer = moe[l] {
                add("model.layers.\(l).mlp.gate.weight", t.dtype, [layer.expertCount, layer.hiddenSize], .router(layer))
            } else if let l = OLMoCoreLayout.spec.layerPrefix.matchPrefix(t.name), let layer = moe[l],
                t.name.hasPrefix("blocks.\(l).feed_forward_moe.experts.mlp.w")
            {
                let p: Projection
                switch t.name.suffix(2) {
                case "w1": p = .gate
                case "w3": p = .up
                case "w2": p = .down
                default: throw Unsupported(description: "\(ck.path): no Hugging Face name for '\(t.name)'")
                }
                let hf = p == .gate ? "gate_proj" : p == .up ? "up_proj" : "down_proj"
                for e in 0..<layer.expertCount {
                    add("model.layers.\(l).mlp.experts.\(e).\(hf).weight", t.dtype, model.projectionShape(layer, p), .expert(layer, e, p))
                }
            } else if let hf = huggingFaceName(t.name) {
                add(hf, t.dtype, t.shape, .whole(t.name))
            } else {
                throw Unsupported(description: "\(ck.path): no Hugging Face (flex_olmo) name for '\(t.name)'")
            }
        }
        let hfConfig: JSONValue
        do { hfConfig = try huggingFaceConfig(config, dtype: dtype ?? model.moeLayers.first?.dtype ?? .f32) } catch { throw error }
        // The projections of the layer being written, decoded once (experts are written one after another).
        var cached: (layer: Int, weights: [Projection: Tensor]) = (-1, [:])
        let produce: TensorBytesProducer = { spec, buffer in
            progress(spec.name)
            guard let source = sources[spec.name], let dst = buffer.baseAddress else { return }
            func encode(_ values: UnsafeBufferPointer<Float>) {
                if let s = values.baseAddress { Conversion.encode(spec.dtype, from: s, count: values.count, into: dst) }
            }
            switch source {
            case let .whole(name):
                if spec.dtype == stored[spec.name] {
                    try ck.copyRawBytes(name, into: buffer)
                } else {
                    try ck.tensor(name).storage.withUnsafeBufferPointer(encode)
                }
            case let .router(layer):
                try model.routerWeight(layer).storage.withUnsafeBufferPointer(encode)
            case let .expert(layer, e, p):
                if cached.layer != layer.index { cached = (layer.index, [:]) }
                let w: Tensor
                if let c = cached.weights[p] { w = c } else { w = try model.expertWeights(layer, p); cached.weights[p] = w }
                let per = w.count / layer.expertCount
                w.storage.withUnsafeBufferPointer { all in encode(UnsafeBufferPointer(rebasing: all[(e * per)..<((e + 1) * per)])) }
            }
        }
        let tmp = try AtomicOutput.temporaryFolder(for: output)
        do {
            try SafetensorsWriter.writeFolder(specs, metadata: ["format": "pt"], folder: tmp, maxShardBytes: maxShardBytes, produce: produce)
            try AtomicOutput.write(hfConfig.serialized(pretty: true) + "\n", to: tmp + "/config.json")
        } catch {
            try? fm.removeItem(atPath: tmp)
            throw error
        }
        try AtomicOutput.commitFolder(tmp, to: output, replace: overwrite)
    }
}
